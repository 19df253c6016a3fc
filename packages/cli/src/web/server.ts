/**
 * The HTTP side of `primacy web`, on node:http: the page, a server-sent event stream of states,
 * the state as JSON, and (with --allow-actions) the POST endpoints of the page's buttons.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describeError } from '@primacy/common';
import { CliError, ExitCode } from '../errors.js';
import { PAGE_CSS, PAGE_HTML, PAGE_JS } from './page.js';

export type ActionName = 'switchover' | 'pause' | 'resume';

export interface ActionRequest {
  readonly cluster: string;
  readonly action: ActionName;
  /** switchover: the replica to promote; null: the coordinator chooses. */
  readonly to: string | null;
  /** Who clicked: the peer's address. */
  readonly from: string;
}

/** Carries out one action; a CliError's exit code becomes the HTTP status. Returns the line to show. */
export type RunAction = (a: ActionRequest) => Promise<string>;

/** States in, to every open event stream; the last one for each new stream and for GET /api/state. */
export class StateHub {
  private latest = '{}';
  private readonly streams = new Set<ServerResponse>();

  publish(stateJson: string): void {
    this.latest = stateJson;
    for (const res of this.streams) res.write(eventOf(stateJson));
  }

  current(): string {
    return this.latest;
  }

  add(res: ServerResponse): void {
    this.streams.add(res);
    res.write(eventOf(this.latest));
  }

  remove(res: ServerResponse): void {
    this.streams.delete(res);
  }

  /** A comment line on each stream, so that proxies and browsers do not drop an idle one. */
  ping(): void {
    for (const res of this.streams) res.write(': ping\n\n');
  }

  end(): void {
    for (const res of this.streams) res.end();
    this.streams.clear();
  }
}

/** One server-sent event: the state with the server's clock, on one line (JSON has no raw newline). */
function eventOf(stateJson: string): string {
  return `event: state\ndata: {"sentAt":${Date.now()},"state":${stateJson}}\n\n`;
}

/** No inline script or style, nothing from elsewhere, no framing. */
const SECURITY_HEADERS = {
  'Content-Security-Policy': "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
  'Cache-Control': 'no-store',
};

const STATIC: Record<string, { type: string; body: string }> = {
  '/': { type: 'text/html; charset=utf-8', body: PAGE_HTML },
  '/page.css': { type: 'text/css; charset=utf-8', body: PAGE_CSS },
  '/page.js': { type: 'text/javascript; charset=utf-8', body: PAGE_JS },
};

const ACTION_PATH = /^\/api\/clusters\/([^/]+)\/(switchover|pause|resume)$/;
const MAX_BODY = 4096;
const PING_MS = 15_000;

function send(res: ServerResponse, status: number, type: string, body: string, extra: Record<string, string> = {}): void {
  res.writeHead(status, { ...SECURITY_HEADERS, 'Content-Type': type, 'Content-Length': Buffer.byteLength(body), ...extra });
  res.end(body);
}

function sendJson(res: ServerResponse, status: number, value: unknown): void {
  send(res, status, 'application/json; charset=utf-8', JSON.stringify(value));
}

export function statusOf(err: unknown): number {
  if (!(err instanceof CliError)) return 500;
  switch (err.exitCode) {
    case ExitCode.USAGE:
      return 400;
    case ExitCode.UNKNOWN:
      return 404;
    case ExitCode.FAILED:
      return 409;
    case ExitCode.ETCD_UNREACHABLE:
      return 503;
    default:
      return 500;
  }
}

/** The body of an action: `{}` or `{ "to": "db2" }`; anything else is a 400. */
export function parseActionBody(action: ActionName, text: string): { to: string | null } | string {
  let body: unknown;
  try {
    body = text.trim() === '' ? {} : JSON.parse(text);
  } catch {
    return 'the body is not JSON';
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return 'the body must be a JSON object';
  const to = (body as Record<string, unknown>)['to'] ?? null;
  if (to !== null && typeof to !== 'string') return '"to" must be a node name or null';
  if (to !== null && action !== 'switchover') return `"to" means nothing to ${action}`;
  return { to: to === '' ? null : to };
}

function readBody(req: IncomingMessage): Promise<string | null> {
  return new Promise((resolve, reject) => {
    let size = 0;
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size <= MAX_BODY) chunks.push(c);
    });
    req.on('end', () => resolve(size > MAX_BODY ? null : Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

/**
 * An action must come from the page itself: a JSON body (which a form on another site cannot send
 * without a CORS preflight, which is never answered) and, when the browser says where it comes
 * from, this server's own origin.
 */
function foreignOrigin(req: IncomingMessage): string | null {
  const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  if (type !== 'application/json') return 'an action takes a JSON body (Content-Type: application/json)';
  const origin = req.headers.origin;
  if (origin !== undefined && origin !== `http://${req.headers.host ?? ''}`) return `an action from ${origin} is not taken: only this server's own page may ask`;
  return null;
}

async function action(req: IncomingMessage, res: ServerResponse, cluster: string, name: ActionName, run: RunAction | null): Promise<void> {
  if (req.method !== 'POST') return send(res, 405, 'text/plain; charset=utf-8', 'POST only\n', { Allow: 'POST' });
  if (run === null) return sendJson(res, 403, { ok: false, error: 'actions are off: start primacy web with --allow-actions to allow switchover, pause and resume' });
  const foreign = foreignOrigin(req);
  if (foreign !== null) return sendJson(res, foreign.startsWith('an action takes') ? 415 : 403, { ok: false, error: foreign });
  const text = await readBody(req);
  if (text === null) return sendJson(res, 413, { ok: false, error: `the body is over ${MAX_BODY} bytes` });
  const body = parseActionBody(name, text);
  if (typeof body === 'string') return sendJson(res, 400, { ok: false, error: body });
  try {
    const message = await run({ cluster, action: name, to: body.to, from: req.socket.remoteAddress ?? 'unknown' });
    sendJson(res, 200, { ok: true, message });
  } catch (err) {
    sendJson(res, statusOf(err), { ok: false, error: err instanceof CliError ? err.message : `unexpected error: ${describeError(err)}` });
  }
}

function events(req: IncomingMessage, res: ServerResponse, hub: StateHub): void {
  res.writeHead(200, { ...SECURITY_HEADERS, 'Content-Type': 'text/event-stream; charset=utf-8', Connection: 'keep-alive', 'X-Accel-Buffering': 'no' });
  // A reconnecting page tries again after a second.
  res.write('retry: 1000\n\n');
  hub.add(res);
  req.on('close', () => hub.remove(res));
}

export interface WebServer {
  readonly url: string;
  close(): Promise<void>;
}

/** Listens; rejects with the listen error (EADDRINUSE and the like) for the caller to word. */
export async function startWebServer(o: { host: string; port: number; hub: StateHub; run: RunAction | null }): Promise<WebServer> {
  const server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    const file = STATIC[path];
    if (file !== undefined && (req.method === 'GET' || req.method === 'HEAD')) return send(res, 200, file.type, file.body);
    if (path === '/events' && req.method === 'GET') return events(req, res, o.hub);
    if (path === '/api/state' && req.method === 'GET') return send(res, 200, 'application/json; charset=utf-8', o.hub.current());
    const m = ACTION_PATH.exec(path);
    if (m) {
      action(req, res, decodeURIComponent(m[1]!), m[2] as ActionName, o.run).catch((err: unknown) => {
        if (!res.headersSent) sendJson(res, 500, { ok: false, error: describeError(err) });
      });
      return;
    }
    send(res, 404, 'text/plain; charset=utf-8', 'not found\n');
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port, o.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const ping = setInterval(() => o.hub.ping(), PING_MS);
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return {
    url: `http://${host}:${address.port}/`,
    close: async () => {
      clearInterval(ping);
      o.hub.end();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
