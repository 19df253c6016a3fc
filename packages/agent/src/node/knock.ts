/**
 * A knock on the server's port: is anything listening? A refused connection (or a missing socket
 * file) on the agent's own host is what `goneReason` calls gone; an accepted one proves only that
 * the kernel holds a listening socket, not that mysqld answers. The knock never speaks the MySQL
 * protocol, so a dying server that still holds its listening socket cannot hang it past its bound.
 */
import { connect } from 'node:net';

export type Knock = 'refused' | 'open' | 'unknown';

export function knock(server: { readonly host: string; readonly port: number; readonly socket?: string | undefined }, timeoutMs: number): Promise<Knock> {
  return new Promise((resolve) => {
    const socket = server.socket !== undefined ? connect({ path: server.socket }) : connect({ host: server.host, port: server.port });
    const done = (k: Knock): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(k);
    };
    const timer = setTimeout(() => done('unknown'), timeoutMs);
    socket.once('connect', () => done('open'));
    socket.once('error', (err: NodeJS.ErrnoException) => done(err.code === 'ECONNREFUSED' || err.code === 'ENOENT' ? 'refused' : 'unknown'));
  });
}
