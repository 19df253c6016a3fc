/**
 * `primacy sandbox up|status|kill|start|down`: a whole Primacy cluster on this machine (etcd, MariaDB
 * servers and their agents, in the background) for trying Primacy out. Returns the exit code;
 * errors are one line on stderr, never a stack trace.
 */
import { parseSandboxArgs, USAGE } from './args.js';
import { down } from './down.js';
import { SandboxError, errorLine } from './errors.js';
import { kill } from './kill.js';
import { output, type SandboxIO } from './output.js';
import { start } from './start.js';
import { status } from './status.js';
import { up } from './up.js';

export type { SandboxIO } from './output.js';
export { USAGE as SANDBOX_USAGE } from './args.js';

export async function runSandbox(args: string[], io: SandboxIO): Promise<number> {
  const out = output(io);
  try {
    const cmd = parseSandboxArgs(args, process.cwd());
    switch (cmd.kind) {
      case 'help':
        io.stdout.write(`${USAGE}\n`);
        return 0;
      case 'up':
        return await up(cmd, out);
      case 'down':
        return await down(cmd, out);
      case 'status':
        return await status(cmd, out);
      case 'kill':
        return await kill(cmd, out);
      case 'start':
        return await start(cmd, out);
    }
  } catch (err) {
    if (err instanceof SandboxError) {
      io.stderr.write(`primacy: ${err.message}\n`);
      if (err.detail !== undefined) io.stderr.write(`${err.detail}\n`);
      return err.exitCode;
    }
    io.stderr.write(`primacy: sandbox: ${errorLine(err)}\n`);
    return 1;
  }
}
