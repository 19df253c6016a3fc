/**
 * `primacy web`: a live page of one cluster or of every cluster under the root. It listens, reads
 * etcd once (which must work: exit 3 or 4 otherwise), then follows the watch until Ctrl-C.
 */
import { isValidName } from '@primacy/common';
import { DEFAULT_TIMEOUT_MS, type Invocation, type RequestOptions } from '../args.js';
import { operatorName } from '../commands.js';
import { FleetClient, type ClusterClient } from '../etcd.js';
import { CliError, ExitCode, unknownCluster, usageError } from '../errors.js';
import type { Io } from '../io.js';
import { buildRequest, checkRequest, newRequestId } from '../request.js';
import { LiveClusters } from './live.js';
import { StateHub, startWebServer, type ActionRequest, type WebServer } from './server.js';

type WebInvocation = Extract<Invocation, { command: 'web' }>;

/** The request `primacy switchover [--to NODE] --no-wait` writes. */
async function requestSwitchover(client: ClusterClient, to: string | null, by: string): Promise<string> {
  const o: RequestOptions = { to, force: false, unfenced: false, yes: false, wait: false, timeoutMs: DEFAULT_TIMEOUT_MS };
  const view = await client.readExisting();
  checkRequest(view, 'switchover', o);
  const now = Date.now();
  const id = newRequestId(now);
  await client.writeRequest(id, buildRequest('switchover', o, now, by));
  const p = view.primary!;
  return `requested switchover of ${p.node} (epoch ${p.epoch})${to ? ` to ${to}` : ''}: request ${id}; the page follows it`;
}

async function setPaused(client: ClusterClient, paused: boolean): Promise<string> {
  await client.readExisting();
  const name = client.target.cluster;
  if ((await client.setPaused(paused)) === 'unchanged') return `${name} is already ${paused ? 'paused' : 'not paused'}`;
  return paused ? `paused ${name}: no automatic failover until resumed` : `resumed ${name}: automatic failover is allowed again`;
}

function listenError(host: string, port: number, err: unknown): CliError {
  const code = (err as NodeJS.ErrnoException).code;
  const at = `${host}:${port}`;
  const why =
    code === 'EADDRINUSE'
      ? 'the address is in use (choose another --port, or 0 for any free one)'
      : code === 'EACCES'
        ? 'permission denied (ports below 1024 need root)'
        : code === 'EADDRNOTAVAIL' || code === 'ENOTFOUND' || code === 'EAI_AGAIN'
          ? 'no such address on this host (check --host)'
          : ((err as Error).message ?? String(err));
  return new CliError(ExitCode.FAILED, `cannot listen on ${at}: ${why}`, { cause: err });
}

export async function runWeb(inv: WebInvocation, io: Io): Promise<number> {
  const fleet = new FleetClient(inv.where);
  const hub = new StateHub();
  const live = new LiveClusters(fleet, inv.cluster, inv.allowActions, (state) => hub.publish(JSON.stringify(state)));
  const by = `${operatorName(io.env)} via primacy web`;
  const run = async (a: ActionRequest): Promise<string> => {
    if (inv.cluster !== null && a.cluster !== inv.cluster) throw unknownCluster(a.cluster, `${inv.where.root}/${a.cluster}/`, inv.where.endpoints);
    if (!isValidName(a.cluster)) throw usageError(`bad cluster name "${a.cluster}"`);
    if (a.to !== null && !isValidName(a.to)) throw usageError(`bad node name "${a.to}"`);
    const client = live.client(a.cluster);
    switch (a.action) {
      case 'switchover':
        return requestSwitchover(client, a.to, `${by} from ${a.from}`);
      case 'pause':
      case 'resume':
        return setPaused(client, a.action === 'pause');
    }
  };
  let server: WebServer | null = null;
  try {
    server = await startWebServer({ host: inv.host, port: inv.port, hub, run: inv.allowActions ? run : null }).catch((err: unknown) => {
      throw listenError(inv.host, inv.port, err);
    });
    await live.start();
    const scope = inv.cluster === null ? `every cluster under ${inv.where.root}` : `cluster ${inv.cluster}`;
    io.stdout.write(`serving ${scope} at ${server.url} (${inv.allowActions ? 'switchover, pause and resume allowed' : 'read-only'}); Ctrl-C to stop\n`);
    if (live.latest.clusters.length === 0) io.stderr.write(`primacy: no cluster under ${inv.where.root} yet; the page shows each as it appears\n`);
    await new Promise<void>((resolve) => {
      if (!io.signal || io.signal.aborted) return resolve();
      io.signal.addEventListener('abort', () => resolve(), { once: true });
    });
    return ExitCode.OK;
  } finally {
    await live.stop();
    await server?.close();
    fleet.close();
  }
}
