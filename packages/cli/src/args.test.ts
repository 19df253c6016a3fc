import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_TIMEOUT_MS, parseInvocation } from './args.js';
import { CliError, ExitCode } from './errors.js';
import { main } from './main.js';
import { captureIo } from './testing/fixtures.js';

const env = { PRIMACY_CLUSTER: 'main', PRIMACY_ETCD: 'http://127.0.0.1:2379' };

function usage(argv: string[], message: RegExp, e: Record<string, string> = env): void {
  assert.throws(
    () => parseInvocation(argv, e),
    (err: unknown) => err instanceof CliError && err.exitCode === ExitCode.USAGE && message.test(err.message),
    `${argv.join(' ')} → usage error matching ${message}`,
  );
}

describe('parseInvocation', () => {
  test('commands with their defaults, and flags before or after the command', () => {
    assert.deepEqual(parseInvocation(['status'], env), {
      command: 'status',
      target: { endpoints: ['http://127.0.0.1:2379'], cluster: 'main', root: '/primacy', tls: null, auth: null },
      json: false,
      watch: false,
    });
    assert.deepEqual(parseInvocation(['--cluster', 'c2', 'status', '--json', '--watch', '--etcd', 'a:1,http://b:2', '--root', '/x'], {}), {
      command: 'status',
      target: { endpoints: ['http://a:1', 'http://b:2'], cluster: 'c2', root: '/x', tls: null, auth: null },
      json: true,
      watch: true,
    });
    assert.deepEqual(parseInvocation(['switchover'], env), {
      command: 'switchover',
      target: { endpoints: ['http://127.0.0.1:2379'], cluster: 'main', root: '/primacy', tls: null, auth: null },
      request: { to: null, force: false, unfenced: false, yes: false, wait: true, timeoutMs: DEFAULT_TIMEOUT_MS },
    });
    const f = parseInvocation(['failover', '--to', 'db2', '--force', '--no-wait', '--timeout', '2.5'], env);
    assert.deepEqual(f.command === 'failover' && f.request, { to: 'db2', force: true, unfenced: false, yes: false, wait: false, timeoutMs: 2500 });
    const e = parseInvocation(['explain', '7', '--json'], env);
    assert.deepEqual(e.command === 'explain' && [e.epoch, e.json], [7, true]);
    assert.equal(parseInvocation(['topology'], env).command, 'topology');
    assert.equal(parseInvocation(['pause'], env).command, 'pause');
    assert.equal(parseInvocation(['resume'], env).command, 'resume');
  });

  test('failover --unfenced, with or without --yes', () => {
    const request = (argv: string[]) => {
      const inv = parseInvocation(argv, env);
      return inv.command === 'failover' ? inv.request : null;
    };
    assert.deepEqual(request(['failover', '--to', 'db2', '--unfenced']), { to: 'db2', force: false, unfenced: true, yes: false, wait: true, timeoutMs: DEFAULT_TIMEOUT_MS });
    assert.deepEqual(request(['failover', '--unfenced', '--yes', '--to', 'db2', '--no-wait']), { to: 'db2', force: false, unfenced: true, yes: true, wait: false, timeoutMs: DEFAULT_TIMEOUT_MS });
    usage(['failover', '--unfenced'], /^failover --unfenced needs --to NODE: name the replica to promote/);
    usage(['failover', '--unfenced', '--yes'], /^failover --unfenced needs --to NODE/);
    // --yes also confirms the request itself, which a terminal asks about (confirm.ts).
    assert.equal(request(['failover', '--to', 'db2', '--yes'])?.yes, true);
    usage(['switchover', '--to', 'db2', '--unfenced'], /unknown flag --unfenced for primacy switchover/);
    const switchover = parseInvocation(['switchover', '--yes'], env);
    assert.equal(switchover.command === 'switchover' && switchover.request.yes, true);
    usage(['failover', '--to', 'db2', '--unfenced=yes'], /--unfenced takes no value/);
  });

  test('durability: show, or set one of three modes', () => {
    const mode = (argv: string[]) => {
      const inv = parseInvocation(argv, env);
      return inv.command === 'durability' ? inv.mode : 'not durability';
    };
    assert.equal(mode(['durability']), null);
    assert.equal(mode(['durability', 'async']), 'async');
    assert.equal(mode(['durability', 'semi-sync']), 'semi-sync');
    assert.equal(mode(['durability', 'strict']), 'strict');
    assert.deepEqual(parseInvocation(['durability', '--help'], env), { command: 'help', topic: 'durability' });
    usage(['durability', 'sync'], /^bad durability "sync": expected async, semi-sync or strict/);
    usage(['durability', 'Strict'], /^bad durability "Strict"/);
    usage(['durability', 'strict', 'async'], /durability takes at most one argument/);
    usage(['durability', '--json'], /unknown flag --json for primacy durability/);
  });

  test('the default etcd endpoint, and PRIMACY_ROOT', () => {
    const s = parseInvocation(['history'], { PRIMACY_CLUSTER: 'main', PRIMACY_ROOT: '/other' });
    assert.deepEqual(s.command === 'history' && s.target, { endpoints: ['http://127.0.0.1:2379'], cluster: 'main', root: '/other', tls: null, auth: null });
  });

  test('etcd TLS files and user, from flags or the environment; host:port is https with TLS', () => {
    const target = (argv: string[], e: Record<string, string> = {}) => {
      const inv = parseInvocation(['status', '--cluster', 'c', ...argv], e);
      return inv.command === 'status' ? inv.target : null;
    };
    const t = target(['--etcd', 'a:1,https://b:2', '--cacert', 'ca.pem', '--cert', 'c.pem', '--key', 'k.pem', '--user', 'ops', '--password-file', 'pw']);
    assert.deepEqual(t?.endpoints, ['https://a:1', 'https://b:2']);
    assert.deepEqual(t?.tls, { ca: { path: 'ca.pem', from: '--cacert' }, cert: { path: 'c.pem', from: '--cert' }, key: { path: 'k.pem', from: '--key' } });
    assert.deepEqual(t?.auth, { user: 'ops', password: { file: { path: 'pw', from: '--password-file' } } });
    const fromEnv = target([], {
      PRIMACY_ETCD: 'a:1',
      PRIMACY_ETCD_CACERT: 'ca.pem',
      PRIMACY_ETCD_CERT: 'c.pem',
      PRIMACY_ETCD_KEY: 'k.pem',
      PRIMACY_ETCD_USER: 'ops',
      PRIMACY_ETCD_PASSWORD: 's3cret',
    });
    assert.deepEqual(fromEnv?.endpoints, ['https://a:1']);
    assert.deepEqual(fromEnv?.tls?.cert, { path: 'c.pem', from: 'PRIMACY_ETCD_CERT' });
    assert.deepEqual(fromEnv?.auth, { user: 'ops', password: { value: 's3cret' } });
    assert.deepEqual(target(['--password-file', 'pw', '--cacert', 'mine.pem'], { PRIMACY_ETCD_USER: 'ops', PRIMACY_ETCD_PASSWORD: 'x', PRIMACY_ETCD_CACERT: 'theirs.pem' })?.auth?.password, { file: { path: 'pw', from: '--password-file' } }, 'a flag wins over its variable');
    assert.deepEqual(target(['--etcd', 'https://a:1'])?.tls, null, 'https without --cacert: the default CAs');
    assert.deepEqual(target(['--cacert', 'ca.pem'])?.tls, { ca: { path: 'ca.pem', from: '--cacert' }, cert: null, key: null });
    assert.deepEqual(target(['--cacert', 'ca.pem'])?.endpoints, ['https://127.0.0.1:2379']);
  });

  test('help and version', () => {
    assert.deepEqual(parseInvocation([], {}), { command: 'help', topic: null });
    assert.deepEqual(parseInvocation(['--help'], {}), { command: 'help', topic: null });
    assert.deepEqual(parseInvocation(['-h'], {}), { command: 'help', topic: null });
    assert.deepEqual(parseInvocation(['--version'], {}), { command: 'version' });
    assert.deepEqual(parseInvocation(['status', '--help'], {}), { command: 'help', topic: 'status' });
    assert.deepEqual(parseInvocation(['failover', '-h'], {}), { command: 'help', topic: 'failover' }, 'help needs no --to');
    assert.deepEqual(parseInvocation(['help', 'explain'], {}), { command: 'help', topic: 'explain' });
    assert.deepEqual(parseInvocation(['--help', 'sandbox'], {}), { command: 'help', topic: 'sandbox' });
  });

  test('sandbox gets every argument after it, untouched', () => {
    assert.deepEqual(parseInvocation(['sandbox', 'up', '--nodes', '5', '--whatever'], {}), { command: 'sandbox', args: ['up', '--nodes', '5', '--whatever'] });
  });

  test('usage errors', () => {
    usage(['frobnicate'], /unknown command "frobnicate"/);
    usage(['help', 'frobnicate'], /unknown command "frobnicate"/);
    usage(['--json'], /unknown flag --json for primacy\b/);
    usage(['status', '--bogus'], /unknown flag --bogus for primacy status/);
    usage(['status', '-x'], /unknown flag -x for primacy status/);
    usage(['topology', '--json'], /unknown flag --json for primacy topology/);
    usage(['switchover', '--force'], /unknown flag --force for primacy switchover/);
    usage(['status', '--json=yes'], /--json takes no value/);
    usage(['--cluster'], /--cluster needs a value/);
    usage(['--etcd', 'x:1'], /no command given/);
    usage(['status', 'extra'], /status takes no arguments/);
    usage(['explain', '1', '2'], /explain takes at most one argument/);
    usage(['explain', 'zero'], /bad epoch "zero"/);
    usage(['explain', '0'], /bad epoch "0"/);
    usage(['failover'], /failover needs --to NODE/);
    usage(['failover', '--force'], /failover needs --to NODE/);
    usage(['failover', '--to'], /--to needs a value/);
    usage(['switchover', '--to', 'no/such'], /bad --to "no\/such"/);
    usage(['switchover', '--timeout', 'soon'], /bad --timeout "soon"/);
    usage(['switchover', '--timeout', '0'], /bad --timeout "0"/);
    usage(['switchover', '--timeout', '-5'], /--timeout needs a value|bad --timeout/);
    usage(['switchover', '--timeout', '1e9'], /bad --timeout "1e9"/);
    usage(['status'], /no cluster given: use --cluster NAME or set PRIMACY_CLUSTER/, {});
    usage(['status', '--cluster', 'a/b'], /bad cluster name "a\/b"/);
    usage(['status', '--etcd', 'ftp://x:1'], /bad etcd endpoint "ftp:\/\/x:1"/);
    usage(['status', '--etcd', ' , '], /bad --etcd/);
    usage(['status', '--root', 'primacy'], /bad --root "primacy"/);
    usage(['status', '--cert', 'c.pem'], /--cert is given without its private key: add --key FILE/);
    usage(['status', '--key', 'k.pem'], /--key is given without its certificate: add --cert FILE/);
    usage(['status'], /PRIMACY_ETCD_CERT is given without its private key/, { ...env, PRIMACY_ETCD_CERT: 'c.pem' });
    usage(['status', '--user', 'ops'], /etcd user ops needs a password: set PRIMACY_ETCD_PASSWORD or use --password-file FILE/);
    usage(['status'], /etcd user ops needs a password/, { ...env, PRIMACY_ETCD_USER: 'ops', PRIMACY_ETCD_PASSWORD: '' });
    usage(['status', '--user', 'ops:s3cret'], /--user takes a user name only: a password on the command line shows in ps/);
    usage(['status', '--password', 's3cret', '--user', 'ops'], /--password is not taken, as a password on the command line shows in ps/);
    usage(['status', '--password-file', 'pw'], /--password-file is given without a user: add --user NAME/);
    usage(['status'], /PRIMACY_ETCD_PASSWORD is given without a user/, { ...env, PRIMACY_ETCD_PASSWORD: 'x' });
    usage(['status', '--cacert', 'ca.pem', '--etcd', 'http://a:1'], /--cacert is given but etcd endpoint http:\/\/a:1 is plain http: use https:\/\//);
    usage(['status', '--etcd', 'http://a:1,https://b:2'], /mixes http:\/\/ and https:\/\//);
  });
});

describe('main', () => {
  test('a usage error is one line on stderr and exit code 2', async () => {
    const io = captureIo();
    assert.equal(await main(['status', '--bogus'], io), ExitCode.USAGE);
    assert.equal(io.out(), '');
    assert.equal(io.err(), 'primacy: unknown flag --bogus for primacy status (see primacy --help)\n');
  });

  test('failover --unfenced off a terminal without --yes: exit 2 before etcd is asked anything', async () => {
    // etcd at port 1 answers nothing: a read would end in exit 3, not 2.
    const unreachable = { PRIMACY_CLUSTER: 'main', PRIMACY_ETCD: 'http://127.0.0.1:1' };
    for (const stdin of [undefined, { isTTY: false, ask: async () => 'db2' }]) {
      const io = captureIo({ env: unreachable, ...(stdin ? { stdin } : {}) });
      assert.equal(await main(['failover', '--to', 'db1', '--unfenced'], io), ExitCode.USAGE);
      assert.equal(io.out(), '');
      assert.equal(io.err(), 'primacy: failover --unfenced must be confirmed, and stdin is not a terminal: add --yes once you are sure the old primary takes no writes (see primacy --help)\n');
    }
  });

  test('help, command help and version go to stdout with exit code 0', async () => {
    const help = captureIo();
    assert.equal(await main(['--help'], help), 0);
    assert.match(help.out(), /^usage: primacy COMMAND/);
    assert.match(help.out(), /Exit codes: 0 ok/);
    const page = captureIo();
    assert.equal(await main(['switchover', '--help'], page), 0);
    assert.match(page.out(), /--timeout S/);
    assert.match(page.out(), /PRIMACY_ETCD/);
    const failover = captureIo();
    assert.equal(await main(['failover', '--help'], failover), 0);
    assert.match(failover.out(), /--unfenced +your word that the old primary takes no writes/);
    assert.match(failover.out(), /--yes +confirm --unfenced without being asked/);
    const durability = captureIo();
    assert.equal(await main(['help', 'durability'], durability), 0);
    assert.match(durability.out(), /^usage: primacy durability \[async\|semi-sync\|strict\]/);
    assert.match(help.out(), /durability \[async\|semi-sync\|strict\]/);
    const version = captureIo();
    assert.equal(await main(['--version'], version), 0);
    assert.match(version.out(), /^\d+\.\d+\.\d+/);
  });
});

describe('parseInvocation: config, maintenance, fleet and script commands', () => {
  const where = { endpoints: ['http://127.0.0.1:2379'], root: '/primacy', tls: null, auth: null };
  const target = { ...where, cluster: 'main' };

  test('clusters and status --all need no cluster, and take none', () => {
    assert.deepEqual(parseInvocation(['clusters'], {}), { command: 'clusters', where, json: false, summary: false });
    assert.deepEqual(parseInvocation(['status', '--all', '--json'], env), { command: 'clusters', where, json: true, summary: true });
    usage(['clusters', '--cluster', 'x'], /^clusters lists every cluster under the root: drop --cluster/);
    usage(['status', '--all', '--cluster', 'x'], /^status --all lists every cluster under the root: drop --cluster/);
    usage(['status', '--all', '--watch'], /^status --all does not take --watch/);
    usage(['clusters', 'c1'], /^clusters takes no arguments, got "c1"/);
  });

  test('show-config, edit-config with repeated --set, --file and --yes', () => {
    assert.deepEqual(parseInvocation(['show-config', '--json'], env), { command: 'show-config', target, json: true });
    assert.deepEqual(parseInvocation(['edit-config', '--set', 'paused=true', '--set', 'nodes.db1.priority=2', '--yes'], env), {
      command: 'edit-config',
      target,
      sets: [{ path: ['paused'], value: true }, { path: ['nodes', 'db1', 'priority'], value: 2 }],
      file: null,
      yes: true,
    });
    assert.deepEqual(parseInvocation(['edit-config', '--file', 'c.yaml'], env), { command: 'edit-config', target, sets: [], file: 'c.yaml', yes: false });
    usage(['edit-config', '--set'], /^--set needs a value/);
    usage(['edit-config', '--set', 'oops'], /^bad --set "oops"/);
    usage(['show-config', '--yes'], /unknown flag --yes for primacy show-config/);
  });

  test('maintenance: a list, or a node and on or off', () => {
    assert.deepEqual(parseInvocation(['maintenance'], env), { command: 'maintenance', target, node: null, on: null });
    assert.deepEqual(parseInvocation(['maintenance', 'db2', 'on'], env), { command: 'maintenance', target, node: 'db2', on: true });
    assert.deepEqual(parseInvocation(['maintenance', 'db2', 'off'], env), { command: 'maintenance', target, node: 'db2', on: false });
    usage(['maintenance', 'db2'], /^maintenance db2 needs on or off \(see/);
    usage(['maintenance', 'db2', 'yes'], /^maintenance db2 needs on or off, got "yes"/);
    usage(['maintenance', 'a/b', 'on'], /^bad node name "a\/b"/);
    usage(['maintenance', 'db2', 'on', 'now'], /^maintenance takes at most 2 arguments, got "db2 on now"/);
  });

  test('which-primary and dsn', () => {
    assert.deepEqual(parseInvocation(['which-primary'], env), { command: 'which-primary', target });
    assert.deepEqual(parseInvocation(['dsn'], env), { command: 'dsn', target, role: 'primary', dbUser: null, database: null, maxLagMs: null });
    assert.deepEqual(parseInvocation(['dsn', '--role', 'replica', '--db-user', 'app', '--database', 'shop', '--max-lag', '500'], env), {
      command: 'dsn',
      target,
      role: 'replica',
      dbUser: 'app',
      database: 'shop',
      maxLagMs: 500,
    });
    usage(['dsn', '--role', 'leader'], /^bad --role "leader": expected primary or replica/);
    usage(['dsn', '--max-lag', '500'], /^--max-lag is for --role replica/);
    usage(['dsn', '--role', 'replica', '--max-lag', '0.5'], /^bad --max-lag "0\.5": expected milliseconds/);
  });
});
