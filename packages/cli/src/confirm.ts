/**
 * Asking the operator before a change that is not undone by itself (a switchover, a failover, a
 * config edit): on a terminal the question is asked; `--yes` answers it on the command line; off a
 * terminal without `--yes` nobody can answer, so nothing is written and the line says to pass --yes.
 */
import { refused, usageError } from './errors.js';
import type { Io } from './io.js';

/** Decided before etcd is read: 'ask' on a terminal, 'none' with --yes; off a terminal without it, a usage error. */
export function confirmationOf(what: string, yes: boolean, terminal: boolean): 'none' | 'ask' {
  if (yes) return 'none';
  if (terminal) return 'ask';
  throw usageError(`${what} must be confirmed, and stdin is not a terminal: add --yes to go ahead without being asked`);
}

/** Asks a yes/no question; anything but y or yes (Ctrl-C and Ctrl-D included) throws (exit 1), before anything is written. */
export async function confirmAtTerminal(io: Pick<Io, 'stdin'>, question: string): Promise<void> {
  if (!io.stdin) throw refused('nobody to confirm it; nothing was written');
  const answer = await io.stdin.ask(`${question} [y/N] `);
  if (answer === null || !/^y(es)?$/i.test(answer.trim())) throw refused('not confirmed; nothing was written');
}
