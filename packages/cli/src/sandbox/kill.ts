/** `primacy sandbox kill NODE [--agent]`: SIGKILL to a node's server (or agent), the crash a failover is for. */
import type { SandboxCommand } from './args.js';
import type { Output } from './output.js';
import { exited, isOurs, signal, sleep } from './processes.js';
import { requireNode } from './state.js';
import { requireState, cliCommand } from './status.js';
import { dirFlag } from './view.js';

export async function kill(cmd: Extract<SandboxCommand, { kind: 'kill' }>, out: Output): Promise<number> {
  const state = requireState(cmd.dir);
  const node = requireNode(state, cmd.node);
  const what = cmd.agent ? 'agent' : 'mariadbd';
  const record = cmd.agent ? node.agent : node.mariadb;
  if (!isOurs(record.pid, state.dir)) {
    out.say(`${node.name}'s ${what} is not running; nothing to kill.`);
    return 0;
  }
  const pid = record.pid as number;
  signal(pid, 'SIGKILL');
  for (let i = 0; i < 100 && !exited(pid); i++) await sleep(20);
  out.say(`Killed ${node.name}'s ${what} (pid ${pid}, SIGKILL). Watch the failover: ${cliCommand()} sandbox status${dirFlag(state.dir)}; bring it back with ${cliCommand()} sandbox start ${node.name}${cmd.agent ? ' --agent' : ''}${dirFlag(state.dir)}`);
  return 0;
}
