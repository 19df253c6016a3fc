/**
 * `primacy config generate`: what it writes is read back by what reads it in production: the
 * agent's own config schema, Debian's `haproxy -c`, and the Kubernetes API schemas (kubernetes-models
 * validators). The shipped deploy/haproxy.cfg and deploy/primacy-agent.service are what it writes for
 * deploy/cluster.example.yaml. Bad plans get one line and no files.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml, parseAllDocuments } from 'yaml';
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { Service } from 'kubernetes-models/v1/Service';
import { StatefulSet } from 'kubernetes-models/apps/v1/StatefulSet';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget';
import { AgentConfigSchema, applyEnvOverrides, compileAgentConfig } from '@primacy/common';
import { main } from '../main.js';
import { compileClusterPlan, generateFiles, parseClusterPlan } from './index.js';
import { kubernetesManifests, SECRET_KEYS } from './kubernetes.js';

const repoRoot = fileURLToPath(new URL('../../../../', import.meta.url));
const examplePath = join(repoRoot, 'deploy/cluster.example.yaml');
const example = parseClusterPlan(readFileSync(examplePath, 'utf8'), examplePath);
const dir = mkdtempSync(join(tmpdir(), 'primacy-generate-'));

after(() => rmSync(dir, { recursive: true, force: true }));

function haproxyBinary(): string {
  for (const d of ['/usr/sbin', '/usr/local/sbin', '/sbin', ...(process.env['PATH'] ?? '').split(':')]) {
    if (existsSync(join(d, 'haproxy'))) return join(d, 'haproxy');
  }
  throw new Error('haproxy not found; run scripts/setup.sh');
}

function haproxyCheck(config: string): { status: number | null; warnings: string[]; output: string } {
  const r = spawnSync(haproxyBinary(), ['-c', '-f', config], { encoding: 'utf8' });
  const output = `${r.stdout}${r.stderr}`;
  // Each server set DOWN by the start-up state file is the one warning expected.
  const warnings = output.split('\n').filter((l) => /\[(WARNING|ALERT)\]/.test(l) && !/is DOWN, changed from server-state/.test(l));
  return { status: r.status, warnings, output };
}

async function cli(...argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await main(argv, { stdout: { write: (s: string) => (stdout += s) }, stderr: { write: (s: string) => (stderr += s) }, isTTY: false, env: {} });
  return { code, stdout, stderr };
}

describe('the shipped files are the generated ones', () => {
  const files = generateFiles(example);

  test('deploy/haproxy.cfg is what config generate writes for deploy/cluster.example.yaml', () => {
    assert.equal(readFileSync(join(repoRoot, 'deploy/haproxy.cfg'), 'utf8'), files.get('haproxy/haproxy.cfg'));
  });

  test('deploy/primacy-agent.service is the generated unit', () => {
    assert.equal(readFileSync(join(repoRoot, 'deploy/primacy-agent.service'), 'utf8'), files.get('systemd/primacy-agent.service'));
  });
});

describe('config generate', () => {
  const out = join(dir, 'out');

  test('writes every file into --out and names each', async () => {
    const r = await cli('config', 'generate', examplePath, '--out', out);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, '');
    const expected = ['agents/db1.yaml', 'agents/db2.yaml', 'agents/db3.yaml', 'haproxy/haproxy.cfg', 'haproxy/primacy.state', 'systemd/primacy-agent.service',
      'kubernetes/configmap.yaml', 'kubernetes/poddisruptionbudget.yaml', 'kubernetes/service.yaml', 'kubernetes/statefulset.yaml'];
    for (const f of expected) assert.ok(existsSync(join(out, f)), `${f} written`);
    assert.equal(r.stdout.trim().split('\n').length, expected.length, r.stdout);
  });

  test("each node's agent YAML parses with the agent's own config schema, and names its node", () => {
    for (const node of example.nodes) {
      const doc = parseYaml(readFileSync(join(out, `agents/${node.name}.yaml`), 'utf8'));
      const parsed = AgentConfigSchema.safeParse(doc);
      assert.ok(parsed.success, `${node.name}: ${parsed.error?.message}`);
      assert.equal(parsed.data.node, node.name);
      assert.equal(parsed.data.mysql.advertiseHost, node.host);
      assert.equal(parsed.data.http.port, node.apiPort);
      assert.deepEqual(parsed.data.etcd.endpoints, example.etcd);
      assert.equal(parsed.data.bootstrap.primary, 'db1');
      // And loads as the agent loads it, once its password files exist.
      writeFileSync(join(dir, 'mysql.password'), 'x');
      writeFileSync(join(dir, 'repl.password'), 'y');
      const local = { ...(doc as Record<string, Record<string, unknown>>) };
      local['mysql'] = { ...local['mysql'], password: { file: 'mysql.password' } };
      local['replication'] = { ...local['replication'], password: { file: 'repl.password' } };
      const config = compileAgentConfig(local, { baseDir: dir, env: {} });
      assert.equal(config.secrets.replicationPassword, 'y');
    }
  });

  test('the HAProxy config passes haproxy -c, with its start-up state file beside it', () => {
    const state = join(dir, 'primacy.state');
    const plan = compileClusterPlan({ ...parseYaml(readFileSync(examplePath, 'utf8')), haproxy: { stateFile: state } }, 'plan');
    const files = generateFiles(plan);
    writeFileSync(state, files.get('haproxy/primacy.state')!);
    writeFileSync(join(dir, 'haproxy.cfg'), files.get('haproxy/haproxy.cfg')!);
    const r = haproxyCheck(join(dir, 'haproxy.cfg'));
    assert.equal(r.status, 0, r.output);
    assert.deepEqual(r.warnings, [], r.output);
    // The state was read: each of the 6 servers (2 listeners × 3 nodes) starts DOWN.
    assert.equal(r.output.match(/is DOWN, changed from server-state/g)?.length, 6, r.output);
    // And the shipped one, whose state file lives on the HAProxy host.
    const shipped = haproxyCheck(join(repoRoot, 'deploy/haproxy.cfg'));
    assert.equal(shipped.status, 0, shipped.output);
  });

  test('haproxy -c catches a broken config (the check can fail)', () => {
    const broken = readFileSync(join(out, 'haproxy/haproxy.cfg'), 'utf8').replace('on-marked-down shutdown-sessions', 'on-marked-down cut-everything');
    writeFileSync(join(dir, 'broken.cfg'), broken);
    assert.notEqual(haproxyCheck(join(dir, 'broken.cfg')).status, 0);
  });

  test('the Kubernetes manifests validate against the Kubernetes API schemas', () => {
    const kinds: Record<string, new (data: never) => { validate(): void }> = { Service, ConfigMap, StatefulSet, PodDisruptionBudget };
    const seen: string[] = [];
    for (const file of readdirSync(join(out, 'kubernetes'))) {
      for (const d of parseAllDocuments(readFileSync(join(out, 'kubernetes', file), 'utf8'))) {
        const m = d.toJS() as { kind: string };
        const Model = kinds[m.kind];
        assert.ok(Model, `${file}: unexpected kind ${m.kind}`);
        new Model(m as never).validate();
        seen.push(m.kind);
      }
    }
    assert.deepEqual(seen.sort(), ['ConfigMap', 'PodDisruptionBudget', 'Service', 'StatefulSet']);
  });

  test('the validator refuses a wrong manifest (the check can fail)', () => {
    const sts = structuredClone(kubernetesManifests(example).find((m) => m.kind === 'StatefulSet')!) as unknown as { spec: { replicas: unknown } };
    sts.spec.replicas = 'three';
    assert.throws(() => new StatefulSet(sts as never).validate(), /replicas/);
  });

  test('the StatefulSet runs the agent beside MariaDB, ready on /health, with passwords from the Secret only', () => {
    const manifests = kubernetesManifests(example);
    const sts = manifests.find((m) => m.kind === 'StatefulSet') as unknown as StatefulSet;
    assert.equal(sts.spec?.replicas, 3);
    const containers = sts.spec!.template.spec!.containers;
    assert.deepEqual(containers.map((c) => c.name), ['mariadb', 'agent']);
    const agent = containers[1]!;
    assert.equal(agent.readinessProbe?.httpGet?.path, '/health');
    const text = manifests.map((m) => JSON.stringify(m)).join('\n');
    assert.ok(!manifests.some((m) => (m.kind as string) === 'Secret'), 'no Secret is written, only referenced');
    const refs = [...text.matchAll(/"(secretName|name)":"primacy-main-secrets"/g)];
    assert.ok(refs.length >= 2, 'the Secret is referenced by the volume and the root password variable');
    for (const key of Object.values(SECRET_KEYS)) assert.ok(text.includes(`"key":"${key}"`), key);
    const pdb = manifests.find((m) => m.kind === 'PodDisruptionBudget') as unknown as PodDisruptionBudget;
    assert.equal(pdb.spec?.maxUnavailable, 1);
    // The ConfigMap's agent.yaml, with the pod's variables applied as the agent applies them, is a valid config.
    const cm = manifests.find((m) => m.kind === 'ConfigMap') as unknown as ConfigMap;
    const env = Object.fromEntries(agent.env!.filter((e) => e.value !== undefined).map((e) => [e.name, e.value!.replace('$(POD_NAME)', 'primacy-main-2')]));
    const parsed = AgentConfigSchema.safeParse(applyEnvOverrides(parseYaml(cm.data!['agent.yaml']!), env));
    assert.ok(parsed.success, parsed.error?.message);
    assert.equal(parsed.data.node, 'primacy-main-2');
    assert.equal(parsed.data.mysql.advertiseHost, 'primacy-main-2.primacy-main.default.svc');
    assert.equal(parsed.data.bootstrap.primary, 'primacy-main-0');
  });

  test('an existing file is refused without --force, and overwritten with it', async () => {
    const again = await cli('config', 'generate', examplePath, '--out', out);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /^primacy: [^\n]*agents\/db1\.yaml exists \(and 9 more\): give another --out, or --force to overwrite\n$/);
    const forced = await cli('config', 'generate', examplePath, '--out', out, '--force');
    assert.equal(forced.code, 0, forced.stderr);
  });
});

describe('a bad plan or command line gets one line, exit 2, and no files', () => {
  const cases: Array<[string, string, RegExp]> = [
    ['duplicate name', 'cluster: c\netcd: [http://e:2379]\nnodes: [{ name: a, host: h1 }, { name: a, host: h2 }]', /nodes\.1\.name: a is listed twice/],
    ['duplicate port', 'cluster: c\netcd: [http://e:2379]\nnodes: [{ name: a, host: h1 }, { name: b, host: h1 }]', /nodes\.1\.mysqlPort: h1:3306 is already a's mysqlPort/],
    ['api port on a mysql port', 'cluster: c\netcd: [http://e:2379]\nnodes: [{ name: a, host: h1 }, { name: b, host: h1, mysqlPort: 3307, apiPort: 3306 }]', /nodes\.1\.apiPort: h1:3306 is already a's mysqlPort/],
    ['missing etcd', 'cluster: c\nnodes: [{ name: a, host: h1 }]', /etcd: expected a list of etcd URLs/],
    ['empty etcd', 'cluster: c\netcd: []\nnodes: [{ name: a, host: h1 }]', /etcd: expected at least one etcd URL/],
    ['bad URL', 'cluster: c\netcd: [e:2379]\nnodes: [{ name: a, host: h1 }]', /etcd\.0: /],
    ['no nodes', 'cluster: c\netcd: [http://e:2379]\nnodes: []', /nodes: expected at least one node/],
    ['unknown field', 'cluster: c\netcd: [http://e:2379]\nnodes: [{ name: a, host: h1, port: 3306 }]', /nodes\.0: .*port/],
    ['unknown bootstrap', 'cluster: c\netcd: [http://e:2379]\nnodes: [{ name: a, host: h1 }]\nbootstrap: z', /bootstrap: z is not one of the nodes \(a\)/],
    ['not YAML', 'cluster: [c\n', /not valid YAML or JSON/],
    ['empty', '', /the file is empty/],
  ];
  for (const [what, text, message] of cases) {
    test(what, async () => {
      const file = join(dir, `${what.replace(/ /g, '-')}.yaml`);
      writeFileSync(file, text);
      const target = join(dir, `bad-${what.replace(/ /g, '-')}`);
      const r = await cli('config', 'generate', file, '--out', target);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, /^primacy: [^\n]+\n$/);
      assert.match(r.stderr, message);
      assert.equal(existsSync(target), false, 'nothing written');
    });
  }

  test('JSON is read as well as YAML', () => {
    const plan = parseClusterPlan(JSON.stringify({ cluster: 'j', etcd: ['https://e:2379'], nodes: [{ name: 'n1', host: '::1', mysqlPort: 3310 }] }), 'plan.json');
    assert.equal(plan.nodes[0]?.apiPort, 8008);
    assert.match(generateFiles(plan).get('haproxy/haproxy.cfg')!, /server n1 \[::1\]:3310 check port 8008/);
  });

  for (const [argv, message] of [
    [['config'], /config needs a subcommand/],
    [['config', 'show'], /unknown subcommand "config show"/],
    [['config', 'generate', '--out', 'x'], /config generate needs PLAN/],
    [['config', 'generate', 'plan.yaml'], /config generate needs --out DIR/],
    [['config', 'generate', 'plan.yaml', '--out', 'x', '--etcd', 'http://e:2379'], /takes --etcd from the plan file/],
    [['config', 'generate', 'no-such-plan.yaml', '--out', 'x'], /cannot read no-such-plan\.yaml: ENOENT/],
  ] as const) {
    test(argv.join(' '), async () => {
      const r = await cli(...argv);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, /^primacy: [^\n]+\n$/);
      assert.match(r.stderr, message);
    });
  }
});
