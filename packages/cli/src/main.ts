#!/usr/bin/env node
/**
 * `primacy`: reads and steers a Primacy cluster through etcd. `main` is the whole program with its
 * I/O injected; run as a process, it gets the real streams and Ctrl-C, and exits with its code.
 */
import { realpathSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { isatty } from 'node:tty';
import { fileURLToPath } from 'node:url';
import { describeError } from '@primacy/common';
import { parseInvocation } from './args.js';
import { CliError, ExitCode } from './errors.js';
import { helpText } from './help.js';
import type { Io, Terminal } from './io.js';
import { CLI_VERSION } from './version.js';

export async function main(argv: readonly string[], io: Io): Promise<number> {
  try {
    const inv = parseInvocation(argv, io.env);
    switch (inv.command) {
      case 'help':
        io.stdout.write(`${helpText(inv.topic)}\n`);
        return ExitCode.OK;
      case 'version':
        io.stdout.write(`${CLI_VERSION}\n`);
        return ExitCode.OK;
      case 'sandbox': {
        const { runSandbox } = await import('./sandbox/index.js');
        return await runSandbox([...inv.args], io);
      }
      case 'config': {
        const { runGenerate } = await import('./generate/index.js');
        return runGenerate(inv, io);
      }
      default: {
        // Loaded only here, so that help and usage errors do not pay for the etcd client.
        const { runClusterCommand } = await import('./commands.js');
        return await runClusterCommand(inv, io);
      }
    }
  } catch (err) {
    const e = err instanceof CliError ? err : new CliError(ExitCode.FAILED, `unexpected error: ${describeError(err)}`, { cause: err });
    io.stderr.write(`primacy: ${e.message}\n`);
    return e.exitCode;
  }
}

function processIo(): Io {
  const controller = new AbortController();
  process.once('SIGINT', () => controller.abort());
  process.once('SIGTERM', () => controller.abort());
  return { stdout: process.stdout, stderr: process.stderr, isTTY: process.stdout.isTTY === true, stdin: processTerminal(), env: process.env, signal: controller.signal };
}

/** The prompt goes to stderr, so that it reaches the operator even when stdout is redirected. */
function processTerminal(): Terminal {
  return {
    // isatty, not process.stdin.isTTY: the stream is only opened when someone is asked.
    isTTY: isatty(0),
    ask: (prompt) =>
      new Promise((resolve) => {
        const rl = createInterface({ input: process.stdin, output: process.stderr, terminal: true });
        let answered = false;
        const finish = (answer: string | null) => {
          if (answered) return;
          answered = true;
          rl.close();
          resolve(answer);
        };
        // In raw mode Ctrl-C reaches readline, not the process: it ends the question, not the program.
        rl.on('SIGINT', () => {
          process.stderr.write('\n');
          finish(null);
        });
        rl.on('close', () => finish(null));
        rl.question(prompt, (answer) => finish(answer));
      }),
  };
}

function isEntryPoint(): boolean {
  const script = process.argv[1];
  if (script === undefined) return false;
  try {
    return realpathSync(script) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isEntryPoint()) {
  // grpc-js gives an IP endpoint to TLS as the server name, and Node warns about it on stderr (DEP0123).
  process.noDeprecation = true;
  const code = await main(process.argv.slice(2), processIo());
  // etcd3 can keep handles open after close(); the answer is given, so leave once output is flushed.
  process.stdout.write('', () => process.exit(code));
}
