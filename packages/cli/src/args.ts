/**
 * The command line, parsed once into an Invocation with every value checked and every default
 * filled. Pure: argv and the environment in, an Invocation or a usage CliError out.
 */
import { parseArgs } from 'node:util';
import { DEFAULT_ROOT, DurabilitySchema, isValidName, type Durability } from '@primacy/common';
import { parseAssignment, type Assignment } from './config-edit.js';
import { usageError } from './errors.js';

export const DEFAULT_ETCD = 'http://127.0.0.1:2379';
export const DEFAULT_TIMEOUT_MS = 60_000;
export const REJOIN_TIMEOUT_MS = 600_000;
/** `primacy web` listens on loopback unless told otherwise. */
export const DEFAULT_WEB_HOST = '127.0.0.1';

/** Where the cluster lives: etcd endpoints, cluster name and key root, and how to get in. */
export interface Target {
  readonly endpoints: readonly string[];
  readonly cluster: string;
  readonly root: string;
  readonly tls: EtcdTls | null;
  readonly auth: EtcdAuth | null;
}

/** Where etcd is, how to get in, and the key root: a Target less its cluster. */
export type EtcdWhere = Omit<Target, 'cluster'>;

/** A file named by a flag or a variable; `from` is which, for the error when it cannot be read. */
export interface FileArg {
  readonly path: string;
  readonly from: string;
}

/** etcdctl's --cacert, --cert and --key; no CA means Node's default CAs. The files are read when connecting. */
export interface EtcdTls {
  readonly ca: FileArg | null;
  readonly cert: FileArg | null;
  readonly key: FileArg | null;
}

/** etcd password authentication; the password comes from the environment or a file, never from argv. */
export interface EtcdAuth {
  readonly user: string;
  readonly password: { readonly value: string } | { readonly file: FileArg };
}

export type Invocation =
  | { readonly command: 'help'; readonly topic: CommandName | null }
  | { readonly command: 'version' }
  | { readonly command: 'status'; readonly target: Target; readonly json: boolean; readonly watch: boolean }
  | { readonly command: 'topology'; readonly target: Target }
  | { readonly command: 'history'; readonly target: Target; readonly json: boolean }
  | { readonly command: 'explain'; readonly target: Target; readonly epoch: number | null; readonly json: boolean }
  | { readonly command: 'pause' | 'resume'; readonly target: Target }
  /** `mode` null: show the cluster's durability; else set it. */
  | { readonly command: 'durability'; readonly target: Target; readonly mode: Durability | null }
  | { readonly command: 'switchover' | 'failover'; readonly target: Target; readonly request: RequestOptions }
  /** `method` null: the cluster's rejoin policy decides. */
  | { readonly command: 'rejoin'; readonly target: Target; readonly node: string; readonly method: RejoinRequestMethod | null; readonly dryRun: boolean; readonly yes: boolean; readonly wait: boolean; readonly timeoutMs: number }
  | { readonly command: 'sandbox'; readonly args: readonly string[] }
  /** `config generate PLAN --out DIR`: files from a plan; no etcd involved. */
  | { readonly command: 'config'; readonly input: string; readonly out: string; readonly force: boolean }
  /** `clusters`, and `status --all` (`summary`): every cluster under the root, from one ranged read. */
  | { readonly command: 'clusters'; readonly where: EtcdWhere; readonly json: boolean; readonly summary: boolean }
  | { readonly command: 'show-config'; readonly target: Target; readonly json: boolean }
  /** No `sets` and no `file`: the operator edits the config in $EDITOR. */
  | { readonly command: 'edit-config'; readonly target: Target; readonly sets: readonly Assignment[]; readonly file: string | null; readonly yes: boolean }
  /** `on` null: list the nodes in maintenance. */
  | { readonly command: 'maintenance'; readonly target: Target; readonly node: string | null; readonly on: boolean | null }
  | { readonly command: 'dsn'; readonly target: Target; readonly role: 'primary' | 'replica'; readonly dbUser: string | null; readonly database: string | null; readonly maxLagMs: number | null }
  | { readonly command: 'which-primary'; readonly target: Target }
  /** `cluster` null: every cluster under the root. Port 0: any free port. */
  | { readonly command: 'web'; readonly where: EtcdWhere; readonly cluster: string | null; readonly host: string; readonly port: number; readonly allowActions: boolean };

export type RejoinRequestMethod = 'flashback' | 'reseed' | 'script';

export interface RequestOptions {
  readonly to: string | null;
  readonly force: boolean;
  /** failover only: the operator's word that the old primary takes no writes, for a failover waiting on a fencing proof. */
  readonly unfenced: boolean;
  /** `--yes`: confirmed on the command line (the request, and --unfenced), not at the terminal. */
  readonly yes: boolean;
  readonly wait: boolean;
  readonly timeoutMs: number;
}

type OptionSpec = { readonly type: 'string' | 'boolean'; readonly short?: string; readonly multiple?: boolean };

const GLOBAL_OPTIONS = {
  etcd: { type: 'string' },
  cluster: { type: 'string' },
  root: { type: 'string' },
  cacert: { type: 'string' },
  cert: { type: 'string' },
  key: { type: 'string' },
  user: { type: 'string' },
  'password-file': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean' },
} as const satisfies Record<string, OptionSpec>;

const REQUEST_OPTIONS = {
  to: { type: 'string' },
  'no-wait': { type: 'boolean' },
  timeout: { type: 'string' },
  yes: { type: 'boolean' },
} as const satisfies Record<string, OptionSpec>;

/** Each command's own flags and how many positional arguments it takes. */
export const COMMANDS = {
  status: { options: { json: { type: 'boolean' }, watch: { type: 'boolean' }, all: { type: 'boolean' } }, positionals: 0 },
  clusters: { options: { json: { type: 'boolean' } }, positionals: 0 },
  'show-config': { options: { json: { type: 'boolean' } }, positionals: 0 },
  'edit-config': { options: { set: { type: 'string', multiple: true }, file: { type: 'string' }, yes: { type: 'boolean' } }, positionals: 0 },
  maintenance: { options: {}, positionals: 2 },
  dsn: { options: { role: { type: 'string' }, 'db-user': { type: 'string' }, database: { type: 'string' }, 'max-lag': { type: 'string' } }, positionals: 0 },
  'which-primary': { options: {}, positionals: 0 },
  topology: { options: {}, positionals: 0 },
  history: { options: { json: { type: 'boolean' } }, positionals: 0 },
  explain: { options: { json: { type: 'boolean' } }, positionals: 1 },
  pause: { options: {}, positionals: 0 },
  resume: { options: {}, positionals: 0 },
  switchover: { options: REQUEST_OPTIONS, positionals: 0 },
  failover: { options: { ...REQUEST_OPTIONS, force: { type: 'boolean' }, unfenced: { type: 'boolean' } }, positionals: 0 },
  durability: { options: {}, positionals: 1 },
  rejoin: { options: { method: { type: 'string' }, 'dry-run': { type: 'boolean' }, 'no-wait': { type: 'boolean' }, timeout: { type: 'string' }, yes: { type: 'boolean' } }, positionals: 1 },
  sandbox: { options: {}, positionals: Infinity },
  config: { options: { out: { type: 'string' }, force: { type: 'boolean' } }, positionals: 2 },
  web: { options: { port: { type: 'string' }, host: { type: 'string' }, 'allow-actions': { type: 'boolean' } }, positionals: 0 },
  help: { options: {}, positionals: 1 },
} as const satisfies Record<string, { options: Record<string, OptionSpec>; positionals: number }>;

export type CommandName = keyof typeof COMMANDS;

function isCommand(name: string): name is CommandName {
  return Object.hasOwn(COMMANDS, name);
}

/** Every string flag of every command, so that the first pass does not take a flag's value for the command. */
const ALL_STRING_OPTIONS: Record<string, OptionSpec> = Object.fromEntries(
  [GLOBAL_OPTIONS, ...Object.values(COMMANDS).map((c) => c.options as Record<string, OptionSpec>)]
    .flatMap((o) => Object.entries(o))
    .filter(([, spec]) => spec.type === 'string'),
);

type Env = Readonly<Record<string, string | undefined>>;

export function parseInvocation(argv: readonly string[], env: Env): Invocation {
  // First pass: find the command, the first positional argument.
  const first = parseArgs({ args: [...argv], options: { ...ALL_STRING_OPTIONS, ...GLOBAL_OPTIONS }, strict: false, allowPositionals: true, tokens: true });
  const commandToken = first.tokens.find((t) => t.kind === 'positional' || t.kind === 'option-terminator');
  if (commandToken?.kind !== 'positional') {
    const values = checkFlags(argv, GLOBAL_OPTIONS, null).values;
    if (values['version'] === true && values['help'] !== true) return { command: 'version' };
    if (values['help'] === true || argv.length === 0) return { command: 'help', topic: null };
    throw usageError('no command given');
  }
  const name = commandToken.value;
  if (!isCommand(name)) throw usageError(`unknown command "${name}"`);
  if (name === 'sandbox') {
    const before = checkFlags(argv.slice(0, commandToken.index), GLOBAL_OPTIONS, null).values;
    if (before['help'] === true) return { command: 'help', topic: 'sandbox' };
    return { command: 'sandbox', args: argv.slice(commandToken.index + 1) };
  }
  const spec = COMMANDS[name];
  const rest = [...argv.slice(0, commandToken.index), ...argv.slice(commandToken.index + 1)];
  const { values, positionals } = checkFlags(rest, { ...GLOBAL_OPTIONS, ...spec.options }, name);
  if (values['help'] === true) return { command: 'help', topic: name === 'help' ? topicOf(positionals[0]) : name };
  if (values['version'] === true) return { command: 'version' };
  if (positionals.length > spec.positionals) {
    throw usageError(`${name} takes ${spec.positionals === 0 ? 'no arguments' : spec.positionals === 1 ? 'at most one argument' : `at most ${spec.positionals} arguments`}, got "${positionals.join(' ')}"`);
  }
  const flag = (key: string): string | undefined => {
    const v = values[key];
    return typeof v === 'string' ? v : undefined;
  };
  const bool = (key: string): boolean => values[key] === true;
  if (name === 'help') return { command: 'help', topic: topicOf(positionals[0]) };
  if (name === 'config') {
    if (positionals[0] !== 'generate') throw usageError(positionals[0] === undefined ? 'config needs a subcommand: config generate PLAN --out DIR' : `unknown subcommand "config ${positionals[0]}": expected config generate`);
    const input = positionals[1];
    if (input === undefined) throw usageError('config generate needs PLAN: a YAML or JSON file with cluster, etcd and nodes');
    const out = flag('out');
    if (out === undefined) throw usageError('config generate needs --out DIR: the folder to write into');
    // The plan names etcd and the cluster: a flag would be silently ignored.
    const where = Object.keys(GLOBAL_OPTIONS).find((k) => k !== 'help' && k !== 'version' && values[k] !== undefined);
    if (where !== undefined) throw usageError(`config generate takes --${where} from the plan file, not from a flag`);
    return { command: 'config', input, out, force: bool('force') };
  }
  if (name === 'web') {
    const port = flag('port');
    if (port === undefined) throw usageError('web needs --port P: the port to serve the page on');
    return { command: 'web', where: resolveWhere(flag, env), cluster: resolveCluster(flag, env), host: flag('host') ?? DEFAULT_WEB_HOST, port: parsePort(port), allowActions: bool('allow-actions') };
  }
  if (name === 'clusters' || (name === 'status' && bool('all'))) {
    if (flag('cluster') !== undefined) throw usageError(`${name === 'clusters' ? 'clusters' : 'status --all'} lists every cluster under the root: drop --cluster`);
    if (bool('watch')) throw usageError('status --all does not take --watch');
    return { command: 'clusters', where: resolveWhere(flag, env), json: bool('json'), summary: name === 'status' };
  }
  const target = resolveTarget(flag, env);
  switch (name) {
    case 'status':
      return { command: 'status', target, json: bool('json'), watch: bool('watch') };
    case 'topology':
      return { command: 'topology', target };
    case 'history':
      return { command: 'history', target, json: bool('json') };
    case 'explain':
      return { command: 'explain', target, epoch: positionals[0] === undefined ? null : parseEpoch(positionals[0]), json: bool('json') };
    case 'pause':
    case 'resume':
      return { command: name, target };
    case 'durability':
      return { command: 'durability', target, mode: positionals[0] === undefined ? null : parseDurability(positionals[0]) };
    case 'show-config':
      return { command: 'show-config', target, json: bool('json') };
    case 'edit-config': {
      const sets = values['set'];
      return { command: 'edit-config', target, sets: (Array.isArray(sets) ? sets : []).map((a) => parseAssignment(String(a))), file: flag('file') ?? null, yes: bool('yes') };
    }
    case 'maintenance':
      return { command: 'maintenance', target, ...parseMaintenance(positionals) };
    case 'dsn': {
      const role = flag('role') ?? 'primary';
      if (role !== 'primary' && role !== 'replica') throw usageError(`bad --role "${role}": expected primary or replica`);
      const maxLag = flag('max-lag');
      if (maxLag !== undefined && role !== 'replica') throw usageError('--max-lag is for --role replica');
      return { command: 'dsn', target, role, dbUser: flag('db-user') ?? null, database: flag('database') ?? null, maxLagMs: maxLag === undefined ? null : parseMaxLag(maxLag) };
    }
    case 'which-primary':
      return { command: 'which-primary', target };
    case 'rejoin': {
      const node = positionals[0];
      if (node === undefined) throw usageError('rejoin needs the NODE to rejoin');
      if (!isValidName(node)) throw usageError(`bad node "${node}": not a node name`);
      const method = flag('method');
      if (method !== undefined && method !== 'flashback' && method !== 'reseed' && method !== 'script') throw usageError(`bad --method "${method}": expected flashback, reseed or script`);
      const timeout = flag('timeout');
      // A reseed takes long: the default wait is longer than a failover's.
      return { command: 'rejoin', target, node, method: method ?? null, dryRun: bool('dry-run'), yes: bool('yes'), wait: !bool('no-wait'), timeoutMs: timeout === undefined ? REJOIN_TIMEOUT_MS : parseTimeout(timeout) };
    }
    case 'switchover':
    case 'failover': {
      const to = flag('to');
      if (to !== undefined && !isValidName(to)) throw usageError(`bad --to "${to}": not a node name`);
      // Only failover knows --unfenced and --force: checkFlags has refused them for switchover.
      const unfenced = bool('unfenced');
      const yes = bool('yes');
      if (unfenced && to === undefined) throw usageError('failover --unfenced needs --to NODE: name the replica to promote');
      if (name === 'failover' && to === undefined) throw usageError('failover needs --to NODE: name the replica to promote');
      const timeout = flag('timeout');
      return {
        command: name,
        target,
        request: { to: to ?? null, force: bool('force'), unfenced, yes, wait: !bool('no-wait'), timeoutMs: timeout === undefined ? DEFAULT_TIMEOUT_MS : parseTimeout(timeout) },
      };
    }
  }
}

function topicOf(word: string | undefined): CommandName | null {
  if (word === undefined) return null;
  if (!isCommand(word)) throw usageError(`unknown command "${word}"`);
  return word;
}

/**
 * Checks every flag against the command's own: parseArgs' strict mode would do it too, but its
 * messages run over several lines and do not name the command.
 */
function checkFlags(args: readonly string[], options: Record<string, OptionSpec>, command: CommandName | null) {
  const parsed = parseArgs({ args: [...args], options, strict: false, allowPositionals: true, tokens: true });
  const where = command === null ? 'primacy' : `primacy ${command}`;
  for (const t of parsed.tokens) {
    if (t.kind !== 'option') continue;
    const spec = options[t.name];
    if (spec === undefined && t.name === 'password') {
      throw usageError(`${t.rawName} is not taken, as a password on the command line shows in ps: set PRIMACY_ETCD_PASSWORD or use --password-file FILE`);
    }
    if (spec === undefined || (t.rawName.startsWith('--') ? false : spec.short !== t.rawName.slice(1))) {
      throw usageError(`unknown flag ${t.rawName} for ${where}`);
    }
    if (spec.type === 'string' && (t.value === undefined || t.value === '')) throw usageError(`${t.rawName} needs a value`);
    if (spec.type === 'boolean' && t.value !== undefined) throw usageError(`${t.rawName} takes no value`);
  }
  return { values: parsed.values, positionals: parsed.positionals };
}

/** Each flag wins over its variable. */
export function resolveTarget(flag: (name: string) => string | undefined, env: Env): Target {
  const cluster = resolveCluster(flag, env);
  if (cluster === null) throw usageError('no cluster given: use --cluster NAME or set PRIMACY_CLUSTER');
  return { ...resolveWhere(flag, env), cluster };
}

/** The cluster named by --cluster or PRIMACY_CLUSTER; null when none is. */
export function resolveCluster(flag: (name: string) => string | undefined, env: Env): string | null {
  const cluster = flag('cluster') ?? nonEmpty(env['PRIMACY_CLUSTER']);
  if (cluster === undefined) return null;
  if (!isValidName(cluster)) throw usageError(`bad cluster name "${cluster}": letters, digits, ".", "_" and "-" only`);
  return cluster;
}

/** etcd's endpoints, TLS and authentication, and the key root. */
export function resolveWhere(flag: (name: string) => string | undefined, env: Env): EtcdWhere {
  const tls = resolveTls(flag, env);
  const etcd = flag('etcd') ?? nonEmpty(env['PRIMACY_ETCD']) ?? (tls === null ? DEFAULT_ETCD : DEFAULT_ETCD.replace(/^http:/, 'https:'));
  const endpoints = etcd
    .split(',')
    .map((e) => e.trim())
    .filter((e) => e !== '')
    .map((e) => parseEndpoint(e, tls !== null));
  if (endpoints.length === 0) throw usageError(`bad --etcd "${etcd}": give one or more URLs, separated by commas`);
  const plain = endpoints.find((e) => e.startsWith('http:'));
  if (tls !== null && plain !== undefined) {
    const given = [tls.ca, tls.cert].find((f) => f !== null)?.from ?? '--cacert';
    throw usageError(`${given} is given but etcd endpoint ${plain} is plain http: use https://`);
  }
  if (plain !== undefined && endpoints.some((e) => e.startsWith('https:'))) throw usageError(`bad --etcd "${etcd}": mixes http:// and https:// endpoints`);
  const root = flag('root') ?? nonEmpty(env['PRIMACY_ROOT']) ?? DEFAULT_ROOT;
  if (!root.startsWith('/') || root.length < 2) throw usageError(`bad --root "${root}": a key prefix such as /primacy`);
  return { endpoints, root, tls, auth: resolveAuth(flag, env) };
}

function fileArg(flag: (name: string) => string | undefined, env: Env, name: string, variable: string | null): FileArg | null {
  const fromFlag = flag(name);
  if (fromFlag !== undefined) return { path: fromFlag, from: `--${name}` };
  if (variable === null) return null;
  const fromEnv = nonEmpty(env[variable]);
  return fromEnv === undefined ? null : { path: fromEnv, from: variable };
}

function resolveTls(flag: (name: string) => string | undefined, env: Env): EtcdTls | null {
  const ca = fileArg(flag, env, 'cacert', 'PRIMACY_ETCD_CACERT');
  const cert = fileArg(flag, env, 'cert', 'PRIMACY_ETCD_CERT');
  const key = fileArg(flag, env, 'key', 'PRIMACY_ETCD_KEY');
  if (cert !== null && key === null) throw usageError(`${cert.from} is given without its private key: add --key FILE or set PRIMACY_ETCD_KEY`);
  if (key !== null && cert === null) throw usageError(`${key.from} is given without its certificate: add --cert FILE or set PRIMACY_ETCD_CERT`);
  return ca === null && cert === null ? null : { ca, cert, key };
}

function resolveAuth(flag: (name: string) => string | undefined, env: Env): EtcdAuth | null {
  const userFlag = flag('user');
  const user = userFlag ?? nonEmpty(env['PRIMACY_ETCD_USER']);
  const userFrom = userFlag === undefined ? 'PRIMACY_ETCD_USER' : '--user';
  const file = fileArg(flag, env, 'password-file', null);
  const value = env['PRIMACY_ETCD_PASSWORD'];
  const password = file !== null ? { file } : value !== undefined && value !== '' ? { value } : null;
  if (user === undefined) {
    if (password === null) return null;
    throw usageError(`${file?.from ?? 'PRIMACY_ETCD_PASSWORD'} is given without a user: add --user NAME or set PRIMACY_ETCD_USER`);
  }
  if (user.includes(':')) throw usageError(`${userFrom} takes a user name only: a password on the command line shows in ps; set PRIMACY_ETCD_PASSWORD or use --password-file FILE`);
  if (password === null) throw usageError(`etcd user ${user} needs a password: set PRIMACY_ETCD_PASSWORD or use --password-file FILE`);
  return { user, password };
}

function nonEmpty(v: string | undefined): string | undefined {
  return v === undefined || v.trim() === '' ? undefined : v;
}

/** `host:port` or `http(s)://host:port`, as etcdctl takes them; `host:port` is https when TLS files are given. */
function parseEndpoint(raw: string, tls: boolean): string {
  const withScheme = /^[a-z]+:\/\//i.test(raw) ? raw : `${tls ? 'https' : 'http'}://${raw}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    throw usageError(`bad etcd endpoint "${raw}": expected a URL such as http://127.0.0.1:2379`);
  }
  if ((url.protocol !== 'http:' && url.protocol !== 'https:') || url.hostname === '' || (url.pathname !== '/' && url.pathname !== '')) {
    throw usageError(`bad etcd endpoint "${raw}": expected a URL such as http://127.0.0.1:2379`);
  }
  return `${url.protocol}//${url.host}`;
}

function parseEpoch(raw: string): number {
  if (!/^\d+$/.test(raw) || Number(raw) < 1 || !Number.isSafeInteger(Number(raw))) throw usageError(`bad epoch "${raw}": expected a positive whole number`);
  return Number(raw);
}

function parseDurability(raw: string): Durability {
  const r = DurabilitySchema.safeParse(raw);
  if (!r.success) throw usageError(`bad durability "${raw}": expected async, semi-sync or strict`);
  return r.data;
}

function parsePort(raw: string): number {
  const port = /^\d+$/.test(raw) ? Number(raw) : NaN;
  if (!(port >= 0 && port <= 65_535)) throw usageError(`bad --port "${raw}": expected a port number from 0 to 65535 (0: any free port)`);
  return port;
}

/** `maintenance` (list), or `maintenance NODE on|off`. */
function parseMaintenance(positionals: readonly string[]): { node: string | null; on: boolean | null } {
  const [node, state] = positionals;
  if (node === undefined) return { node: null, on: null };
  if (!isValidName(node)) throw usageError(`bad node name "${node}": letters, digits, ".", "_" and "-" only`);
  if (state !== 'on' && state !== 'off') throw usageError(`maintenance ${node} needs on or off${state === undefined ? '' : `, got "${state}"`}`);
  return { node, on: state === 'on' };
}

function parseMaxLag(raw: string): number {
  const ms = /^\d+$/.test(raw) ? Number(raw) : NaN;
  if (!(ms > 0) || !Number.isSafeInteger(ms)) throw usageError(`bad --max-lag "${raw}": expected milliseconds, a whole number above 0`);
  return ms;
}

function parseTimeout(raw: string): number {
  const seconds = /^\d+(\.\d+)?$/.test(raw) ? Number(raw) : NaN;
  if (!(seconds > 0) || seconds > 86_400) throw usageError(`bad --timeout "${raw}": expected seconds, more than 0 and at most 86400`);
  return Math.round(seconds * 1000);
}
