/**
 * `primacy sandbox start NODE [--agent]`: brings back a server (or agent) that `kill` stopped, with
 * the command line `up` gave it, and waits until it answers. One that was started again by hand is
 * recorded instead of started twice.
 */
import type { SandboxCommand } from './args.js';
import { agentEnv } from './agent.js';
import { SandboxError, SandboxErrorCodes } from './errors.js';
import { acceptsConnections } from './mariadb.js';
import { childEnv, seconds, type Output } from './output.js';
import { LOOPBACK } from './ports.js';
import { isOurs, launch, logTail, sandboxProcesses, sleep } from './processes.js';
import { requireNode, sandboxPorts, writeState, type NodeRecord } from './state.js';
import { requireState, cliCommand } from './status.js';
import { dirFlag, displayPath } from './view.js';

export const START_TIMEOUT_MS = 30_000;

async function answers(node: NodeRecord, agent: boolean): Promise<boolean> {
  if (!agent) return acceptsConnections(node.port);
  try {
    await fetch(`http://${LOOPBACK}:${node.httpPort}/status`, { signal: AbortSignal.timeout(1_000) });
    return true;
  } catch {
    return false;
  }
}

export async function start(cmd: Extract<SandboxCommand, { kind: 'start' }>, out: Output): Promise<number> {
  const state = requireState(cmd.dir);
  const node = requireNode(state, cmd.node);
  const what = cmd.agent ? 'agent' : 'mariadbd';
  const record = cmd.agent ? node.agent : node.mariadb;
  if (isOurs(record.pid, state.dir)) {
    out.say(`${node.name}'s ${what} is already running (pid ${record.pid}); nothing to start.`);
    return 0;
  }
  // Started again by hand: a second one would only fight it for the port and the data dir.
  const mark = cmd.agent ? node.agentConfig : `${node.dataDir}`;
  const byHand = sandboxProcesses(state.dir, sandboxPorts(state)).find((p) => p.cmdline.includes(mark) && (cmd.agent || /mariadbd|mysqld/.test(p.cmdline)));
  if (byHand !== undefined) {
    record.pid = byHand.pid;
    writeState(state);
    out.say(`${node.name}'s ${what} is already running (pid ${byHand.pid}, started by hand); recorded it, so status and down see it.`);
    return 0;
  }
  const line = record.command;
  if (line === undefined) {
    throw new SandboxError(
      SandboxErrorCodes.STOPPED,
      `${displayPath(state.dir)}/ was made by an older primacy that did not record command lines; recreate it with \`${cliCommand()} sandbox down${dirFlag(state.dir)}\` and up`,
    );
  }
  const started = Date.now();
  const env = cmd.agent ? agentEnv(out.env) : childEnv(out.env, () => false);
  const pid = await launch(record, line, env);
  writeState(state);
  for (;;) {
    if (!isOurs(pid, state.dir)) {
      throw new SandboxError(SandboxErrorCodes.START_FAILED, `${node.name}'s ${what} (pid ${pid}) exited right after it started; last lines of ${displayPath(record.log)}:`, {
        detail: logTail(record.log),
      });
    }
    if (await answers(node, cmd.agent)) break;
    if (Date.now() - started > START_TIMEOUT_MS) {
      throw new SandboxError(SandboxErrorCodes.START_FAILED, `${node.name}'s ${what} (pid ${pid}) did not answer within ${START_TIMEOUT_MS / 1000} s; last lines of ${displayPath(record.log)}:`, {
        detail: logTail(record.log),
      });
    }
    await sleep(100);
  }
  const port = cmd.agent ? `HTTP on port ${node.httpPort}` : `port ${node.port}`;
  out.say(`Started ${node.name}'s ${what} (pid ${pid}, ${port}) with the command line of up, in ${seconds(Date.now() - started)}. Watch it rejoin: ${cliCommand()} sandbox status${dirFlag(state.dir)}`);
  return 0;
}
