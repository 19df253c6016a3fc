/**
 * The CLI's config, maintenance, script and fleet commands against a real etcd, with clusters
 * written as their agents would publish them (no MariaDB needed: these commands read etcd only).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Etcd3 } from 'etcd3';
import { clusterKeys } from '@primacy/common';
import { main, type Io } from '@primacy/cli';
import { cleanupAll, startEtcd, type EtcdCluster } from './harness/index.js';
import { clusterKvs, primary } from '../packages/cli/src/testing/fixtures.js';

let etcd: EtcdCluster;
let client: Etcd3;
let dir: string;
const keys = clusterKeys('c1');

interface Run {
  readonly code: number;
  readonly out: string;
  readonly err: string;
}

type Over = { env?: Record<string, string>; answer?: (prompt: string) => Promise<string | null> };

/** Runs the CLI in-process; `answer` makes stdin a terminal that answers with it. */
async function cli(argv: string[], over: Over = {}): Promise<Run & { asked: string[] }> {
  let out = '';
  let err = '';
  const asked: string[] = [];
  const answer = over.answer;
  const io: Io = {
    stdout: { write: (s: string) => (out += s) },
    stderr: { write: (s: string) => (err += s) },
    isTTY: false,
    env: { PRIMACY_ETCD: etcd.endpoints.join(','), PRIMACY_CLUSTER: 'c1', ...over.env },
    ...(answer ? { stdin: { isTTY: true, ask: (p: string) => (asked.push(p), answer(p)) } } : {}),
  };
  let timer: NodeJS.Timeout | undefined;
  const code = await Promise.race([
    main(argv, io),
    new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`primacy ${argv.join(' ')} took over 30 s`)), 30_000))),
  ]).finally(() => clearTimeout(timer));
  return { code, out, err, asked };
}

async function stored(): Promise<unknown> {
  const raw = await client.get(keys.config).string();
  return raw === null ? null : JSON.parse(raw);
}

async function putAll(kvs: ReadonlyArray<{ key: string; value: string }>): Promise<void> {
  // etcd takes at most 128 operations in one transaction.
  for (let i = 0; i < kvs.length; i += 100) {
    await client
      .if(keys.epoch, 'Version', '>', -1)
      .then(...kvs.slice(i, i + 100).map((kv) => client.put(kv.key).value(kv.value)))
      .commit();
  }
}

before(async () => {
  etcd = await startEtcd({ members: 1 });
  client = etcd.client();
  dir = await mkdtemp(join(tmpdir(), 'primacy-cli-config-'));
  await putAll(clusterKvs('c1'));
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
  await etcd?.stop();
  await cleanupAll();
});

describe('show-config and edit-config', () => {
  test('show-config: YAML, or JSON, of the key as stored; none is an empty config', async () => {
    const empty = await cli(['show-config']);
    assert.deepEqual([empty.code, empty.out, empty.err], [0, '{}\n', '']);
    await client.put(keys.config).value(JSON.stringify({ paused: false, nodes: { db3: { priority: 5 } }, note: 'kept' }));
    const yaml = await cli(['show-config']);
    assert.deepEqual([yaml.code, yaml.out], [0, 'paused: false\nnodes:\n  db3:\n    priority: 5\nnote: kept\n']);
    const json = await cli(['show-config', '--json']);
    assert.deepEqual(JSON.parse(json.out), { paused: false, nodes: { db3: { priority: 5 } }, note: 'kept' });
    const unknown = await cli(['show-config', '--cluster', 'nosuch']);
    assert.equal(unknown.code, 4);
  });

  test('edit-config --set: the diff, then a write that keeps the other fields', async () => {
    await client.put(keys.config).value(JSON.stringify({ paused: false, nodes: { db3: { priority: 5 } }, note: 'kept' }));
    const r = await cli(['edit-config', '--set', 'maxLagMs=5000', '--set', 'nodes.db2.noPromote=true', '--set', 'nodes.db3.priority=null', '--yes']);
    assert.equal(r.code, 0, r.err);
    assert.equal(r.err, '');
    const lines = r.out.trimEnd().split('\n');
    assert.match(lines[0]!, /^--- config of c1 \(mod revision \d+\)$/);
    assert.equal(lines[1], '+++ config of c1, edited');
    assert.ok(lines.includes('+  db2:') && lines.includes('+    noPromote: true') && lines.includes('-    priority: 5') && lines.includes('+maxLagMs: 5000'), r.out);
    assert.match(lines.at(-1)!, /^wrote the config of c1 \(etcd revision \d+\)$/);
    assert.deepEqual(await stored(), { paused: false, nodes: { db2: { noPromote: true } }, note: 'kept', maxLagMs: 5000 });
    const again = await cli(['edit-config', '--set', 'maxLagMs=5000', '--yes']);
    assert.deepEqual([again.code, again.out], [0, 'no change to the config of c1; nothing was written\n']);
  });

  test('a bad value or an unknown field is exit 2 with its path, and nothing is written', async () => {
    await client.put(keys.config).value(JSON.stringify({ paused: false }));
    const before = await client.get(keys.config).exec();
    const cases: Array<[string[], string]> = [
      [['--set', 'maxLagMs=-1'], 'primacy: --set: maxLagMs: Too small: expected number to be >0; nothing was written\n'],
      [['--set', 'nodes.db2.noPromot=true'], 'primacy: --set: unknown field nodes.db2.noPromot (known: priority, noPromote, maintenance); nothing was written\n'],
      [['--set', 'durability=sync'], 'primacy: --set: durability: Invalid option: expected one of "async"|"semi-sync"|"strict"; nothing was written\n'],
      [['--set', 'paused'], 'primacy: bad --set "paused": expected FIELD=VALUE, such as paused=true or nodes.db1.priority=10 (see primacy --help)\n'],
      [['--file', join(dir, 'missing.yaml')], `primacy: cannot read --file ${join(dir, 'missing.yaml')}: no such file\n`],
    ];
    for (const [args, err] of cases) {
      const r = await cli(['edit-config', ...args, '--yes']);
      assert.deepEqual([r.code, r.err], [2, err], args.join(' '));
    }
    const after = await client.get(keys.config).exec();
    assert.equal(String(after.kvs[0]!.mod_revision), String(before.kvs[0]!.mod_revision), 'not written');
  });

  test('off a terminal without --yes it refuses before reading etcd; on a terminal it asks', async () => {
    await client.put(keys.config).value(JSON.stringify({ paused: false }));
    const refused = await cli(['edit-config', '--set', 'paused=true']);
    assert.deepEqual([refused.code, refused.out, refused.err], [2, '', 'primacy: edit-config must be confirmed, and stdin is not a terminal: add --yes to go ahead without being asked (see primacy --help)\n']);
    const no = await cli(['edit-config', '--set', 'paused=true'], { answer: async () => 'n' });
    assert.deepEqual([no.code, no.err, no.asked], [1, 'primacy: not confirmed; nothing was written\n', ['Write this config of c1? [y/N] ']]);
    assert.match(no.out, /^\+paused: true$/m, 'the diff comes before the question');
    assert.deepEqual(await stored(), { paused: false });
    const yes = await cli(['edit-config', '--set', 'paused=true'], { answer: async () => 'y' });
    assert.equal(yes.code, 0, yes.err);
    assert.deepEqual(await stored(), { paused: true });
  });

  test('a change made by someone else while the operator looked at the diff is refused, not overwritten', async () => {
    await client.put(keys.config).value(JSON.stringify({ paused: false }));
    const r = await cli(['edit-config', '--set', 'maxLagMs=3000'], {
      answer: async () => {
        await client.put(keys.config).value(JSON.stringify({ paused: true, durability: 'strict' }));
        return 'yes';
      },
    });
    assert.equal(r.code, 1);
    assert.match(r.err, /^primacy: the config of c1 changed since it was read \(mod revision \d+\); nothing was written: run primacy edit-config again to see the change\n$/);
    assert.deepEqual(await stored(), { paused: true, durability: 'strict' });
  });

  test('--file: YAML with comments, the whole new config; a field stored by a newer CLI is kept', async () => {
    await client.put(keys.config).value(JSON.stringify({ paused: true, futureField: 1 }));
    const file = join(dir, 'config.yaml');
    await writeFile(file, '# from git\npaused: false\nfutureField: 1\nnodes:\n  db1:\n    priority: 10\n');
    const r = await cli(['edit-config', '--file', file, '--set', 'antiFlapMs=60000', '--yes']);
    assert.equal(r.code, 0, r.err);
    assert.deepEqual(await stored(), { paused: false, futureField: 1, nodes: { db1: { priority: 10 } }, antiFlapMs: 60000 });
    await writeFile(file, 'nodes:\n  db9:\n    noPromote: true\n');
    const typo = await cli(['edit-config', '--file', file, '--yes']);
    assert.equal(typo.code, 0, typo.err);
    assert.equal(typo.err, 'warning: nodes.db9: c1 has no node db9 (its nodes are db1, db2, db3); kept, in case it is yet to come\n');
  });

  test('in $EDITOR: what it saves is checked, diffed and written; an editor that fails writes nothing', async () => {
    await client.put(keys.config).value(JSON.stringify({ paused: false }));
    const edited = await cli(['edit-config', '--yes'], { env: { EDITOR: "sed -i -e 's/^paused: false$/paused: true/' -e '$a maxLagMs: 7000'" } });
    assert.equal(edited.code, 0, edited.err);
    assert.match(edited.out, /^-paused: false\n\+paused: true\n\+maxLagMs: 7000$/m);
    assert.deepEqual(await stored(), { paused: true, maxLagMs: 7000 });
    const untouched = await cli(['edit-config', '--yes'], { env: { EDITOR: 'true' } });
    assert.deepEqual([untouched.code, untouched.out], [0, 'no change to the config of c1; nothing was written\n']);
    const failed = await cli(['edit-config', '--yes'], { env: { EDITOR: 'false' } });
    assert.deepEqual([failed.code, failed.err], [1, 'primacy: the editor (false) exited with status 1; nothing was written\n']);
    const broken = await cli(['edit-config', '--yes'], { env: { VISUAL: "sed -i -e '$a paused: [oops'" } });
    assert.equal(broken.code, 2);
    assert.match(broken.err, /^primacy: the edited config: not valid YAML: [^\n]+\n$/);
    assert.deepEqual(await stored(), { paused: true, maxLagMs: 7000 });
    // No key yet: the editor gets the header alone, and what is typed below it is the config.
    await client.delete().key(keys.config);
    const fresh = await cli(['edit-config', '--yes'], { env: { EDITOR: "sed -i -e '$a durability: strict'" } });
    assert.equal(fresh.code, 0, fresh.err);
    assert.deepEqual(await stored(), { durability: 'strict' });
  });
});

describe('maintenance', () => {
  test('on, shown by status and listed, off; an unknown node is exit 4', async () => {
    await client.put(keys.config).value(JSON.stringify({ paused: false, nodes: { db3: { priority: 5 } } }));
    const on = await cli(['maintenance', 'db3', 'on']);
    assert.deepEqual([on.code, on.out], [0, 'db3 of c1 is in maintenance: never a candidate for promotion, and its absence blocks no failover\n']);
    assert.deepEqual(await stored(), { paused: false, nodes: { db3: { priority: 5, maintenance: true } } });
    assert.equal((await cli(['maintenance', 'db3', 'on'])).out, 'db3 of c1 is already in maintenance\n');
    assert.equal((await cli(['maintenance'])).out, 'in maintenance in c1: db3\n');
    const status = await cli(['status']);
    assert.match(status.out, /\nmaintenance +db3: never a candidate; its absence blocks no failover\n/);
    assert.deepEqual(JSON.parse((await cli(['status', '--json'])).out).maintenance, ['db3']);
    const primaryOn = await cli(['maintenance', 'db2', 'on']);
    assert.match(primaryOn.out, /\nnote: db2 is the primary; maintenance does not move it \(primacy switchover does\)\n$/);
    const off = await cli(['maintenance', 'db3', 'off']);
    assert.deepEqual([off.code, off.out], [0, 'db3 of c1 is out of maintenance: a candidate again, and counted among the nodes that must answer\n']);
    await cli(['maintenance', 'db2', 'off']);
    assert.deepEqual(await stored(), { paused: false, nodes: { db3: { priority: 5 } } });
    assert.equal((await cli(['maintenance'])).out, 'no node of c1 is in maintenance\n');
    const unknown = await cli(['maintenance', 'db9', 'on']);
    assert.deepEqual([unknown.code, unknown.err], [4, 'primacy: unknown node db9 in cluster c1; its members are db1, db2, db3\n']);
    const bad = await cli(['maintenance', 'db3', 'maybe']);
    assert.deepEqual([bad.code, bad.err], [2, 'primacy: maintenance db3 needs on or off, got "maybe" (see primacy --help)\n']);
  });
});

describe('which-primary and dsn', () => {
  test('host:port and DSNs of the ready primary and replicas; none ready is exit 1', async () => {
    const p = await cli(['which-primary']);
    assert.deepEqual([p.code, p.out, p.err], [0, '127.0.0.1:3302\n', '']);
    assert.equal((await cli(['dsn', '--db-user', 'app', '--database', 'shop'])).out, 'mysql://app@127.0.0.1:3302/shop\n');
    assert.equal((await cli(['dsn', '--role', 'replica'])).out, 'mysql://127.0.0.1:3301/\nmysql://127.0.0.1:3303/\n');
    assert.equal((await cli(['dsn', '--role', 'replica', '--max-lag', '1000'])).out, 'mysql://127.0.0.1:3301/\n');
    await client.put(keys.primary).value(JSON.stringify(primary('db2', { state: 'switching' })));
    const none = await cli(['which-primary']);
    assert.deepEqual([none.code, none.out, none.err], [1, '', 'primacy: c1 has no ready primary: db2 (epoch 2) is switching\n']);
    assert.equal((await cli(['dsn'])).code, 1);
    await client.put(keys.primary).value(JSON.stringify(primary('db2')));
  });
});

/** etcd's own count of the Range (or Txn) calls it answered, from its metrics. */
async function rangeCalls(method: 'Range' | 'Txn' = 'Range'): Promise<number> {
  const text = await (await fetch(`${etcd.endpoints[0]}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith('grpc_server_handled_total{') && l.includes(`grpc_method="${method}"`) && l.includes('grpc_code="OK"'));
  return line ? Number(line.split(' ').at(-1)) : 0;
}

/** A fleet read of 1,000 clusters of 11 keys: a keys-only listing in pages of 10,000, then transactions of 25 clusters. */
async function fleetReadCalls(read: () => Promise<void>): Promise<void> {
  const [ranges, txns] = [await rangeCalls(), await rangeCalls('Txn')];
  await read();
  assert.deepEqual([(await rangeCalls()) - ranges, (await rangeCalls('Txn')) - txns], [2, 40], 'Range and Txn calls: a few dozen, not one per cluster');
}

describe('clusters and status --all at 1,000 clusters', () => {
  const root = '/fleet';

  before(async () => {
    const kvs = Array.from({ length: 1000 }, (_, i) => clusterKvs(`c${String(i).padStart(4, '0')}`, i === 7 ? { primary: null } : i === 8 ? { config: { paused: true } } : {}, root)).flat();
    await putAll(kvs);
  });

  test('one fleet read of the root (a listing and a few dozen transactions), in well under a second', async (t) => {
    const env = { PRIMACY_ROOT: root };
    const timings: number[] = [];
    let out = '';
    for (let i = 0; i < 3; i++) {
      await fleetReadCalls(async () => {
        const started = performance.now();
        const r = await cli(['clusters', '--json'], { env });
        timings.push(performance.now() - started);
        assert.equal(r.code, 0, r.err);
        out = r.out;
      });
    }
    const f = JSON.parse(out);
    assert.equal(f.clusters.length, 1000);
    assert.deepEqual(f.warnings, []);
    assert.deepEqual([f.clusters[7].cluster, f.clusters[7].health, f.clusters[7].problems[0]], ['c0007', 'down', 'no primary']);
    assert.equal(f.clusters.filter((c: { health: string }) => c.health === 'ok').length, 999);
    const best = Math.min(...timings);
    t.diagnostic(`primacy clusters --json over 1,000 clusters (11,000 keys, about 7 MB): ${timings.map((ms) => `${ms.toFixed(0)} ms`).join(', ')}`);
    assert.ok(best < 1000, `best of three took ${best.toFixed(0)} ms`);

    const table = await cli(['clusters'], { env });
    const lines = table.out.trimEnd().split('\n');
    assert.equal(lines.length, 1001);
    assert.match(lines[0]!, /^CLUSTER +PRIMARY +EPOCH +HEALTH +NODES +OPERATION +NOTES$/);
    assert.match(lines[1]!, /^c0000 +db2 +2 +ok +3\/3 +- +-$/);

    let all = { code: -1, out: '', err: '' };
    const started = performance.now();
    await fleetReadCalls(async () => {
      all = await cli(['status', '--all'], { env: { ...env, PRIMACY_CLUSTER: 'ignored' } });
    });
    const took = performance.now() - started;
    assert.equal(all.code, 0, all.err);
    t.diagnostic(`primacy status --all over 1,000 clusters: ${took.toFixed(0)} ms`);
    assert.deepEqual(all.out.trimEnd().split('\n'), [
      `root        ${root}/ (etcd revision ${JSON.parse(out).revision}): 1000 clusters`,
      'ok          999',
      'degraded    0',
      'down        1: no ready primary',
      'paused      1: c0008',
      'operations  none running',
      '',
      'CLUSTER  PRIMARY  EPOCH  HEALTH  NODES  OPERATION  NOTES',
      'c0007    -        2      down    3/3    -          no primary',
      'c0008    db2      2      ok      3/3    -          paused',
    ]);
    const withCluster = await cli(['status', '--all', '--cluster', 'c1'], { env });
    assert.deepEqual([withCluster.code, withCluster.err], [2, 'primacy: status --all lists every cluster under the root: drop --cluster (see primacy --help)\n']);
  });
});
