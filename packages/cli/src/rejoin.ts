/**
 * `primacy rejoin NODE`: a diverged node's rejoin, asked of the coordinator. The dry run says, from
 * the same pure rule the coordinator applies (chooseRejoin), what would be salvaged, undone or copied
 * and why the method is allowed or refused; the real run writes a request and follows the record
 * under rejoin/NODE until it ends.
 */
import { chooseRejoin, currentSalvage, rejoinPolicy } from '@primacy/agent';
import type { OperatorRequest, OpRecord, Primary, SalvageManifest } from '@primacy/common';
import type { Invocation, RejoinRequestMethod } from './args.js';
import type { ClusterView } from './cluster.js';
import { confirmAtTerminal, confirmationOf } from './confirm.js';
import type { ClusterClient } from './etcd.js';
import { CliError, ExitCode, refused, unknownNode } from './errors.js';
import { formatDuration } from './format.js';
import type { Io } from './io.js';
import { newRequestId, waitForAnswer } from './request.js';

type RejoinInvocation = Extract<Invocation, { command: 'rejoin' }>;

export interface RejoinPreview {
  readonly ok: boolean;
  readonly method: RejoinRequestMethod | 'none';
  readonly lines: readonly string[];
  /** Why not, when refused. */
  readonly reason: string | null;
}

function describeSalvage(s: SalvageManifest): string {
  const bytes = s.files.reduce((n, f) => n + f.size, 0);
  return `${s.gtids || 'nothing'} in ${s.folder} (${s.files.length} binlog file${s.files.length === 1 ? '' : 's'}, ${bytes} bytes, sha256 each; taken ${new Date(s.at).toISOString()})`;
}

/** What a rejoin of `node` would do now, and whether it may (pure: the view and the record of the current epoch). */
export function rejoinPreview(view: ClusterView, currentOp: OpRecord | null, p: Primary, node: string, method: RejoinRequestMethod | null): RejoinPreview {
  const m = view.members.get(node);
  const policy = rejoinPolicy(view);
  const chosen = method ?? policy.method;
  const lines = [`rejoin of ${node} in ${view.cluster} (primary ${p.node}, epoch ${p.epoch}): dry run, nothing is written`];
  lines.push(`  diverged:  ${m?.errant ? `transactions ${p.node} lacks: ${m.errant}` : 'no (its agent finds no transactions the primary lacks)'}`);
  const salvage = m ? currentSalvage(view, m) : null;
  const any = view.salvages.get(node);
  lines.push(`  salvage:   ${salvage ? describeSalvage(salvage) : any ? `only of an older binlog: ${describeSalvage(any)}` : m?.salvageProblem ? `failed: ${m.salvageProblem}` : 'none yet'}`);
  lines.push(`  method:    ${chosen}${method ? ' (asked with --method)' : ` (the cluster's rejoin.method${view.config.rejoin ? '' : ', by default'})`}`);
  const choice = chooseRejoin({ members: view.members, config: view.config, currentOp, salvages: view.salvages, rejoins: view.rejoins }, p, node, method ?? undefined);
  if (!choice.ok) {
    lines.push(`  refused:   ${choice.reason}`);
    return { ok: false, method: chosen, lines, reason: choice.reason };
  }
  const s = salvage!;
  const would =
    choice.method === 'flashback'
      ? `undo ${s.gtids} with mariadb-binlog --flashback from the salvage's ${s.files.map((f) => f.name).join(', ')} (it first checks binlog_format=ROW and binlog_row_image=FULL), reset its binlog to the shared history ${s.replayFrom || '(empty)'}`
      : choice.method === 'reseed'
        ? s.flavor === 'mysql'
          ? `replace ${node}'s data directory with ${choice.source?.node ?? '?'}'s by CLONE INSTANCE (the clone plugin; ${node} restarts, and counts as marked until its clone_status reads Completed)`
          : `drop ${node}'s data and copy ${choice.source?.node ?? '?'}'s with mariadb-dump --single-transaction --gtid (marked until the copy completes)`
        : `run its agent's rejoin.script with ${node} ${p.node} as arguments (PRIMACY_SALVAGE_DIR=${s.folder})`;
  lines.push(`  would:     ${would}, then replicate from ${p.node}`);
  lines.push(`  allowed:   ${choice.allowed}`);
  return { ok: true, method: choice.method, lines, reason: null };
}

export async function rejoin(client: ClusterClient, inv: RejoinInvocation, by: string, io: Io): Promise<number> {
  const print = (line: string): void => void io.stdout.write(`${line}\n`);
  const confirmation = inv.dryRun ? 'none' : confirmationOf('rejoin', inv.yes, io.stdin?.isTTY === true);
  const view = await client.readExisting();
  const p = view.primary;
  if (!p) throw refused(`cluster ${view.cluster} has no primary: there is nothing for ${inv.node} to rejoin`);
  if (!view.members.has(inv.node)) throw unknownNode(inv.node, view.cluster, [...view.members.keys()]);
  if (inv.node === p.node) throw refused(`${inv.node} is the primary of ${view.cluster} (epoch ${p.epoch})`);
  const { op: current } = await client.readOp(p.epoch);
  const preview = rejoinPreview(view, current, p, inv.node, inv.method);
  if (inv.dryRun) {
    for (const line of preview.lines) print(line);
    return preview.ok ? ExitCode.OK : ExitCode.FAILED;
  }
  if (!preview.ok) throw refused(`rejoin of ${inv.node} refused: ${preview.reason ?? '?'}; nothing was written (see primacy rejoin ${inv.node} --dry-run)`);
  if (confirmation === 'ask') await confirmAtTerminal(io, `Rejoin ${inv.node} by ${preview.method}? ${preview.lines.find((l) => l.startsWith('  would:'))?.trim() ?? ''}`);
  const now = Date.now();
  const id = newRequestId(now);
  const request: OperatorRequest = { kind: 'rejoin', to: inv.node, force: false, unfenced: false, ...(inv.method ? { method: inv.method } : {}), requestedAt: now, by };
  const revision = await client.writeRequest(id, request);
  if (!inv.wait) {
    print(id);
    return ExitCode.OK;
  }
  print(`requested a rejoin of ${inv.node} by ${preview.method}: request ${id}`);
  print(`waiting up to ${formatDuration(inv.timeoutMs)} for the coordinator${view.coordinator ? ` (${view.coordinator})` : ''} and ${inv.node}'s agent…`);
  // The rejoin's record carries the current epoch (a rejoin takes none); a refusal comes in ops/<epoch + 1>.
  const result = await waitForAnswer(client.requestFeed(id, revision), { requestId: id, kind: 'rejoin', afterEpoch: p.epoch - 1, timeoutMs: inv.timeoutMs, print, ...(io.signal ? { signal: io.signal } : {}) });
  if (result.code !== ExitCode.OK) throw new CliError(result.code, result.line);
  print(result.line);
  return ExitCode.OK;
}

/** A diverged node's recovery in one line, for status and explain: its salvage, the policy, its last rejoin. */
export function recoveryNote(view: Pick<ClusterView, 'members' | 'salvages' | 'rejoins' | 'config'>, node: string): string | null {
  const m = view.members.get(node);
  const last = view.rejoins.get(node);
  if (!m?.errant && !last) return null;
  const parts: string[] = [];
  const s = m ? currentSalvage(view, m) : null;
  if (m?.errant) {
    parts.push(s ? `salvaged ${s.gtids} into ${s.folder}` : m.salvageProblem ? `salvage failed: ${m.salvageProblem}` : 'not salvaged yet');
    parts.push(`rejoin policy: ${rejoinPolicy(view).method}`);
  }
  if (last) parts.push(`last rejoin${last.rejoin ? ` by ${last.rejoin.method}` : ''}: ${last.outcome}${last.outcome === 'running' ? ` (${last.steps.at(-1)?.name ?? '?'}: ${last.steps.at(-1)?.detail ?? ''})` : ` — ${last.reason}`}`);
  return parts.join('; ');
}

/**
 * For `explain`: a rejoin record's plan, and the recovery of each diverged node the record names
 * (the old primary of a failover, a node noted diverged in its steps).
 */
export function explainRecovery(view: Pick<ClusterView, 'members' | 'salvages' | 'rejoins' | 'config'>, op: OpRecord): string[] {
  const lines: string[] = [];
  const r = op.rejoin;
  if (r) {
    lines.push(`rejoin of ${r.node} by ${r.method}${r.allowed ? `: ${r.allowed}` : ''}`);
    lines.push(`  salvage: ${r.gtids || 'nothing'} in ${r.salvageFolder}${r.source ? `; reseed source ${r.source.node} (${r.source.host}:${r.source.port})` : ''}`);
  }
  const named = new Set([...(op.from ? [op.from] : []), ...op.steps.flatMap((s) => (/^diverged (\S+)$/.exec(s.name)?.[1] ?? []))]);
  for (const node of [...named].sort()) {
    const note = recoveryNote(view, node);
    if (note !== null && view.members.get(node)?.errant) lines.push(`${node} now: diverged (${view.members.get(node)?.errant}); ${note}`);
  }
  return lines;
}
