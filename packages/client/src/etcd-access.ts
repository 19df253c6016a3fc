/**
 * How the client proves itself to etcd, and checks etcd: TLS material and a user. The CLI does the
 * same from its flags (packages/cli/src/connect.ts, keep the checks in step); it cannot be shared, as
 * the CLI's lives on top of the agent and @primacy/common has no etcd3. Files are read, and the PEM
 * checked, when the options are compiled: a wrong one is an options error before any etcd call.
 */
import { createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { IOptions } from 'etcd3';
import { z } from 'zod';
import { ClientError, ClientErrorCodes, oneLine } from './errors.js';

/** PEM text (a string or a Buffer, as Node's `tls` options take it), or `{ file }` to read it from a file. */
export type PemSource = string | Buffer | { readonly file: string };

export interface EtcdTlsOptions {
  /** The CA that signed etcd's server certificates. Without it, Node's default CAs (and `NODE_EXTRA_CA_CERTS`). */
  readonly ca?: PemSource;
  /** A client certificate, for an etcd run with `--client-cert-auth`; needs `key`. */
  readonly cert?: PemSource;
  /** The unencrypted private key of `cert`. */
  readonly key?: PemSource;
}

export interface EtcdConnectionOptions {
  readonly endpoints: readonly string[];
  /** TLS to etcd (the endpoints must then be `https://`). */
  readonly tls?: EtcdTlsOptions;
  /** An etcd user, for etcd's password authentication. */
  readonly auth?: { readonly username: string; readonly password: string };
}

/** What the library needs to make its etcd client: every field set, files read, PEM checked. */
export interface EtcdConnection {
  readonly endpoints: readonly string[];
  readonly credentials: NonNullable<IOptions['credentials']> | null;
  readonly auth: { readonly username: string; readonly password: string } | null;
  /** Where each TLS input came from, for messages: `etcd.tls.ca (file ca.pem)`. */
  readonly origins: { readonly ca: string | null; readonly cert: string | null };
}

const pem = z.union([z.string().min(1), z.instanceof(Buffer), z.strictObject({ file: z.string().min(1) })], {
  error: 'expected PEM text (a string or a Buffer) or { file: PATH }',
});

export const EtcdConnectionSchema = z
  .strictObject({
    endpoints: z.array(z.url({ protocol: /^https?$/, error: 'expected an http:// or https:// URL' })).min(1),
    tls: z.strictObject({ ca: pem.optional(), cert: pem.optional(), key: pem.optional() }).optional(),
    // Optional here so that a missing half is reported as such, not as a type error.
    auth: z.strictObject({ username: z.string().optional(), password: z.string().optional() }).optional(),
  })
  .superRefine((o, ctx) => {
    const tls = o.tls;
    if (tls && (tls.cert === undefined) !== (tls.key === undefined)) {
      const [set, missing] = tls.cert === undefined ? ['key', 'cert'] : ['cert', 'key'];
      ctx.addIssue({ code: 'custom', path: ['tls', missing], message: `required with tls.${set} (a client certificate and its private key go together)` });
    }
    if (tls) {
      const plain = o.endpoints.find((e) => e.startsWith('http://'));
      if (plain) ctx.addIssue({ code: 'custom', path: ['endpoints'], message: `${plain} is plain http but tls is given: use https://` });
    }
    const auth = o.auth;
    if (auth && !auth.username) ctx.addIssue({ code: 'custom', path: ['auth', 'username'], message: 'required with auth (an etcd user name)' });
    else if (auth && !auth.password) ctx.addIssue({ code: 'custom', path: ['auth', 'password'], message: `etcd user ${auth.username} needs a password` });
  });

function optionsError(what: string, path: string, message: string, cause?: unknown): ClientError {
  return new ClientError(ClientErrorCodes.OPTIONS_INVALID, `invalid ${what} options: ${path}: ${message}`, { cause });
}

/** The PEM bytes of one source; a file that cannot be read is an options error naming the option and the file. */
function readPem(source: PemSource, path: string, what: string): Buffer {
  if (typeof source === 'string') return Buffer.from(source, 'utf8');
  if (Buffer.isBuffer(source)) return source;
  try {
    return readFileSync(source.file);
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : code === 'EISDIR' ? 'it is a directory' : oneLine(cause);
    throw optionsError(what, path, `cannot read file ${source.file}: ${why}`, cause);
  }
}

function origin(source: PemSource | undefined, path: string): string | null {
  if (source === undefined) return null;
  return typeof source === 'object' && !Buffer.isBuffer(source) ? `${path} (file ${source.file})` : path;
}

/** A PEM string that is not PEM is most likely a path given as text. */
function notPem(source: PemSource, expected: string): string {
  const file = typeof source === 'object' && !Buffer.isBuffer(source) ? `file ${source.file} is ` : '';
  const hint = typeof source === 'string' && !source.includes('-----BEGIN') ? `; to read a file, give { file: ${JSON.stringify(source)} }` : '';
  return `${file}not ${expected}${hint}`;
}

function certificate(source: PemSource, bytes: Buffer, path: string, what: string): X509Certificate {
  try {
    return new X509Certificate(bytes);
  } catch (cause) {
    throw optionsError(what, path, notPem(source, 'a PEM certificate'), cause);
  }
}

/**
 * Reads and checks the TLS material: Node takes a CA without a single certificate in silence and
 * then trusts nothing, and grpc-js's own complaints ("no start line") do not say which input.
 */
export function compileEtcdConnection(o: z.output<typeof EtcdConnectionSchema>, what: string): EtcdConnection {
  const auth = o.auth?.username && o.auth.password ? { username: o.auth.username, password: o.auth.password } : null;
  const origins = { ca: origin(o.tls?.ca, 'etcd.tls.ca'), cert: origin(o.tls?.cert, 'etcd.tls.cert') };
  if (!o.tls) return Object.freeze({ endpoints: Object.freeze([...o.endpoints]), credentials: null, auth, origins });
  const { ca, cert, key } = o.tls;
  const caPem = ca === undefined ? null : readPem(ca, 'etcd.tls.ca', what);
  if (ca !== undefined && caPem !== null) certificate(ca, caPem, 'etcd.tls.ca', what);
  // A null CA: grpc-js then trusts Node's default CAs, as for an https:// endpoint without tls.
  let credentials: NonNullable<IOptions['credentials']> = { rootCertificate: caPem as Buffer };
  if (cert !== undefined && key !== undefined) {
    const certPem = readPem(cert, 'etcd.tls.cert', what);
    const keyPem = readPem(key, 'etcd.tls.key', what);
    let privateKey: KeyObject;
    try {
      privateKey = createPrivateKey(keyPem);
    } catch (cause) {
      throw optionsError(what, 'etcd.tls.key', notPem(key, 'an unencrypted PEM private key'), cause);
    }
    if (!certificate(cert, certPem, 'etcd.tls.cert', what).checkPrivateKey(privateKey)) {
      throw optionsError(what, 'etcd.tls.key', 'not the private key of etcd.tls.cert');
    }
    credentials = { rootCertificate: caPem as Buffer, certChain: certPem, privateKey: keyPem };
  }
  return Object.freeze({ endpoints: Object.freeze([...o.endpoints]), credentials, auth, origins });
}

/** gRPC buries the reason: `14 UNAVAILABLE: No connection established. Last error: Error: connect ECONNREFUSED …. Resolution note: `. */
function grpcReason(message: string): string {
  const last = /Last error: (?:Error: )?(.*?)\.?\s*(?:Resolution note:.*)?$/.exec(message);
  const text = last?.[1] ?? message.replace(/\s*Resolution note:.*$/, '');
  return text.replace(/^\d+ [A-Z_]+: /, '').trim() || message;
}

/**
 * A failed etcd call that more tries will not mend, in the application's words: a server certificate
 * that cannot be verified, a refused client certificate, a wrong user or password, no permission.
 * Null for anything else (etcd down, a deadline): that one is worth waiting out.
 */
export function etcdAccessError(connection: EtcdConnection | null, cause: unknown): ClientError | null {
  const reason = grpcReason(oneLine(cause));
  const at = connection ? `etcd at ${connection.endpoints.join(',')}` : 'etcd';
  const fail = (message: string) => new ClientError(ClientErrorCodes.ETCD_AUTH_FAILED, message, { cause });
  const user = connection?.auth?.username ?? null;
  if (/authentication failed|invalid user ID or password/i.test(reason)) {
    return fail(`${at} refused user ${user ?? '(none)'}: wrong user name or password (check etcd.auth)`);
  }
  if (/user name is empty/i.test(reason)) return fail(`${at} requires a user: give etcd.auth { username, password }`);
  if (/permission denied/i.test(reason)) {
    return fail(`${at} denied user ${user ?? '(none)'}: permission denied (grant it a role that may read the cluster's keys, and write clients/ to register)`);
  }
  if (/alert (bad certificate|certificate required|unknown ca|certificate unknown)/i.test(reason)) {
    const cert = connection?.origins.cert;
    return fail(`${at} refused ${cert ? `the client certificate ${cert}` : 'a client without a certificate'}: give one signed by a CA it trusts, as etcd.tls.cert and etcd.tls.key`);
  }
  if (/unable to verify|self[- ]signed|certificate has expired|not yet valid|does not match certificate|unable to get (local )?issuer/i.test(reason)) {
    const ca = connection?.origins.ca;
    return fail(`cannot verify the certificate of ${at}: ${reason} (${ca ? `is ${ca} the CA that signed it?` : 'give its CA as etcd.tls.ca'})`);
  }
  return null;
}
