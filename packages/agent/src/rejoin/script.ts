/**
 * The `script` rejoin method: the operator's own command rebuilds the node. It gets the node and the
 * new primary as arguments ($1 node, $2 new primary) and in its environment, runs within a bound, and
 * its exit status and output tail are what the operation's record keeps.
 */
import { runOperatorCommand, type CommandRun } from '../operator-command.js';

export interface ScriptMember {
  readonly name: string;
  readonly host: string;
  readonly port: number;
}

export interface RejoinScript {
  readonly command: string;
  readonly cluster: string;
  readonly node: ScriptMember;
  readonly primary: ScriptMember;
  readonly timeoutMs: number;
  /** The salvage folder, when there is one, so the script can use the copies. */
  readonly salvageFolder?: string | null;
}

export function runRejoinScript(s: RejoinScript): Promise<CommandRun> {
  return runOperatorCommand({
    command: s.command,
    args: [s.node.name, s.primary.name],
    env: {
      PRIMACY_CLUSTER: s.cluster,
      PRIMACY_NODE: s.node.name,
      PRIMACY_NODE_HOST: s.node.host,
      PRIMACY_NODE_PORT: String(s.node.port),
      PRIMACY_PRIMARY: s.primary.name,
      PRIMACY_PRIMARY_HOST: s.primary.host,
      PRIMACY_PRIMARY_PORT: String(s.primary.port),
      PRIMACY_SALVAGE_DIR: s.salvageFolder ?? '',
    },
    timeoutMs: s.timeoutMs,
  });
}
