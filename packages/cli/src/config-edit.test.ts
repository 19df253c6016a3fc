import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { applyAssignments, checkConfig, configDiff, configYaml, parseAssignment, parseConfigText, sameConfig, unknownConfigNodes, withMaintenance } from './config-edit.js';
import { CliError, ExitCode } from './errors.js';
import { COLOR, PLAIN } from './io.js';

function fails(f: () => unknown): [number, string] | null {
  try {
    f();
  } catch (err) {
    if (err instanceof CliError) return [err.exitCode, err.message];
    throw err;
  }
  return null;
}

describe('--set FIELD=VALUE', () => {
  test('a dotted path and a YAML scalar; null removes the field, and the objects it leaves empty', () => {
    assert.deepEqual(parseAssignment('paused=true'), { path: ['paused'], value: true });
    assert.deepEqual(parseAssignment('nodes.db1.priority=10'), { path: ['nodes', 'db1', 'priority'], value: 10 });
    assert.deepEqual(parseAssignment('durability=semi-sync'), { path: ['durability'], value: 'semi-sync' });
    assert.deepEqual(parseAssignment('maxLagMs=null'), { path: ['maxLagMs'], value: null });
    assert.deepEqual(parseAssignment('maxLagMs='), { path: ['maxLagMs'], value: null });
    const doc = applyAssignments({ paused: false, nodes: { db1: { priority: 5 } }, note: 'kept' }, [
      parseAssignment('nodes.db2.noPromote=true'),
      parseAssignment('nodes.db1.priority=null'),
      parseAssignment('maxLagMs=5000'),
    ]);
    assert.deepEqual(doc, { paused: false, nodes: { db2: { noPromote: true } }, note: 'kept', maxLagMs: 5000 });
  });

  test('what is not an assignment is a usage error of one line', () => {
    for (const [raw, message] of [
      ['paused', /^bad --set "paused": expected FIELD=VALUE, such as paused=true or nodes\.db1\.priority=10/],
      ['=1', /^bad --set "=1": expected FIELD=VALUE/],
      ['nodes..priority=1', /^bad --set "nodes\.\.priority=1"/],
      ['nodes={db1: {}}', /^bad --set "nodes=\{db1: \{\}\}": set one field at a time/],
      ['x=[1', /^bad --set "x=\[1": the value is not a YAML scalar/],
    ] as const) {
      const r = fails(() => parseAssignment(raw));
      assert.ok(r && r[0] === ExitCode.USAGE && message.test(r[1]) && !r[1].includes('\n'), `${raw}: ${r?.[1]}`);
    }
  });

  test('maintenance on sets the flag; off removes it, and the node entry when nothing else is left', () => {
    const on = withMaintenance({ nodes: { db1: { priority: 2 } } }, 'db2', true);
    assert.deepEqual(on, { nodes: { db1: { priority: 2 }, db2: { maintenance: true } } });
    assert.deepEqual(withMaintenance(on, 'db2', false), { nodes: { db1: { priority: 2 } } });
    assert.deepEqual(withMaintenance({ nodes: { db1: { priority: 2, maintenance: true } } }, 'db1', false), { nodes: { db1: { priority: 2 } } });
  });
});

describe('the edited config', () => {
  test('YAML or JSON text, a mapping; an empty text is an empty config', () => {
    assert.deepEqual(parseConfigText('# comment\npaused: true\nnodes:\n  db1: {priority: 3}\n', 'f'), { paused: true, nodes: { db1: { priority: 3 } } });
    assert.deepEqual(parseConfigText('{"maxLagMs": 100}', 'f'), { maxLagMs: 100 });
    assert.deepEqual(parseConfigText('# only a comment\n', 'f'), {});
    assert.deepEqual(fails(() => parseConfigText('- a\n- b\n', 'cfg.yaml')), [ExitCode.USAGE, 'cfg.yaml: expected a mapping of config fields (such as paused: true), got a list']);
    const bad = fails(() => parseConfigText('paused: [\n', 'cfg.yaml'));
    assert.ok(bad && /^cfg\.yaml: not valid YAML: /.test(bad[1]) && !bad[1].includes('\n'), String(bad));
  });

  test('checked against the schema: wrong values and unknown fields are refused with their path', () => {
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ paused: 'yes' }, '--set: paused: Invalid input: expected boolean, received string; nothing was written'],
      [{ maxLagMs: -5 }, '--set: maxLagMs: Too small: expected number to be >0; nothing was written'],
      [{ durability: 'sync' }, '--set: durability: Invalid option: expected one of "async"|"semi-sync"|"strict"; nothing was written'],
      [{ nodes: { db1: { noPromot: true } } }, '--set: unknown field nodes.db1.noPromot (known: priority, noPromote, maintenance); nothing was written'],
      [{ pasued: true }, '--set: unknown field pasued (known: paused, maxLagMs, antiFlapMs, durability, nodes, rejoin, restartUnsafe); nothing was written'],
      [{ nodes: { 'a b': { priority: 1 } } }, '--set: nodes.a b: not a node name (letters, digits, ".", "_" and "-"); nothing was written'],
    ];
    for (const [doc, message] of cases) assert.deepEqual(fails(() => checkConfig(doc, {}, '--set')), [ExitCode.USAGE, message], JSON.stringify(doc));
  });

  test('a field it does not know but that was stored already is kept (a newer CLI wrote it)', () => {
    const stored = { note: 'x', nodes: { db1: { zone: 'a' } } };
    const config = checkConfig({ note: 'x', paused: true, nodes: { db1: { zone: 'a', priority: 2 } } }, stored, 'f');
    assert.deepEqual(config, { paused: true, nodes: { db1: { priority: 2 } } });
    assert.deepEqual(fails(() => checkConfig({ note: 'x', nodes: { db2: { zone: 'a' } } }, stored, 'f')), [ExitCode.USAGE, 'f: unknown field nodes.db2.zone (known: priority, noPromote, maintenance); nothing was written']);
  });

  test('nodes the cluster does not know are named (a likely typo)', () => {
    const config = checkConfig({ nodes: { db1: { priority: 1 }, db9: { noPromote: true } } }, {}, 'f');
    assert.deepEqual(unknownConfigNodes(config, ['db1', 'db2']), ['db9']);
  });

  test('sameness ignores key order', () => {
    assert.ok(sameConfig({ a: 1, nodes: { x: { p: 1, q: 2 } } }, { nodes: { x: { q: 2, p: 1 } }, a: 1 }));
    assert.ok(!sameConfig({ a: 1 }, { a: 2 }));
  });

  test('the diff before writing: YAML lines removed and added', () => {
    const before = { paused: false, nodes: { db1: { priority: 5 } } };
    const after = { paused: false, nodes: { db1: { priority: 5, noPromote: true } }, maxLagMs: 5000 };
    assert.equal(configYaml(before), 'paused: false\nnodes:\n  db1:\n    priority: 5\n');
    assert.deepEqual(configDiff(before, after, { before: 'config of c1 (mod revision 7)', after: 'config of c1, edited' }, PLAIN), [
      '--- config of c1 (mod revision 7)',
      '+++ config of c1, edited',
      '@@ -2,3 +2,5 @@',
      ' nodes:',
      '   db1:',
      '     priority: 5',
      '+    noPromote: true',
      '+maxLagMs: 5000',
    ]);
    const colored = configDiff({}, { paused: true }, { before: 'a', after: 'b' }, COLOR);
    assert.ok(colored.some((l) => l === '\x1b[32m+paused: true\x1b[39m'), colored.join('\n'));
    assert.ok(colored.some((l) => l === '\x1b[31m-{}\x1b[39m'), colored.join('\n'));
  });
});
