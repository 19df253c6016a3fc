/** `primacy sandbox …` arguments, checked once into one command with every default filled. */
import { resolve } from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { errorLine, usageError } from './errors.js';

export const DEFAULT_DIR = '.primacy-sandbox';
export const DEFAULT_NODES = 3;
export const MAX_NODES = 9;

export const USAGE = [
  'usage: primacy sandbox up [--nodes N] [--semi-sync] [--dir DIR] [--base-port P] [--install]',
  '       primacy sandbox status [--dir DIR]',
  '       primacy sandbox kill NODE [--agent] [--dir DIR]',
  '       primacy sandbox start NODE [--agent] [--dir DIR]',
  '       primacy sandbox down [--dir DIR] [--keep]',
].join('\n');

export type SandboxCommand =
  | { readonly kind: 'up'; readonly dir: string; readonly nodes: number; readonly semiSync: boolean; readonly basePort: number | null; readonly install: boolean }
  | { readonly kind: 'down'; readonly dir: string; readonly keep: boolean }
  | { readonly kind: 'status'; readonly dir: string }
  | { readonly kind: 'kill'; readonly dir: string; readonly node: string; readonly agent: boolean }
  | { readonly kind: 'start'; readonly dir: string; readonly node: string; readonly agent: boolean }
  | { readonly kind: 'help' };

const dirOption = { dir: { type: 'string' } } as const;
const OPTIONS = {
  up: { ...dirOption, nodes: { type: 'string' }, 'semi-sync': { type: 'boolean' }, 'base-port': { type: 'string' }, install: { type: 'boolean' } },
  down: { ...dirOption, keep: { type: 'boolean' } },
  status: { ...dirOption },
  kill: { ...dirOption, agent: { type: 'boolean' } },
  start: { ...dirOption, agent: { type: 'boolean' } },
} as const;

type Subcommand = keyof typeof OPTIONS;

function isSubcommand(s: string): s is Subcommand {
  return Object.hasOwn(OPTIONS, s);
}

function integer(flag: string, raw: string, min: number, max: number): number {
  const n = Number(raw);
  if (!/^\d+$/.test(raw) || !Number.isSafeInteger(n) || n < min || n > max) {
    throw usageError(`--${flag}: expected a whole number from ${min} to ${max}, got "${raw}"`);
  }
  return n;
}

export function parseSandboxArgs(args: readonly string[], cwd: string): SandboxCommand {
  const [sub, ...rest] = args;
  if (sub === undefined) throw usageError('missing subcommand: up, status, kill, start or down');
  if (sub === '--help' || sub === '-h' || sub === 'help') return { kind: 'help' };
  if (!isSubcommand(sub)) throw usageError(`unknown subcommand "${sub}": expected up, status, kill, start or down`);
  if (rest.includes('--help') || rest.includes('-h')) return { kind: 'help' };
  let parsed: { values: Record<string, unknown>; positionals: string[] };
  try {
    const options: ParseArgsConfig['options'] = OPTIONS[sub];
    parsed = parseArgs({ args: rest, options, strict: true, allowPositionals: sub === 'kill' || sub === 'start' });
  } catch (err) {
    // node's messages name the flag, then explain at length; the first sentence is enough.
    throw usageError(`sandbox ${sub}: ${errorLine(err).replace(/\. To specify.*$/, '').replace(/\.$/, '')}`);
  }
  const v = parsed.values;
  const dirValue = typeof v['dir'] === 'string' ? v['dir'] : DEFAULT_DIR;
  if (dirValue === '') throw usageError('--dir: expected a folder');
  const dir = resolve(cwd, dirValue);
  switch (sub) {
    case 'up':
      return {
        kind: 'up',
        dir,
        nodes: typeof v['nodes'] === 'string' ? integer('nodes', v['nodes'], 1, MAX_NODES) : DEFAULT_NODES,
        semiSync: v['semi-sync'] === true,
        basePort: typeof v['base-port'] === 'string' ? integer('base-port', v['base-port'], 1024, 65_000) : null,
        install: v['install'] === true,
      };
    case 'down':
      return { kind: 'down', dir, keep: v['keep'] === true };
    case 'status':
      return { kind: 'status', dir };
    case 'kill':
    case 'start': {
      const [node, ...extra] = parsed.positionals;
      if (node === undefined) throw usageError(`sandbox ${sub}: name the node, e.g. \`primacy sandbox ${sub} db1\``);
      if (extra.length > 0) throw usageError(`sandbox ${sub}: one node at a time, got "${parsed.positionals.join(' ')}"`);
      return { kind: sub, dir, node, agent: v['agent'] === true };
    }
  }
}
