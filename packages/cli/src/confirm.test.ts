import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { RequestOptions } from './args.js';
import { confirmAtTerminal, confirmationOf } from './confirm.js';
import { CliError, ExitCode } from './errors.js';
import type { Terminal } from './io.js';
import { requestConfirmation, requestQuestion } from './request.js';
import { captureIo, healthyView } from './testing/fixtures.js';

function terminal(answer: string | null): Terminal & { asked: string[] } {
  const asked: string[] = [];
  return { isTTY: true, asked, ask: async (prompt) => (asked.push(prompt), answer) };
}

async function outcome(f: () => Promise<unknown>): Promise<[number, string] | 'confirmed'> {
  try {
    await f();
    return 'confirmed';
  } catch (err) {
    if (err instanceof CliError) return [err.exitCode, err.message];
    throw err;
  }
}

const o: RequestOptions = { to: 'db1', force: false, unfenced: false, yes: false, wait: true, timeoutMs: 1000 };

describe('confirmation before a switchover, a failover or a config edit', () => {
  test('asked on a terminal, skipped with --yes, refused off a terminal without it (exit 2, one line)', () => {
    assert.equal(confirmationOf('switchover', false, true), 'ask');
    assert.equal(confirmationOf('switchover', true, true), 'none');
    assert.equal(confirmationOf('switchover', true, false), 'none');
    assert.throws(
      () => confirmationOf('edit-config', false, false),
      (err: unknown) =>
        err instanceof CliError &&
        err.exitCode === ExitCode.USAGE &&
        err.message === 'edit-config must be confirmed, and stdin is not a terminal: add --yes to go ahead without being asked (see primacy --help)',
    );
  });

  test('requests: --unfenced keeps its own confirmation (typing the old primary), others a yes', () => {
    assert.equal(requestConfirmation('switchover', o, true), 'ask');
    assert.equal(requestConfirmation('failover', { ...o, yes: true }, false), 'none');
    assert.equal(requestConfirmation('failover', { ...o, unfenced: true }, true), 'ask-unfenced');
    assert.equal(requestConfirmation('failover', { ...o, unfenced: true, yes: true }, false), 'none');
    assert.throws(() => requestConfirmation('failover', { ...o, unfenced: true }, false), /^CliError: failover --unfenced must be confirmed/);
    assert.throws(() => requestConfirmation('switchover', o, false), /^CliError: switchover must be confirmed, and stdin is not a terminal: add --yes/);
  });

  test('the question says what will happen', () => {
    const v = healthyView();
    assert.equal(requestQuestion(v, 'switchover', o), 'Switch over main from db2 (epoch 2) to db1?');
    assert.equal(requestQuestion(v, 'switchover', { ...o, to: null }), 'Switch over main from db2 (epoch 2) to a replica the coordinator chooses?');
    assert.equal(requestQuestion(v, 'failover', { ...o, force: true }), 'Fail over main from db2 (epoch 2) to db1 now, overriding the safety rules (errant GTIDs, no-promote, lag limit)?');
  });

  test('y or yes goes on; anything else, Ctrl-C or Ctrl-D aborts with exit 1 before anything is written', async () => {
    for (const yes of ['y', 'Y', 'yes', ' YES ']) {
      const stdin = terminal(yes);
      assert.equal(await outcome(() => confirmAtTerminal(captureIo({ stdin }), 'Go?')), 'confirmed', yes);
      assert.deepEqual(stdin.asked, ['Go? [y/N] ']);
    }
    for (const no of ['', 'n', 'no', 'yess', null]) {
      assert.deepEqual(await outcome(() => confirmAtTerminal(captureIo({ stdin: terminal(no) }), 'Go?')), [ExitCode.FAILED, 'not confirmed; nothing was written'], String(no));
    }
  });
});
