/**
 * @primacy/client against an etcd that requires TLS with client certificates, and one with auth
 * enabled: single-member etcds, no MariaDB. The test writes the `primary` key with the harness's
 * client; watchPrimary, createPool and registerClient must read it (and write `clients/<id>`)
 * through the same doors an application has, and fail fast and clearly when a door is wrong.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PrimarySchema, clusterKeys, type Primary } from '@primacy/common';
import { ClientError, createPool, registerClient, watchPrimary, type PrimaryWatch } from '@primacy/client';
import { rejectsOptions } from '../packages/client/src/testing/options.js';
import { makeTestCertificates, startEtcd, type ClientTlsFiles, type EtcdCluster } from './harness/etcd.js';
import { cleanupAll, harnessDir, waitFor } from './harness/index.js';

const CLUSTER = 'c1';
const PASSWORD = 'root-secret';
/** A refused TLS handshake or password must be reported well within this, not waited out. */
const FAIL_FAST_MS = 5_000;

let tlsEtcd: EtcdCluster;
let authEtcd: EtcdCluster;
let tls: ClientTlsFiles;
/** A CA, and a client certificate, that the TLS etcd does not know. */
let stranger: ClientTlsFiles;
let workDir: string;

before(async () => {
  [tlsEtcd, authEtcd] = await Promise.all([startEtcd({ members: 1, clientTls: true }), startEtcd({ members: 1, rootPassword: PASSWORD })]);
  tls = tlsEtcd.tls!;
  workDir = await harnessDir('client-etcd-security');
  stranger = await makeTestCertificates(workDir);
});

after(async () => {
  await Promise.all([tlsEtcd?.stop(), authEtcd?.stop()]);
  await cleanupAll();
});

function primary(node: string, epoch: number): Primary {
  return PrimarySchema.parse({ node, host: '127.0.0.1', port: 3306, epoch, state: 'ready', since: Date.now(), gtid: '', serverId: epoch, serverUuid: null });
}

async function putPrimary(etcd: EtcdCluster, p: Primary): Promise<void> {
  await etcd.client().put(clusterKeys(CLUSTER).primary).value(JSON.stringify(p));
}

/** Waits until the watch reports `p`'s node at its epoch. */
async function sees(watch: Pick<PrimaryWatch, 'current'>, p: Primary): Promise<void> {
  await waitFor(`the watch to see ${p.node} at epoch ${p.epoch}`, () => (watch.current()?.node === p.node && watch.current()?.epoch === p.epoch ? true : undefined), {
    timeoutMs: 5_000,
    intervalMs: 10,
  });
}

/** `ready()` must reject with `code` and a message matching `pattern`, within FAIL_FAST_MS. */
async function failsFast(watch: PrimaryWatch, code: string, pattern: RegExp): Promise<void> {
  const started = Date.now();
  try {
    await assert.rejects(watch.ready(10_000), (err: unknown) => {
      assert.ok(err instanceof ClientError, String(err));
      assert.equal(err.code, code, err.message);
      assert.match(err.message, pattern);
      assert.ok(!err.message.includes('\n'), 'one line');
      return true;
    });
    assert.ok(Date.now() - started < FAIL_FAST_MS, `reported after ${Date.now() - started} ms`);
  } finally {
    await watch.close();
  }
}

const invalid = rejectsOptions;

describe('client against an etcd that requires TLS and client certificates', () => {
  test('watchPrimary with the files, a pool with PEM text and a registration with Buffers all follow the primary', async () => {
    const endpoints = tlsEtcd.endpoints;
    const watch = watchPrimary({ etcd: { endpoints, tls: { ca: { file: tls.ca }, cert: { file: tls.cert }, key: { file: tls.key } } }, cluster: CLUSTER });
    const text = (f: string) => readFileSync(f, 'utf8');
    const pool = createPool({ etcd: { endpoints, tls: { ca: text(tls.ca), cert: text(tls.cert), key: text(tls.key) } }, cluster: CLUSTER, connection: { user: 'app' } });
    const registration = registerClient({ etcd: { endpoints, tls: { ca: readFileSync(tls.ca), cert: readFileSync(tls.cert), key: readFileSync(tls.key) } }, cluster: CLUSTER, id: 'tls-app' });
    try {
      await watch.ready(5_000);
      const p = primary('db1', 1);
      await putPrimary(tlsEtcd, p);
      await sees(watch, p);
      await sees(pool.watch, p);
      const key = clusterKeys(CLUSTER).client('tls-app');
      await waitFor('the registration to be written over TLS', async () => ((await tlsEtcd.client().get(key).string()) ? true : undefined), { timeoutMs: 5_000, intervalMs: 20 });
    } finally {
      await Promise.all([watch.close(), pool.end(), registration.close()]);
    }
  });

  test('a CA that did not sign etcd\'s certificate: PRIMACY_E_ETCD_AUTH_FAILED at once, naming the option', async () => {
    const watch = watchPrimary({ etcd: { endpoints: tlsEtcd.endpoints, tls: { ca: { file: stranger.ca }, cert: { file: tls.cert }, key: { file: tls.key } } }, cluster: CLUSTER });
    await failsFast(watch, 'PRIMACY_E_ETCD_AUTH_FAILED', new RegExp(`^cannot verify the certificate of etcd at https://127\\.0\\.0\\.1:\\d+: .+ \\(is etcd\\.tls\\.ca \\(file ${stranger.ca}\\) the CA that signed it\\?\\)`));
  });

  test('no client certificate, or one etcd does not trust: refused, at once', async () => {
    const none = watchPrimary({ etcd: { endpoints: tlsEtcd.endpoints, tls: { ca: { file: tls.ca } } }, cluster: CLUSTER });
    await failsFast(none, 'PRIMACY_E_ETCD_AUTH_FAILED', /^etcd at https:\/\/127\.0\.0\.1:\d+ refused a client without a certificate: give one signed by a CA it trusts/);
    const foreign = watchPrimary({ etcd: { endpoints: tlsEtcd.endpoints, tls: { ca: { file: tls.ca }, cert: { file: stranger.cert }, key: { file: stranger.key } } }, cluster: CLUSTER });
    await failsFast(foreign, 'PRIMACY_E_ETCD_AUTH_FAILED', /refused the client certificate etcd\.tls\.cert \(file .+\): /);
  });
});

describe('client against an etcd with auth enabled', () => {
  test('the right password: the watch and a registration work', async () => {
    const etcd = { endpoints: authEtcd.endpoints, auth: { username: 'root', password: PASSWORD } };
    const watch = watchPrimary({ etcd, cluster: CLUSTER });
    const registration = registerClient({ watch, id: 'auth-app' });
    try {
      await watch.ready(5_000);
      const p = primary('db2', 2);
      await putPrimary(authEtcd, p);
      await sees(watch, p);
      const key = clusterKeys(CLUSTER).client('auth-app');
      await waitFor('the registration to be written as root', async () => ((await authEtcd.client().get(key).string()) ? true : undefined), { timeoutMs: 5_000, intervalMs: 20 });
    } finally {
      await registration.close();
      await watch.close();
    }
  });

  test('a wrong password, or no user: PRIMACY_E_ETCD_AUTH_FAILED at once; a pool says why it has no primary', async () => {
    const wrong = watchPrimary({ etcd: { endpoints: authEtcd.endpoints, auth: { username: 'root', password: 'not-it' } }, cluster: CLUSTER });
    await failsFast(wrong, 'PRIMACY_E_ETCD_AUTH_FAILED', /^etcd at http:\/\/127\.0\.0\.1:\d+ refused user root: wrong user name or password \(check etcd\.auth\)/);
    const anonymous = watchPrimary({ etcd: authEtcd.endpoints, cluster: CLUSTER });
    await failsFast(anonymous, 'PRIMACY_E_ETCD_AUTH_FAILED', /^etcd at http:\/\/127\.0\.0\.1:\d+ requires a user: give etcd\.auth \{ username, password \}/);
    const pool = createPool({ etcd: { endpoints: authEtcd.endpoints, auth: { username: 'root', password: 'not-it' } }, cluster: CLUSTER, connection: { user: 'app' }, holdWritesMs: 1_000 });
    try {
      await assert.rejects(pool.query('SELECT 1'), (err: unknown) => {
        assert.ok(err instanceof ClientError, String(err));
        assert.equal(err.code, 'PRIMACY_E_NO_PRIMARY');
        assert.match(err.message, /etcd has not answered yet \(PRIMACY_E_ETCD_AUTH_FAILED: .*refused user root: wrong user name or password/);
        return true;
      });
    } finally {
      await pool.end();
    }
  });
});

describe('client etcd options are checked up front, for each entry point', () => {
  test('an unreadable file, half a key pair, a user without a password, a CA or key that is not one, a plain-http endpoint', async () => {
    const https = tlsEtcd.endpoints;
    const notACert = join(workDir, 'not-a-cert.pem');
    await writeFile(notACert, 'hello\n');
    const cases: Array<[etcd: unknown, pattern: RegExp]> = [
      [{ endpoints: https, tls: { ca: { file: join(workDir, 'missing.pem') } } }, /etcd\.tls\.ca: cannot read file .*missing\.pem: no such file$/],
      [{ endpoints: https, tls: { ca: { file: workDir } } }, /etcd\.tls\.ca: cannot read file .*: it is a directory$/],
      [{ endpoints: https, tls: { cert: { file: tls.cert } } }, /etcd\.tls\.key: required with tls\.cert/],
      [{ endpoints: https, tls: { key: { file: tls.key } } }, /etcd\.tls\.cert: required with tls\.key/],
      [{ endpoints: https, auth: { username: 'root' } }, /etcd\.auth\.password: etcd user root needs a password$/],
      [{ endpoints: https, auth: { username: 'root', password: '' } }, /etcd\.auth\.password: etcd user root needs a password$/],
      [{ endpoints: https, tls: { ca: { file: notACert } } }, /etcd\.tls\.ca: file .*not-a-cert\.pem is not a PEM certificate$/],
      [{ endpoints: https, tls: { ca: tls.ca } }, /etcd\.tls\.ca: not a PEM certificate; to read a file, give \{ file: ".*ca\.crt" \}$/],
      [{ endpoints: https, tls: { cert: { file: tls.cert }, key: { file: stranger.key } } }, /etcd\.tls\.key: not the private key of etcd\.tls\.cert$/],
      [{ endpoints: https.map((e) => e.replace(/^https:/, 'http:')), tls: { ca: { file: tls.ca } } }, /etcd\.endpoints: http:\/\/127\.0\.0\.1:\d+ is plain http but tls is given: use https:\/\//],
    ];
    for (const [etcd, pattern] of cases) {
      const options = { etcd: etcd as never, cluster: CLUSTER };
      invalid(() => watchPrimary(options), new RegExp(`^invalid watchPrimary options: ${pattern.source}`));
      invalid(() => createPool({ ...options, connection: {} }), new RegExp(`^invalid createPool options: ${pattern.source}`));
      invalid(() => registerClient({ ...options, id: 'x' }), new RegExp(`^invalid registerClient options: ${pattern.source}`));
    }
  });
});
