import { test } from 'node:test';
import assert from 'node:assert/strict';
import { describeHooks, renderExplain } from './explain.js';
import { PLAIN } from './io.js';
import { T0, op } from './testing/fixtures.js';

test('explain shows every hook run: where it ran and as what, how it ended, when, and the tail of its output', () => {
  const started = T0 - 10_000;
  const record = op({
    hooks: [
      { name: 'pre-failover', node: 'db3', role: 'coordinator', epoch: 2, opStartedAt: started, startedAt: started + 5, ms: 2000, exitCode: null, timedOut: true, outcome: 'killed after 2000 ms', outputTail: 'paging on-call' },
      { name: 'post-failover', node: 'db2', role: 'new-primary', epoch: 2, opStartedAt: started, startedAt: started + 1850, ms: 40, exitCode: 0, timedOut: false, outcome: 'exit 0', outputTail: '' },
    ],
  });
  const text = renderExplain({ version: 1, cluster: 'main', op: record, warnings: [] }, T0, PLAIN).join('\n');
  assert.match(text, /\nhooks\n +HOOK +RAN ON +OUTCOME +DURATION +AT +OUTPUT\n/);
  assert.match(text, /pre-failover +db3 \(coordinator\) +killed after 2000 ms +2\.00 s +\+5 ms +paging on-call/);
  assert.match(text, /post-failover +db2 \(new-primary\) +exit 0 +40 ms +\+1\.85 s +-/);
  assert.ok(text.indexOf('\nhooks\n') > text.indexOf('\nsteps\n') && text.indexOf('\nhooks\n') < text.indexOf('\noutcome\n'), 'after the steps, before the outcome');
  assert.deepEqual(describeHooks(op(), PLAIN), [], 'no hooks, no section');
});
