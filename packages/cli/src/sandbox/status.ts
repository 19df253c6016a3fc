/** `primacy sandbox status`, and the report `up` prints: the processes, then the cluster as etcd has it. */
import { join } from 'node:path';
import { REPO_ROOT } from './agent.js';
import type { SandboxCommand } from './args.js';
import { SandboxError, SandboxErrorCodes, errorLine } from './errors.js';
import type { Output } from './output.js';
import { isOurs } from './processes.js';
import { readState, type SandboxState } from './state.js';
import { displayPath, readCluster, renderCluster, renderHowTo, renderProcesses } from './view.js';

/** The `primacy` command as it can be typed from the current folder (the repository root, normally). */
export function cliCommand(): string {
  return `node ${displayPath(join(REPO_ROOT, 'packages/cli/dist/main.js'))}`;
}

export async function printReport(state: SandboxState, out: Output, options: { howTo: boolean; processes?: boolean }): Promise<void> {
  if (options.processes === true) out.say(`${renderProcesses(state)}\n`);
  let primary: string | null = null;
  if (!isOurs(state.etcd.process.pid, state.dir)) {
    out.say('etcd is not running, so there is no cluster status to show.');
  } else {
    try {
      const view = await readCluster(state.etcd.endpoint);
      primary = view.primary?.node ?? null;
      out.say(renderCluster(view, out.style));
    } catch (err) {
      out.say(`cannot read the cluster from etcd at ${state.etcd.endpoint}: ${errorLine(err)}`);
    }
  }
  if (options.howTo) out.say(`\n${renderHowTo(state, cliCommand(), primary)}`);
}

export function requireState(dir: string): SandboxState {
  const state = readState(dir);
  if (state === null) {
    throw new SandboxError(SandboxErrorCodes.NOT_FOUND, `no sandbox in ${dir}; start one with \`npm run sandbox\` or \`primacy sandbox up\``);
  }
  return state;
}

export async function status(cmd: Extract<SandboxCommand, { kind: 'status' }>, out: Output): Promise<number> {
  const state = requireState(cmd.dir);
  out.say(`Sandbox in ${displayPath(state.dir)}/ (created ${state.createdAt}, ${state.nodes.length} nodes${state.semiSync ? ', semi-sync' : ''}):`);
  await printReport(state, out, { howTo: false, processes: true });
  return 0;
}
