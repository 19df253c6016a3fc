/** Where the sandbox writes: the CLI's streams, given by the caller so that tests can run it in-process. */
import { styleFor, type Io, type Style } from '../io.js';

export type SandboxIO = Pick<Io, 'stdout' | 'stderr' | 'isTTY' | 'env'>;
export type Env = Io['env'];

export interface Output {
  /** A line of the result, on stdout. */
  say(text: string): void;
  /** A progress line, on stderr, so that stdout stays the result. */
  progress(text: string): void;
  readonly env: Env;
  readonly style: Style;
}

export function output(io: SandboxIO): Output {
  return {
    say: (text) => void io.stdout.write(`${text}\n`),
    progress: (text) => void io.stderr.write(`primacy sandbox: ${text}\n`),
    env: io.env,
    style: styleFor(io),
  };
}

export function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

/** A copy of `env` without the variables `drop` matches, as a child process's environment. */
export function childEnv(env: Env, drop: (name: string) => boolean): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(env).filter(([name, value]) => value !== undefined && !drop(name)));
}
