/** Command-line flags shared by the benchmarks: a bad flag is one line on stderr and exit code 2. */
import { parseArgs, type ParseArgsConfig } from 'node:util';

export type Flags = NonNullable<ParseArgsConfig['options']>;
export type FlagValues = Record<string, string | boolean | Array<string | boolean> | undefined>;

export function parseFlags(usage: string, flags: Flags): FlagValues {
  let values: FlagValues;
  try {
    ({ values } = parseArgs({ args: process.argv.slice(2), options: { ...flags, help: { type: 'boolean', short: 'h' } }, strict: true, allowPositionals: false }));
  } catch (err) {
    fail(`${err instanceof Error ? err.message : String(err)}\n${usage}`);
  }
  if (values['help'] === true) {
    process.stdout.write(`${usage}\n`);
    process.exit(0);
  }
  return values;
}

export function stringFlag(values: FlagValues, name: string): string | undefined {
  const v = values[name];
  return typeof v === 'string' ? v : undefined;
}

/** An integer flag within [min, max], or the default. */
export function intFlag(values: FlagValues, name: string, fallback: number, min: number, max: number): number {
  const raw = stringFlag(values, name);
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) fail(`--${name}: expected an integer from ${min} to ${max}, got ${JSON.stringify(raw)}`);
  return n;
}

export function fail(line: string): never {
  process.stderr.write(`bench: ${line}\n`);
  process.exit(2);
}

const began = Date.now();

/** One progress line on stderr, stamped with the seconds since the benchmark began. */
export function progress(line: string): void {
  process.stderr.write(`[${((Date.now() - began) / 1000).toFixed(1).padStart(6)} s] ${line}\n`);
}
