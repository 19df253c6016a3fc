/**
 * How the CLI reaches etcd: the agent's resilient client options, plus etcdctl's TLS files and a
 * password. The files are read here, before any etcd call, so that a missing one is a usage error.
 */
import { createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Etcd3, type IOptions } from 'etcd3';
import { resilientEtcdOptions } from '@primacy/agent';
import { describeError } from '@primacy/common';
import type { EtcdAuth, EtcdTls, EtcdWhere, FileArg } from './args.js';
import { badFile } from './errors.js';

function readArg(file: FileArg): Buffer {
  try {
    return readFileSync(file.path);
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : code === 'EISDIR' ? 'it is a directory' : describeError(cause);
    throw badFile(file, why, cause);
  }
}

function certificate(file: FileArg, pem: Buffer): X509Certificate {
  try {
    return new X509Certificate(pem);
  } catch (cause) {
    throw badFile(file, 'not a PEM certificate', cause);
  }
}

/** Checked here, as grpc-js's own complaints ("no start line") do not say which file. */
function credentials(tls: EtcdTls): NonNullable<IOptions['credentials']> {
  const ca = tls.ca && readArg(tls.ca);
  // Node takes a CA file without a single certificate in silence, and then trusts nothing.
  if (tls.ca !== null && ca !== null) certificate(tls.ca, ca);
  if (tls.cert === null || tls.key === null) return { rootCertificate: ca as Buffer };
  const cert = readArg(tls.cert);
  const key = readArg(tls.key);
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(key);
  } catch (cause) {
    throw badFile(tls.key, 'not an unencrypted PEM private key', cause);
  }
  if (!certificate(tls.cert, cert).checkPrivateKey(privateKey)) throw badFile(tls.key, `not the private key of ${tls.cert.from} ${tls.cert.path}`, null);
  // A null CA: grpc-js then trusts Node's default CAs, as for an https:// endpoint without --cacert.
  return { rootCertificate: ca as Buffer, certChain: cert, privateKey: key };
}

function password(auth: EtcdAuth): string {
  if ('value' in auth.password) return auth.password.value;
  const file = auth.password.file;
  const text = readArg(file).toString('utf8').replace(/\r?\n$/, '');
  if (text === '') throw badFile(file, 'it is empty', null);
  return text;
}

/** The largest answer the CLI takes from etcd (grpc-js's default is 4 MiB). */
const MAX_ANSWER_BYTES = 256 * 1024 * 1024;

/** A client for the target's endpoints; throws a usage CliError for a file that is missing or not what it should be. */
export function connectEtcd(target: EtcdWhere, callTimeoutMs: number): Etcd3 {
  const resilient = resilientEtcdOptions(target.endpoints, callTimeoutMs);
  const options: IOptions = {
    ...resilient,
    // A root read of a fleet (primacy clusters) is one answer of several MB: 1,000 clusters make about 7.
    grpcOptions: { ...resilient.grpcOptions, 'grpc.max_receive_message_length': MAX_ANSWER_BYTES },
    ...(target.tls ? { credentials: credentials(target.tls) } : {}),
    ...(target.auth ? { auth: { username: target.auth.user, password: password(target.auth) } } : {}),
  };
  return new Etcd3(options);
}
