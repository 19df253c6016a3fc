/** The sandbox's ports: one consecutive block on loopback, so that they are easy to read and to remember. */
import { createServer } from 'node:net';
import { SandboxError, SandboxErrorCodes } from './errors.js';

export const LOOPBACK = '127.0.0.1';

function isFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen({ port, host: LOOPBACK, exclusive: true }, () => server.close(() => resolve(true)));
  });
}

async function firstTaken(base: number, count: number): Promise<number | null> {
  for (let port = base; port < base + count; port++) if (!(await isFree(port))) return port;
  return null;
}

/** `count` consecutive free ports from `base`, or from a free block below the ephemeral range. */
export async function reservePorts(base: number | null, count: number): Promise<number> {
  if (base !== null) {
    if (base + count - 1 > 65_535) throw new SandboxError(SandboxErrorCodes.PORTS, `--base-port ${base}: the sandbox needs ${count} ports, up to ${base + count - 1}`);
    const taken = await firstTaken(base, count);
    if (taken !== null) throw new SandboxError(SandboxErrorCodes.PORTS, `port ${taken} is in use; the sandbox needs ${base}-${base + count - 1}; pick another --base-port`);
    return base;
  }
  for (let attempt = 0; attempt < 50; attempt++) {
    // Multiples of 100 in 20000-29900: below Linux's ephemeral range (32768+), and readable.
    const candidate = 20_000 + 100 * Math.floor(Math.random() * 100);
    if ((await firstTaken(candidate, count)) === null) return candidate;
  }
  throw new SandboxError(SandboxErrorCodes.PORTS, `found no ${count} consecutive free ports in 20000-29999; pick them with --base-port`);
}
