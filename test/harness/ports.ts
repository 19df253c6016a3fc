import { createServer, type Server } from 'node:net';

export const LOOPBACK = '127.0.0.1';

// Ports handed out by this process. The OS may return a just-closed port again; another process can
// still take one between our close and the server's bind, which callers handle by retrying the start.
const handedOut = new Set<number>();

function listenOnAnyPort(): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, LOOPBACK, () => resolve(server));
  });
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}

/** Distinct free loopback ports, asked of the OS by listening on port 0. */
export async function freePorts(count: number): Promise<number[]> {
  const held: Server[] = [];
  const ports: number[] = [];
  try {
    for (let attempts = 0; ports.length < count; attempts++) {
      if (attempts > count * 20) throw new Error(`could not find ${count} free loopback ports`);
      const server = await listenOnAnyPort();
      held.push(server);
      const address = server.address();
      if (address === null || typeof address === 'string') continue;
      if (handedOut.has(address.port)) continue;
      handedOut.add(address.port);
      ports.push(address.port);
    }
    return ports;
  } finally {
    await Promise.all(held.map(closeServer));
  }
}

export async function freePort(): Promise<number> {
  const [port] = await freePorts(1);
  if (port === undefined) throw new Error('no free port');
  return port;
}

/** Whether a server log says its listen failed because the port was taken. */
export function isAddressInUse(log: string): boolean {
  return /address already in use|errno: 98|error: 98\b/i.test(log);
}
