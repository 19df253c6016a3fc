/**
 * The thin shell of each command: read etcd, hand the data to a pure renderer, write the lines.
 */
import { hostname, userInfo } from 'node:os';
import type { Durability } from '@primacy/common';
import type { EtcdWhere, Invocation, RequestOptions } from './args.js';
import { editConfig, maintenance, showConfig } from './config-commands.js';
import { confirmAtTerminal } from './confirm.js';
import { hostPort, mysqlDsn, readyPrimary, readyReplicas } from './dsn.js';
import { fleetModel, renderClusters, renderFleetStatus } from './fleet.js';
import type { ClusterView } from './cluster.js';
import { ClusterClient, FleetClient } from './etcd.js';
import { durabilityModel, meaningOf, renderDurability } from './durability.js';
import { CliError, ExitCode, refused } from './errors.js';
import { renderExplain } from './explain.js';
import { historyModel, renderHistory } from './history.js';
import { styleFor, writeLines, type Io } from './io.js';
import { buildRequest, checkRequest, confirmUnfenced, newRequestId, requestConfirmation, requestQuestion, waitForAnswer, type RequestKind } from './request.js';
import { explainRecovery, rejoin } from './rejoin.js';
import { renderStatus, statusModel } from './status.js';
import { renderTopology } from './topology.js';

type ClusterInvocation = Exclude<Invocation, { command: 'help' | 'version' | 'sandbox' | 'config' }>;

export async function runClusterCommand(inv: ClusterInvocation, io: Io): Promise<number> {
  if (inv.command === 'web') {
    // Loaded only here: no other command needs an HTTP server.
    const { runWeb } = await import('./web/index.js');
    return await runWeb(inv, io);
  }
  if (inv.command === 'clusters') return await fleet(inv.where, inv.json, inv.summary, io);
  const client = new ClusterClient(inv.target);
  try {
    switch (inv.command) {
      case 'status':
        return inv.watch ? await watchStatus(client, inv.json, io) : await status(client, inv.json, io);
      case 'topology':
        writeLines(io.stdout, renderTopology(await client.readExisting(), styleFor(io)));
        return ExitCode.OK;
      case 'history':
        return await history(client, inv.json, io);
      case 'explain':
        return await explain(client, inv.epoch, inv.json, io);
      case 'pause':
      case 'resume':
        return await setPaused(client, inv.command === 'pause', io);
      case 'durability':
        return inv.mode === null ? await showDurability(client, io) : await setDurability(client, inv.mode, io);
      case 'switchover':
      case 'failover':
        return await request(client, inv.command, inv.request, io);
      case 'rejoin':
        return await rejoin(client, inv, operatorName(io.env), io);
      case 'show-config':
        return await showConfig(client, inv.json, io);
      case 'edit-config':
        return await editConfig(client, inv, io);
      case 'maintenance':
        return await maintenance(client, inv.node, inv.on, io);
      case 'which-primary':
        io.stdout.write(`${hostPort(readyPrimary(await client.readExisting()))}\n`);
        return ExitCode.OK;
      case 'dsn': {
        const view = await client.readExisting();
        const endpoints = inv.role === 'primary' ? [readyPrimary(view)] : readyReplicas(view, inv.maxLagMs ?? view.config.maxLagMs ?? null);
        writeLines(io.stdout, endpoints.map((e) => mysqlDsn(e, inv.dbUser, inv.database)));
        return ExitCode.OK;
      }
    }
  } finally {
    client.close();
  }
}

function json(io: Io, value: unknown): void {
  io.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

async function status(client: ClusterClient, asJson: boolean, io: Io): Promise<number> {
  const view = await client.readExisting();
  const now = Date.now();
  const model = statusModel(view, now);
  if (asJson) json(io, model);
  else writeLines(io.stdout, renderStatus(model, now, styleFor(io)));
  return ExitCode.OK;
}

const CLEAR_SCREEN = '\x1b[H\x1b[2J';

/**
 * Redraws on every change under the cluster prefix and every second, until Ctrl-C. Off a terminal
 * there is nothing to redraw, so a frame (or a JSON line) is printed only when the revision changed.
 */
async function watchStatus(client: ClusterClient, asJson: boolean, io: Io): Promise<number> {
  await client.readExisting();
  const style = styleFor(io);
  let lastRevision: string | null = null;
  let drawing = false;
  let again = false;
  const draw = async (): Promise<void> => {
    if (drawing) {
      again = true;
      return;
    }
    drawing = true;
    try {
      do {
        again = false;
        let view: ClusterView | null = null;
        let failure: string | null = null;
        try {
          view = await client.read();
        } catch (err) {
          failure = err instanceof CliError ? err.message : String(err);
        }
        if (io.signal?.aborted) return;
        const now = Date.now();
        const changed = view !== null && view.revision !== lastRevision;
        if (view) lastRevision = view.revision;
        if (asJson) {
          if (view && changed) io.stdout.write(`${JSON.stringify(statusModel(view, now))}\n`);
          if (failure) io.stderr.write(`primacy: ${failure}\n`);
          continue;
        }
        if (!io.isTTY && !changed && !failure) continue;
        const body = view ? renderStatus(statusModel(view, now), now, style) : [];
        const lines = [...(failure ? [style.red(`${failure}; retrying`)] : []), ...body, '', style.dim(`watching ${client.keys.prefix}; Ctrl-C to stop`)];
        io.stdout.write(`${io.isTTY ? CLEAR_SCREEN : '\n'}${lines.join('\n')}\n`);
      } while (again && !io.signal?.aborted);
    } finally {
      drawing = false;
    }
  };
  let watchError: unknown = null;
  const stopWatch = await client.watchCluster(() => void draw(), (err) => (watchError = err));
  const tick = setInterval(() => void draw(), 1000);
  try {
    await draw();
    await new Promise<void>((resolve) => {
      if (!io.signal || io.signal.aborted) return resolve();
      io.signal.addEventListener('abort', () => resolve(), { once: true });
    });
  } finally {
    clearInterval(tick);
    await stopWatch();
  }
  if (watchError !== null) throw watchError;
  return ExitCode.OK;
}

async function history(client: ClusterClient, asJson: boolean, io: Io): Promise<number> {
  const view = await client.readExisting();
  const { ops, warnings } = await client.readOps();
  const model = historyModel(view.cluster, ops, warnings);
  if (asJson) json(io, model);
  else writeLines(io.stdout, renderHistory(model, Date.now(), styleFor(io)));
  return ExitCode.OK;
}

async function explain(client: ClusterClient, epoch: number | null, asJson: boolean, io: Io): Promise<number> {
  const view = await client.readExisting();
  const { op, warnings } = epoch === null ? { op: view.lastOp, warnings: view.warnings.filter((w) => w.includes(client.keys.opsPrefix)) } : await client.readOp(epoch);
  if (op === null) {
    const first = warnings[0];
    if (first !== undefined) throw refused(first);
    throw new CliError(
      ExitCode.UNKNOWN,
      epoch === null ? `no operations recorded for cluster ${view.cluster} yet` : `no operation recorded for epoch ${epoch} in cluster ${view.cluster} (see primacy history)`,
    );
  }
  const model = { version: 1 as const, cluster: view.cluster, op, warnings: [] };
  if (asJson) json(io, model);
  else writeLines(io.stdout, [...renderExplain(model, Date.now(), styleFor(io)), ...explainRecovery(view, op)]);
  return ExitCode.OK;
}

async function setPaused(client: ClusterClient, paused: boolean, io: Io): Promise<number> {
  await client.readExisting();
  const result = await client.setPaused(paused);
  const name = client.target.cluster;
  const line =
    result === 'unchanged'
      ? `${name} is already ${paused ? 'paused' : 'not paused'}`
      : paused
        ? `paused ${name}: no automatic failover until primacy resume`
        : `resumed ${name}: automatic failover is allowed again`;
  io.stdout.write(`${line}\n`);
  return ExitCode.OK;
}

async function showDurability(client: ClusterClient, io: Io): Promise<number> {
  const view = await client.readExisting();
  writeLines(io.stdout, [...renderDurability(durabilityModel(view), Date.now(), styleFor(io)), ...view.warnings.map((w) => styleFor(io).yellow(`warning: ${w}`))]);
  return ExitCode.OK;
}

async function setDurability(client: ClusterClient, mode: Durability, io: Io): Promise<number> {
  await client.readExisting();
  const result = await client.setDurability(mode);
  const name = client.target.cluster;
  io.stdout.write(`${result === 'unchanged' ? `the durability of ${name} is already` : `set the durability of ${name} to`} ${meaningOf(mode)}\n`);
  return ExitCode.OK;
}

/** `user@host`, for the request's `by`. */
export function operatorName(env: Io['env']): string {
  let user: string | undefined;
  try {
    user = userInfo().username;
  } catch {
    user = env['USER'] ?? env['LOGNAME'];
  }
  return `${user || 'unknown'}@${hostname()}`;
}

/** `clusters` and `status --all`: one read of the fleet at one revision, which skips history/ and old ops/. */
async function fleet(where: EtcdWhere, asJson: boolean, summary: boolean, io: Io): Promise<number> {
  const client = new FleetClient(where);
  try {
    const { revision, clusters } = await client.readFleet();
    const now = Date.now();
    const model = fleetModel(where.root, revision, clusters, now);
    if (asJson) json(io, model);
    else writeLines(io.stdout, summary ? renderFleetStatus(model, now, styleFor(io)) : renderClusters(model, now, styleFor(io)));
    return ExitCode.OK;
  } finally {
    client.close();
  }
}

async function request(client: ClusterClient, kind: RequestKind, o: RequestOptions, io: Io): Promise<number> {
  const confirmation = requestConfirmation(kind, o, io.stdin?.isTTY === true);
  const view = await client.readExisting();
  checkRequest(view, kind, o);
  if (confirmation === 'ask-unfenced') await confirmUnfenced(view, o, io);
  if (confirmation === 'ask') await confirmAtTerminal(io, requestQuestion(view, kind, o));
  const now = Date.now();
  const id = newRequestId(now);
  const revision = await client.writeRequest(id, buildRequest(kind, o, now, operatorName(io.env)));
  if (!o.wait) {
    io.stdout.write(`${id}\n`);
    return ExitCode.OK;
  }
  const p = view.primary!;
  const print = (line: string) => io.stdout.write(`${line}\n`);
  print(`requested ${kind} of ${p.node} (epoch ${p.epoch})${o.to ? ` to ${o.to}` : ''}${o.force ? ', forced' : ''}${o.unfenced ? ', unfenced' : ''}: request ${id}`);
  print(`waiting up to ${Math.round(o.timeoutMs / 100) / 10} s for the coordinator${view.coordinator ? ` (${view.coordinator})` : ''}…`);
  const result = await waitForAnswer(client.requestFeed(id, revision), { requestId: id, kind, afterEpoch: p.epoch, timeoutMs: o.timeoutMs, print, ...(io.signal ? { signal: io.signal } : {}) });
  if (result.code !== ExitCode.OK) throw new CliError(result.code, result.line);
  print(result.line);
  return ExitCode.OK;
}
