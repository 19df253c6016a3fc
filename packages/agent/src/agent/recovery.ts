/**
 * Crash recovery of the agent's own node (issue 11): when the node diverged (it has transactions the
 * primary lacks), salvage them first, and publish the manifest under salvage/<node>; then, when the
 * coordinator records a rejoin for this node, carry it out (flashback, reseed or the operator's
 * script) and make the node replicate from the primary. Both run in the background of the node loop,
 * which keeps probing and publishing (the progress goes out in the member key's `rejoin`).
 */
import { describeError, type AgentConfig, type Flavor, type MemberState, type NodeState, type OpRecord, type SalvageManifest } from '@primacy/common';
import type { Clock } from '../clock.js';
import type { ClusterStore } from '../etcd/store.js';
import type { Logger } from '../log.js';
import type { Endpoint } from '../node/driver.js';
import { connectNode } from '../node/index.js';
import { errantAgainst, type RecoveryInput } from '../plan.js';
import { flashback, readReseedMark, replicateFromPrimary, reseed, runRejoinScript, salvage, salvageState } from '../rejoin/index.js';
import type { ClusterWatch } from './cluster-watch.js';
import type { NodeMonitor } from './node-monitor.js';
import { salvageLineage } from './salvage-lineage.js';

/** A failed salvage is tried again after this long (a crash folder fixed by an operator, say). */
const SALVAGE_RETRY_MS = 30_000;

/** How often a reseed's progress is published. */
const PROGRESS_EVERY_MS = 1000;

export interface RecoveryDeps {
  readonly config: AgentConfig;
  readonly clock: Clock;
  readonly log: Logger;
  readonly store: ClusterStore;
  readonly monitor: NodeMonitor;
  readonly cluster: ClusterWatch;
  readonly publishSoon: () => void;
  /** The node replicates from the primary again. */
  readonly rejoined: () => void;
}

type Report = NonNullable<MemberState['rejoin']>;

export class Recovery {
  private running: Promise<void> | null = null;
  private salvageFailed: { problem: string; at: number } | null = null;
  private rejoinReport: Report | null = null;
  private carriedOut: number | null = null;

  constructor(private readonly d: RecoveryDeps) {}

  get salvageProblem(): string | null {
    return this.salvageFailed?.problem ?? null;
  }
  get report(): MemberState['rejoin'] {
    return this.rejoinReport;
  }

  input(): RecoveryInput {
    const snap = this.d.cluster.snapshot;
    const self = this.d.config.node;
    const failed = this.salvageFailed;
    return {
      salvage: snap?.salvages.get(self) ?? null,
      rejoin: snap?.rejoins.get(self) ?? null,
      busy: this.running !== null,
      salvageHeld: failed !== null && this.d.clock.now() - failed.at < SALVAGE_RETRY_MS,
      carriedOut: this.carriedOut,
    };
  }

  /** The agent's own server, as its rejoin tools reach it. */
  private get endpoint(): Endpoint {
    const m = this.d.config.mysql;
    return { host: m.host, port: m.port, socket: m.socket, user: m.user, password: this.d.config.secrets.mysqlPassword };
  }

  startSalvage(reason: string): void {
    this.background(() => this.salvageNow(reason));
  }

  startRejoin(record: OpRecord): void {
    this.background(() => this.rejoinNow(record));
  }

  private background(run: () => Promise<void>): void {
    if (this.running !== null) return;
    this.running = run().finally(() => {
      this.running = null;
      this.d.publishSoon();
    });
  }

  private async salvageNow(reason: string): Promise<void> {
    const { config, log } = this.d;
    const s = this.d.monitor.observation?.state;
    const primaryServer = this.d.cluster.primaryMember?.server;
    const primaryState = primaryServer ? salvageState(primaryServer) : undefined;
    const snap = this.d.cluster.snapshot;
    const previous = snap?.salvages.get(config.node) ?? null;
    try {
      if (!s) throw new Error('the server has not answered a probe yet');
      if (primaryState === undefined) throw new Error(`the primary's binlog state is unknown (its member key shows none)`);
      const copied = await salvage({ node: config.node, endpoint: this.endpoint, flavor: s.flavor, primaryState, crashDir: config.rejoin.crashDir, timeoutMs: config.rejoin.timeoutMs });
      const manifest = { ...copied, ...salvageLineage(previous, snap?.rejoins.get(config.node) ?? null) };
      await this.d.store.putSalvage(manifest);
      this.salvageFailed = null;
      const replaced = manifest.earlier?.at(-1);
      const after = manifest.afterRejoin ? ` after the failed rejoin by ${manifest.afterRejoin.method} changed the node` : '';
      const since = replaced ? `; it replaces the salvage of ${new Date(replaced.at).toISOString()} (binlog ${replaced.nodeState}, kept in ${replaced.folder})${after}` : '';
      log.warn({ reason, gtids: manifest.gtids, folder: manifest.folder, files: manifest.files.map((f) => f.name), earlier: manifest.earlier?.length ?? 0 }, `salvaged ${manifest.gtids || 'nothing'} into ${manifest.folder}${since}`);
    } catch (err) {
      const problem = describeError(err);
      if (problem !== this.salvageFailed?.problem) log.error({ reason, err: problem }, `salvage failed; the node was left as it was (tried again every ${SALVAGE_RETRY_MS / 1000} s)`);
      this.salvageFailed = { problem, at: this.d.clock.now() };
    }
  }

  private progress(record: OpRecord, step: string, outcome: Report['outcome'], detail: string): void {
    this.rejoinReport = { startedAt: record.startedAt, step, outcome, detail };
    this.d.publishSoon();
  }

  private async rejoinNow(record: OpRecord): Promise<void> {
    const { config, log } = this.d;
    const plan = record.rejoin;
    const snap = this.d.cluster.snapshot;
    const manifest = snap?.salvages.get(config.node);
    const p = snap?.primary;
    const primaryMember = this.d.cluster.primaryMember;
    const s = this.d.monitor.observation?.state;
    if (!plan || !manifest || !p || !primaryMember || !s) return;
    let step: string = plan.method;
    this.progress(record, step, 'running', `${plan.method} of ${plan.gtids} (salvage in ${plan.salvageFolder})`);
    log.warn({ method: plan.method, gtids: plan.gtids, allowed: plan.allowed }, `rejoin by ${plan.method} started`);
    try {
      // A node a reseed left half-copied has partial data: only a reseed may touch it.
      const mark = plan.method === 'reseed' ? null : await readReseedMark(this.endpoint, s.flavor);
      if (mark !== null) throw new Error(`the node is marked as needing a reseed (from ${mark.source}, started ${mark.startedAt.toISOString()}): it holds partial data, and only a reseed rejoins it`);
      const detail = await this.method(record, manifest, p, s.flavor);
      step = 'replicate';
      this.progress(record, step, 'running', `${detail}; checking the node against ${p.node}`);
      const after = await this.observeNode(s.flavor);
      const still = after ? errantAgainst(after, primaryMember) : null;
      if (still !== null) throw new Error(`after the ${plan.method}, the node still has transactions ${p.node} lacks: ${still}`);
      const started = await replicateFromPrimary(config.node, this.endpoint, s.flavor, { host: p.host, port: p.port, user: config.replication.user, password: config.secrets.replicationPassword });
      this.d.rejoined();
      this.progress(record, 'replicating', 'done', `${detail}; replicating from ${p.node} (both threads running after ${started.ms} ms)`);
      log.warn({ method: plan.method, detail }, `rejoined by ${plan.method}: replicating from ${p.node}`);
    } catch (err) {
      // Whatever the method changed stays as it is, out of rotation. Once the record ends, a binlog the
      // method moved is salvaged again (salvageLineage names this attempt); it is tried again only on a
      // new decision: a request, a changed policy or node (coordinator/rejoin.ts), never in a loop here.
      const line = describeError(err);
      this.progress(record, step, 'failed', line);
      log.error({ method: plan.method, step, err: line }, `rejoin by ${plan.method} failed; the node stays diverged`);
    } finally {
      this.carriedOut = record.startedAt;
    }
  }

  /** Runs the recorded method; what it did, in words. */
  private async method(record: OpRecord, manifest: SalvageManifest, p: { node: string; host: string; port: number }, flavor: Flavor): Promise<string> {
    const { config } = this.d;
    const plan = record.rejoin!;
    switch (plan.method) {
      case 'flashback': {
        const done = await flashback({ node: config.node, endpoint: this.endpoint, manifest, timeoutMs: config.rejoin.timeoutMs });
        return `flashback undid ${done.undone || 'nothing'} (${done.bytes} bytes); the node stands at ${done.position || 'an empty position'}`;
      }
      case 'reseed': {
        const src = plan.source;
        if (!src) throw new Error('the rejoin record names no reseed source');
        const done = await reseed({
          node: config.node,
          endpoint: this.endpoint,
          flavor,
          source: { name: src.node, endpoint: { host: src.host, port: src.port, user: config.mysql.user, password: config.secrets.mysqlPassword } },
          manifest,
          timeoutMs: config.rejoin.timeoutMs,
          progressEveryMs: PROGRESS_EVERY_MS,
          onProgress: (x) => this.progress(record, 'reseed', 'running', x.stage !== undefined ? `cloned ${x.bytes} of about ${x.estimate ?? '?'} bytes from ${src.node} (stage ${x.stage ?? 'not started'})` : `copied ${x.bytes} bytes, ${x.tables} tables from ${src.node}${x.table ? ` (at ${x.table})` : ''}`),
        });
        return `reseed copied ${done.bytes} bytes, ${done.tables} tables of ${done.databases.length} databases from ${src.node} in ${done.ms} ms; the node stands at ${done.position}`;
      }
      case 'script': {
        const command = config.rejoin.script;
        if (command === undefined) throw new Error(`the rejoin method is script, but this agent's config has no rejoin.script`);
        const m = config.mysql;
        const run = await runRejoinScript({
          command,
          cluster: config.cluster,
          node: { name: config.node, host: m.advertiseHost ?? m.host, port: m.advertisePort ?? m.port },
          primary: { name: p.node, host: p.host, port: p.port },
          timeoutMs: config.rejoin.scriptTimeoutMs,
          salvageFolder: manifest.folder,
        });
        const tail = run.tail === '' ? '' : `: ${run.tail.split('\n').slice(-3).join(' | ')}`;
        if (!run.ok) throw new Error(`the rejoin script ${run.outcome}${tail}`);
        return `the rejoin script exited 0 in ${run.ms} ms${tail}`;
      }
    }
  }

  /** A fresh look at the node, on a connection of its own (the monitor's keeps probing meanwhile). */
  private async observeNode(flavor: Flavor): Promise<NodeState | null> {
    const t = this.d.config.timings;
    const driver = connectNode(this.endpoint, { flavor, connectTimeoutMs: t.probeTimeoutMs, queryTimeoutMs: t.probeTimeoutMs * 5 });
    try {
      return (await driver.observe()).state ?? null;
    } finally {
      await driver.close().catch(() => undefined);
    }
  }
}
