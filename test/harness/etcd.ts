import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { promisify } from 'node:util';
import { Etcd3, type IOptions } from 'etcd3';
import { resilientEtcdOptions } from '@primacy/agent';
import { freePorts, isAddressInUse, LOOPBACK } from './ports.js';
import {
  findExecutable,
  harnessDir,
  logTail,
  onCleanup,
  removeDir,
  spawnManaged,
  type ManagedProcess,
} from './processes.js';
import { errorMessage, WaitAborted, waitFor } from './wait.js';

export interface EtcdMember {
  readonly name: string;
  /** Client URL, `http://127.0.0.1:PORT` (`https://` with `clientTls`). */
  readonly endpoint: string;
  readonly peerUrl: string;
  readonly dataDir: string;
  readonly logFile: string;
  /** Pid of the latest start; stays set after the process exits. */
  readonly pid: number;
  isRunning(): boolean;
  /** SIGTERM, wait for the exit. */
  stop(): Promise<void>;
  /** SIGKILL, wait for the exit. */
  kill(): Promise<void>;
  /** SIGSTOP: the member hangs without closing its connections. */
  pause(): void;
  /** SIGCONT. */
  resume(): void;
  /**
   * Restarts with the same data dir and ports, rejoining the cluster. Waits for `/health` (it needs a
   * leader, so a quorum) unless `waitForHealth` is false, then only until the client port answers.
   */
  start(options?: { waitForHealth?: boolean }): Promise<void>;
}

export interface EtcdCluster {
  readonly endpoints: string[];
  readonly members: EtcdMember[];
  /** With `clientTls`: the CA that signed the servers' certificates, and a client certificate it signed. */
  readonly tls: ClientTlsFiles | null;
  /**
   * A new etcd3 client for all endpoints, closed by `stop()` and by cleanup. Unary calls get a 5 s
   * deadline, there is no per-host circuit breaker (see resilientEtcdOptions), and reconnects back off
   * for at most 1 s; `options` override each of these. With `clientTls` or `rootPassword` it uses
   * the client certificate and the root user.
   */
  client(options?: Partial<IOptions>): Etcd3;
  /** The member that is the raft leader now, as seen by the first member that answers. */
  leader(): Promise<EtcdMember>;
  /** Closes the clients, kills the members and removes their data. */
  stop(): Promise<void>;
}

export interface EtcdOptions {
  members: 1 | 3;
  /** Raft heartbeat; loopback round trips are well under a millisecond. */
  heartbeatMs?: number;
  electionTimeoutMs?: number;
  startTimeoutMs?: number;
  /**
   * Clients must speak TLS and show a certificate: a throwaway CA, a server certificate for
   * 127.0.0.1 and a client certificate are made with openssl in the cluster's folder (see `tls`).
   * Readiness is then polled on a plain-http metrics URL, and `leader()` is not available.
   */
  clientTls?: boolean;
  /** Once the cluster is up, etcd auth is enabled with a `root` user of this password. */
  rootPassword?: string;
}

/** PEM files. */
export interface ClientTlsFiles {
  readonly ca: string;
  readonly cert: string;
  readonly key: string;
}

export interface TestCertificates extends ClientTlsFiles {
  readonly serverCert: string;
  readonly serverKey: string;
}

const run = promisify(execFile);

/**
 * A throwaway CA in `dir`, with a server certificate for 127.0.0.1 and a client certificate signed
 * by it, valid for a day. P-256 keys: made in milliseconds.
 */
export async function makeTestCertificates(dir: string): Promise<TestCertificates> {
  const openssl = findExecutable('openssl');
  const f = (name: string): string => join(dir, name);
  const ssl = (...args: string[]) => run(openssl, args, { cwd: dir, timeout: 10_000 });
  const newKey = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  await ssl('req', '-x509', ...newKey, '-subj', '/CN=primacy test CA', '-days', '1', '-keyout', f('ca.key'), '-out', f('ca.crt'));
  const sign = async (name: string, cn: string, extensions: string): Promise<void> => {
    await writeFile(f(`${name}.ext`), extensions);
    await ssl('req', ...newKey, '-subj', `/CN=${cn}`, '-keyout', f(`${name}.key`), '-out', f(`${name}.csr`));
    await ssl('x509', '-req', '-in', f(`${name}.csr`), '-CA', f('ca.crt'), '-CAkey', f('ca.key'), '-CAcreateserial', '-days', '1', '-extfile', f(`${name}.ext`), '-out', f(`${name}.crt`));
  };
  await sign('server', LOOPBACK, `subjectAltName=IP:${LOOPBACK}\nextendedKeyUsage=serverAuth\n`);
  await sign('client', 'primacy-test-client', 'extendedKeyUsage=clientAuth\n');
  return { ca: f('ca.crt'), cert: f('client.crt'), key: f('client.key'), serverCert: f('server.crt'), serverKey: f('server.key') };
}

const UNARY_DEADLINE_MS = 5_000;

const START_ATTEMPTS = 3;

function etcdBinary(): string {
  return findExecutable('etcd');
}

async function fetchJson(url: string, init: RequestInit = {}, timeoutMs = 1_000): Promise<unknown> {
  const response = await fetch(url, { ...init, signal: AbortSignal.timeout(timeoutMs) });
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  return response.json();
}

function field(value: unknown, key: string): unknown {
  return typeof value === 'object' && value !== null ? (value as Record<string, unknown>)[key] : undefined;
}

async function isHealthy(endpoint: string): Promise<boolean> {
  const body = await fetchJson(`${endpoint}/health`);
  return field(body, 'health') === 'true';
}

/**
 * etcd3's `close()` leaves open watchers behind, and its watch manager then retries their stream for
 * ever, which keeps the process alive. Emptying its (internal) list of watchers makes the next
 * retry a no-op. Cancelling each watcher instead would wait for a server that may be paused or cut.
 */
function forgetWatchers(client: Etcd3): void {
  const manager: unknown = Reflect.get(client, 'watchManager');
  if (typeof manager === 'object' && manager !== null && Array.isArray(Reflect.get(manager, 'watchers'))) {
    Reflect.set(manager, 'watchers', []);
  }
}

interface MemberConfig {
  name: string;
  clientPort: number;
  peerPort: number;
  /** With client TLS: where /health answers over plain http. */
  metricsPort?: number;
}

class Member implements EtcdMember {
  readonly endpoint: string;
  readonly peerUrl: string;
  readonly dataDir: string;
  readonly logFile: string;
  /** Where /health and /version answer over plain http. */
  readonly httpUrl: string;
  private process: ManagedProcess | undefined;

  constructor(
    private readonly config: MemberConfig,
    private readonly clusterDir: string,
    private readonly args: () => string[],
  ) {
    this.endpoint = `${config.metricsPort === undefined ? 'http' : 'https'}://${LOOPBACK}:${config.clientPort}`;
    this.httpUrl = config.metricsPort === undefined ? this.endpoint : `http://${LOOPBACK}:${config.metricsPort}`;
    this.peerUrl = `http://${LOOPBACK}:${config.peerPort}`;
    this.dataDir = join(clusterDir, `${config.name}.etcd`);
    this.logFile = join(clusterDir, `${config.name}.log`);
  }

  get name(): string {
    return this.config.name;
  }

  get pid(): number {
    if (this.process === undefined) throw new Error(`${this.name} was never started`);
    return this.process.pid;
  }

  isRunning(): boolean {
    return this.process?.isRunning() ?? false;
  }

  async spawn(): Promise<void> {
    if (this.isRunning()) throw new Error(`${this.name} is already running`);
    this.process = await spawnManaged({
      name: this.name,
      command: etcdBinary(),
      args: this.args(),
      logFile: this.logFile,
      cwd: this.clusterDir,
    });
  }

  /** Waits for `/health` (or only `/version` when a quorum is not expected), failing fast on exit. */
  async waitReady(timeoutMs: number, waitForHealth = true): Promise<void> {
    const proc = this.process;
    if (proc === undefined) throw new Error(`${this.name} was never started`);
    await waitFor(
      `etcd member ${this.name} at ${this.endpoint}`,
      async () => {
        if (!proc.isRunning()) throw new WaitAborted(`${this.name} exited`);
        if (!waitForHealth) return (await fetchJson(`${this.httpUrl}/version`)) === undefined ? undefined : true;
        return (await isHealthy(this.httpUrl)) ? true : undefined;
      },
      { timeoutMs, intervalMs: 50 },
    );
  }

  failureReport(reason: unknown): string {
    return `etcd member ${this.name} did not become ready: ${errorMessage(reason)}\n--- last lines of ${this.logFile}:\n${logTail(this.logFile)}`;
  }

  async start(options: { waitForHealth?: boolean } = {}): Promise<void> {
    await this.spawn();
    try {
      await this.waitReady(20_000, options.waitForHealth ?? true);
    } catch (error) {
      const report = this.failureReport(error);
      await this.kill();
      throw new Error(report);
    }
  }

  async stop(): Promise<void> {
    await this.process?.terminate(10_000);
  }

  async kill(): Promise<void> {
    await this.process?.kill();
  }

  pause(): void {
    if (this.process === undefined) throw new Error(`${this.name} was never started`);
    this.process.pause();
  }

  resume(): void {
    if (this.process === undefined) throw new Error(`${this.name} was never started`);
    this.process.resume();
  }
}

function memberArgs(member: Member, config: MemberConfig, initialCluster: string, token: string, options: EtcdOptions, certs: TestCertificates | null): string[] {
  const tls = certs
    ? [
        `--cert-file=${certs.serverCert}`,
        `--key-file=${certs.serverKey}`,
        `--trusted-ca-file=${certs.ca}`,
        '--client-cert-auth',
        `--listen-metrics-urls=${member.httpUrl}`,
      ]
    : [];
  return [
    ...tls,
    `--name=${config.name}`,
    `--data-dir=${member.dataDir}`,
    `--listen-client-urls=${member.endpoint}`,
    `--advertise-client-urls=${member.endpoint}`,
    `--listen-peer-urls=${member.peerUrl}`,
    `--initial-advertise-peer-urls=${member.peerUrl}`,
    // Ignored by etcd once the data dir holds a WAL, so restarts with the same flags rejoin.
    `--initial-cluster=${initialCluster}`,
    '--initial-cluster-state=new',
    `--initial-cluster-token=${token}`,
    `--heartbeat-interval=${options.heartbeatMs ?? 100}`,
    `--election-timeout=${options.electionTimeoutMs ?? 1_000}`,
    '--logger=zap',
    '--log-outputs=stderr',
  ];
}

async function startOnce(options: EtcdOptions): Promise<Cluster> {
  const count = options.members;
  const perMember = options.clientTls ? 3 : 2;
  const ports = await freePorts(count * perMember);
  const dir = await harnessDir('etcd');
  const configs: MemberConfig[] = [];
  for (let i = 0; i < count; i++) {
    const [clientPort, peerPort, metricsPort] = ports.slice(perMember * i, perMember * (i + 1));
    if (clientPort === undefined || peerPort === undefined) throw new Error('not enough ports');
    configs.push({ name: `etcd${i + 1}`, clientPort, peerPort, ...(metricsPort === undefined ? {} : { metricsPort }) });
  }
  let certs: TestCertificates | null;
  try {
    certs = options.clientTls ? await makeTestCertificates(dir) : null;
  } catch (error) {
    await removeDir(dir);
    throw error;
  }
  const initialCluster = configs.map((c) => `${c.name}=http://${LOOPBACK}:${c.peerPort}`).join(',');
  const token = `primacy-${process.pid}-${basename(dir)}`;
  const members: Member[] = configs.map((config) => {
    const member: Member = new Member(config, dir, () => memberArgs(member, config, initialCluster, token, options, certs));
    return member;
  });
  const cluster = new Cluster(members, dir, certs, options.rootPassword ?? null);
  try {
    await Promise.all(members.map((m) => m.spawn()));
    // Members of a new cluster wait for each other, so they are started together and awaited together.
    await Promise.all(
      members.map((m) =>
        m.waitReady(options.startTimeoutMs ?? 20_000).catch((error: unknown) => {
          throw new StartError(m.failureReport(error), isAddressInUse(logTail(m.logFile, 50)));
        }),
      ),
    );
    if (options.rootPassword !== undefined) await enableAuth(cluster.endpoints, certs, options.rootPassword);
  } catch (error) {
    await cluster.stop();
    throw error;
  }
  return cluster;
}

/** etcd 3.4 enables auth only through the v3 API and only once a root user exists. */
async function enableAuth(endpoints: readonly string[], certs: ClientTlsFiles | null, password: string): Promise<void> {
  const tls = certs ? [`--cacert=${certs.ca}`, `--cert=${certs.cert}`, `--key=${certs.key}`] : [];
  const etcdctl = (...args: string[]) =>
    run(findExecutable('etcdctl'), [`--endpoints=${endpoints.join(',')}`, ...tls, '--dial-timeout=5s', ...args], { env: { ...process.env, ETCDCTL_API: '3' }, timeout: 15_000 });
  await etcdctl('user', 'add', 'root', `--new-user-password=${password}`, '--interactive=false');
  await etcdctl('auth', 'enable');
}

class StartError extends Error {
  constructor(
    message: string,
    readonly addressInUse: boolean,
  ) {
    super(message);
  }
}

class Cluster implements EtcdCluster {
  readonly endpoints: string[];
  private readonly clients = new Set<Etcd3>();
  private readonly unregister: () => void;
  private stopped: Promise<void> | undefined;

  readonly tls: ClientTlsFiles | null;

  constructor(
    readonly members: Member[],
    private readonly dir: string,
    certs: TestCertificates | null,
    private readonly rootPassword: string | null,
  ) {
    this.endpoints = members.map((m) => m.endpoint);
    this.tls = certs && { ca: certs.ca, cert: certs.cert, key: certs.key };
    this.unregister = onCleanup(() => this.closeClients());
  }

  client(options: Partial<IOptions> = {}): Etcd3 {
    // The agent's own options: a deadline on every unary call, no per-host circuit breaker (it would
    // refuse a restored member for 5 s), and reconnects that back off 1 s at most.
    const security: Partial<IOptions> = {
      ...(this.tls ? { credentials: { rootCertificate: readFileSync(this.tls.ca), certChain: readFileSync(this.tls.cert), privateKey: readFileSync(this.tls.key) } } : {}),
      ...(this.rootPassword === null ? {} : { auth: { username: 'root', password: this.rootPassword } }),
    };
    const client = new Etcd3({ ...resilientEtcdOptions(this.endpoints, UNARY_DEADLINE_MS), ...security, ...options });
    this.clients.add(client);
    return client;
  }

  async leader(): Promise<EtcdMember> {
    let lastError: unknown = new Error('no member is running');
    for (const member of this.members) {
      if (!member.isRunning()) continue;
      try {
        const status = await fetchJson(`${member.endpoint}/v3/maintenance/status`, { method: 'POST', body: '{}' });
        const leaderId = field(status, 'leader');
        const ownId = field(field(status, 'header'), 'member_id');
        if (leaderId === undefined || leaderId === '0') throw new Error(`${member.name} sees no leader`);
        if (leaderId === ownId) return member;
        const list = await fetchJson(`${member.endpoint}/v3/cluster/member/list`, { method: 'POST', body: '{}' });
        const entries = field(list, 'members');
        if (!Array.isArray(entries)) throw new Error('member list without members');
        const entry: unknown = entries.find((e: unknown) => field(e, 'ID') === leaderId);
        const name = field(entry, 'name');
        const found = this.members.find((m) => m.name === name);
        if (found !== undefined) return found;
        throw new Error(`leader ${String(leaderId)} is not a member of this cluster`);
      } catch (error) {
        lastError = error;
      }
    }
    throw new Error(`cannot find the etcd leader: ${errorMessage(lastError)}`);
  }

  private closeClients(): void {
    for (const client of this.clients) {
      forgetWatchers(client);
      client.close();
    }
    this.clients.clear();
  }

  stop(): Promise<void> {
    this.stopped ??= (async () => {
      this.closeClients();
      this.unregister();
      await Promise.all(this.members.map((m) => m.kill().catch(() => undefined)));
      await removeDir(this.dir);
    })();
    return this.stopped;
  }
}

/** Starts an etcd cluster of real `etcd` processes on free loopback ports and waits until every member is healthy. */
export async function startEtcd(options: EtcdOptions): Promise<EtcdCluster> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce(options);
    } catch (error) {
      if (!(error instanceof StartError) || !error.addressInUse || attempt >= START_ATTEMPTS) throw error;
    }
  }
}
