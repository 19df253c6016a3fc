import { connect, createServer, type Socket } from 'node:net';
import { LOOPBACK } from './ports.js';
import { onCleanup } from './processes.js';

/**
 * - `blackhole`: a partition. Open connections stop carrying data both ways, new ones are accepted and
 *   then get no answer, so peers see a hang and only their own timeouts end it. Nothing is dropped:
 *   like TCP after a healed partition, `restore()` delivers what was held back and connects the held
 *   connections to the target.
 * - `reset`: open connections get a TCP RST, and new ones are reset right after the accept, so peers
 *   see an immediate error.
 */
export type CutMode = 'blackhole' | 'reset';

export interface TcpProxy {
  readonly host: string;
  readonly port: number;
  readonly targetHost: string;
  readonly targetPort: number;
  /** Open client connections, including those held by a blackhole. */
  readonly connections: number;
  /** 'open', or the mode of the current cut. */
  readonly state: 'open' | CutMode;
  cut(options?: { mode?: CutMode }): void;
  restore(): void;
  close(): Promise<void>;
}

export interface ProxyOptions {
  targetHost: string;
  targetPort: number;
  /** Default: a free port chosen by the OS. */
  port?: number;
}

interface Link {
  client: Socket;
  upstream: Socket | undefined;
}

function reset(socket: Socket | undefined): void {
  // Every socket here has an 'error' listener: resetting an unconnected one reports ERR_SOCKET_CLOSED.
  if (socket !== undefined && !socket.destroyed) socket.resetAndDestroy();
}

class CuttableProxy implements TcpProxy {
  readonly host = LOOPBACK;
  state: 'open' | CutMode = 'open';
  private readonly links = new Set<Link>();
  private readonly server = createServer((client) => this.accept(client));
  private readonly unregister: () => void;
  private closed: Promise<void> | undefined;

  constructor(
    readonly targetHost: string,
    readonly targetPort: number,
  ) {
    this.unregister = onCleanup(() => this.close());
  }

  listen(port: number): Promise<void> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, this.host, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
  }

  get port(): number {
    const address = this.server.address();
    if (address === null || typeof address === 'string') throw new Error('proxy is not listening');
    return address.port;
  }

  get connections(): number {
    return this.links.size;
  }

  private accept(client: Socket): void {
    client.on('error', () => undefined);
    if (this.state === 'reset') {
      reset(client);
      return;
    }
    const link: Link = { client, upstream: undefined };
    this.links.add(link);
    client.on('close', () => {
      this.links.delete(link);
      reset(link.upstream);
    });
    if (this.state === 'blackhole') {
      client.pause();
      return;
    }
    this.forward(link);
  }

  private forward(link: Link): void {
    const upstream = connect(this.targetPort, this.targetHost);
    link.upstream = upstream;
    upstream.on('error', () => reset(link.client));
    upstream.on('close', () => link.client.destroy());
    this.join(link);
  }

  private join(link: Link): void {
    if (link.upstream === undefined) return;
    link.client.pipe(link.upstream);
    link.upstream.pipe(link.client);
  }

  private freeze(link: Link): void {
    if (link.upstream === undefined) return;
    link.client.unpipe(link.upstream);
    link.upstream.unpipe(link.client);
    link.client.pause();
    link.upstream.pause();
  }

  cut({ mode = 'blackhole' }: { mode?: CutMode } = {}): void {
    this.state = mode;
    for (const link of this.links) {
      if (mode === 'reset') {
        reset(link.upstream);
        reset(link.client);
      } else {
        this.freeze(link);
      }
    }
  }

  restore(): void {
    if (this.state === 'open') return;
    this.state = 'open';
    for (const link of this.links) {
      if (link.upstream === undefined) this.forward(link);
      else this.join(link);
    }
  }

  close(): Promise<void> {
    this.closed ??= new Promise<void>((resolve) => {
      this.unregister();
      this.state = 'reset';
      for (const link of this.links) {
        link.upstream?.destroy();
        link.client.destroy();
      }
      this.links.clear();
      this.server.close(() => resolve());
    });
    return this.closed;
  }
}

/** A TCP proxy on a loopback port to `targetHost:targetPort` that tests can cut and restore. */
export async function startProxy(options: ProxyOptions): Promise<TcpProxy> {
  const proxy = new CuttableProxy(options.targetHost, options.targetPort);
  await proxy.listen(options.port ?? 0);
  return proxy;
}
