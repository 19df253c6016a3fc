/**
 * The `primacy` CLI against an etcd that requires TLS with client certificates, and one with auth
 * enabled: single-member etcds, no agents. The cluster's keys are seeded with the harness's client;
 * the CLI must read them (status) and write (pause) through the same doors an operator has.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { clusterKeys, encodeValue } from '@primacy/common';
import { main, type Io } from '@primacy/cli';
import { makeTestCertificates, startEtcd, type ClientTlsFiles, type EtcdCluster } from './harness/etcd.js';
import { cleanupAll, harnessDir } from './harness/index.js';

const repoRoot = fileURLToPath(new URL('../', import.meta.url));
const CLUSTER = 'c1';
const PASSWORD = 'root-secret';

let tlsEtcd: EtcdCluster;
let authEtcd: EtcdCluster;
let tls: ClientTlsFiles;
/** A CA, and a client certificate, that the TLS etcd does not know. */
let stranger: ClientTlsFiles;
let workDir: string;

interface Run {
  readonly code: number;
  readonly out: string;
  readonly err: string;
}

/** Runs the CLI in-process with captured output and only the given environment, bounded in time. */
async function cli(argv: string[], env: Record<string, string>): Promise<Run> {
  let out = '';
  let err = '';
  const io: Io = { stdout: { write: (s: string) => (out += s) }, stderr: { write: (s: string) => (err += s) }, isTTY: false, env: { PRIMACY_CLUSTER: CLUSTER, ...env } };
  let timer: NodeJS.Timeout | undefined;
  const code = await Promise.race([
    main(argv, io),
    new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`primacy ${argv.join(' ')} took over 20 s`)), 20_000))),
  ]).finally(() => clearTimeout(timer));
  return { code, out, err };
}

/** Runs the CLI as a real process, as an operator would. */
function cliProcess(argv: string[], env: Record<string, string>): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--conditions=@primacy/source', '--import', 'tsx', 'packages/cli/src/main.ts', ...argv],
      { cwd: repoRoot, env: { PATH: process.env['PATH'] ?? '', NO_COLOR: '1', PRIMACY_CLUSTER: CLUSTER, ...env }, timeout: 30_000 },
      (error, stdout, stderr) => resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, out: stdout, err: stderr }),
    );
  });
}

function assertOneLine(r: Run, code: number, message: RegExp): void {
  assert.equal(r.code, code, r.err);
  assert.equal(r.out, '');
  assert.match(r.err, /^primacy: [^\n]+\n$/, 'one line on stderr');
  assert.match(r.err, message);
}

/** Just enough of a cluster for `status`: the CLI reads it, an empty prefix would be exit 4. */
async function seed(etcd: EtcdCluster): Promise<void> {
  await etcd.client().put(clusterKeys(CLUSTER).config).value(encodeValue({ paused: false }));
}

before(async () => {
  [tlsEtcd, authEtcd] = await Promise.all([startEtcd({ members: 1, clientTls: true }), startEtcd({ members: 1, rootPassword: PASSWORD })]);
  tls = tlsEtcd.tls!;
  workDir = await harnessDir('cli-etcd-security');
  stranger = await makeTestCertificates(workDir);
  await Promise.all([seed(tlsEtcd), seed(authEtcd)]);
});

after(async () => {
  await Promise.all([tlsEtcd?.stop(), authEtcd?.stop()]);
  await cleanupAll();
});

describe('primacy against an etcd that requires TLS and client certificates', () => {
  test('status and pause over TLS, with the flags or with the variables and host:port', async () => {
    const flags = ['--etcd', tlsEtcd.endpoints[0]!, '--cacert', tls.ca, '--cert', tls.cert, '--key', tls.key];
    const paused = await cli(['pause', ...flags], {});
    assert.equal(paused.code, 0, paused.err);
    assert.equal(paused.out, `paused ${CLUSTER}: no automatic failover until primacy resume\n`);
    const status = await cli(['status', ...flags], {});
    assert.equal(status.code, 0, status.err);
    assert.match(status.out, new RegExp(`^cluster +${CLUSTER} \\(etcd revision \\d+\\)\\n`));
    assert.match(status.out, /\npaused +yes/);
    const fromEnv = await cli(['resume'], {
      PRIMACY_ETCD: tlsEtcd.endpoints[0]!.replace(/^https:\/\//, ''),
      PRIMACY_ETCD_CACERT: tls.ca,
      PRIMACY_ETCD_CERT: tls.cert,
      PRIMACY_ETCD_KEY: tls.key,
    });
    assert.equal(fromEnv.code, 0, fromEnv.err);
    assert.equal(fromEnv.out, `resumed ${CLUSTER}: automatic failover is allowed again\n`);
  });

  test('as a real process: the output and nothing on stderr (no TLS warning)', async () => {
    const r = await cliProcess(['status', '--etcd', tlsEtcd.endpoints[0]!, '--cacert', tls.ca, '--cert', tls.cert, '--key', tls.key], {});
    assert.equal(r.code, 0, r.err);
    assert.equal(r.err, '');
    assert.match(r.out, /^cluster +c1 /);
  });

  test('no CA, or the wrong one: exit 3 and one line that says which', async () => {
    const client = ['--cert', tls.cert, '--key', tls.key];
    const noCa = await cli(['status', '--etcd', tlsEtcd.endpoints[0]!, ...client], {});
    assertOneLine(noCa, 3, /^primacy: cannot verify the certificate of etcd at https:\/\/127\.0\.0\.1:\d+: .+ \(give its CA with --cacert FILE\)\n$/);
    const wrongCa = await cli(['status', '--etcd', tlsEtcd.endpoints[0]!, '--cacert', stranger.ca, ...client], {});
    assertOneLine(wrongCa, 3, new RegExp(`\\(is --cacert ${stranger.ca} the CA that signed it\\?\\)\\n$`));
  });

  test('no client certificate, or one etcd does not trust: exit 3, refused', async () => {
    const none = await cli(['status', '--etcd', tlsEtcd.endpoints[0]!, '--cacert', tls.ca], {});
    assertOneLine(none, 3, /^primacy: etcd at https:\/\/127\.0\.0\.1:\d+ refused a client without a certificate: give one signed by a CA it trusts, with --cert and --key\n$/);
    const foreign = await cli(['status', '--etcd', tlsEtcd.endpoints[0]!, '--cacert', tls.ca, '--cert', stranger.cert, '--key', stranger.key], {});
    assertOneLine(foreign, 3, new RegExp(`refused the client certificate ${stranger.cert}: `));
  });

  test('a key that is not the certificate\'s, or a plain http endpoint: usage, before any call', async () => {
    const mismatch = await cli(['status', '--etcd', tlsEtcd.endpoints[0]!, '--cacert', tls.ca, '--cert', tls.cert, '--key', stranger.key], {});
    assertOneLine(mismatch, 2, new RegExp(`^primacy: cannot use --key ${stranger.key}: not the private key of --cert ${tls.cert}\\n$`));
    const plain = await cli(['status', '--etcd', tlsEtcd.endpoints[0]!.replace(/^https:/, 'http:'), '--cacert', tls.ca], {});
    assertOneLine(plain, 2, /--cacert is given but etcd endpoint http:\/\/127\.0\.0\.1:\d+ is plain http: use https:\/\//);
  });
});

describe('primacy against an etcd with auth enabled', () => {
  test('status with the right password, from the environment or a file; pause writes', async () => {
    const env = { PRIMACY_ETCD: authEtcd.endpoints[0]!, PRIMACY_ETCD_USER: 'root', PRIMACY_ETCD_PASSWORD: PASSWORD };
    const status = await cli(['status'], env);
    assert.equal(status.code, 0, status.err);
    assert.match(status.out, /^cluster +c1 /);
    const passwordFile = join(workDir, 'etcd.password');
    await writeFile(passwordFile, `${PASSWORD}\n`, { mode: 0o600 });
    const fromFile = await cli(['pause', '--etcd', authEtcd.endpoints[0]!, '--user', 'root', '--password-file', passwordFile], {});
    assert.equal(fromFile.code, 0, fromFile.err);
    assert.equal(fromFile.out, `paused ${CLUSTER}: no automatic failover until primacy resume\n`);
    assert.equal((await cli(['resume'], env)).code, 0);
  });

  test('a wrong password: exit 3 and one line naming the user', async () => {
    const r = await cli(['status', '--user', 'root'], { PRIMACY_ETCD: authEtcd.endpoints[0]!, PRIMACY_ETCD_PASSWORD: 'not-it' });
    assertOneLine(r, 3, /^primacy: etcd at http:\/\/127\.0\.0\.1:\d+ refused user root: wrong user name or password \(check --user, and PRIMACY_ETCD_PASSWORD or --password-file\)\n$/);
    const p = await cliProcess(['status', '--user', 'root'], { PRIMACY_ETCD: authEtcd.endpoints[0]!, PRIMACY_ETCD_PASSWORD: 'not-it' });
    assertOneLine(p, 3, /refused user root: wrong user name or password/);
  });

  test('no user: exit 3, etcd requires one; a user without a password: usage', async () => {
    const noUser = await cli(['status'], { PRIMACY_ETCD: authEtcd.endpoints[0]! });
    assertOneLine(noUser, 3, /^primacy: etcd at http:\/\/127\.0\.0\.1:\d+ requires a user: give --user NAME and a password/);
    const noPassword = await cli(['status', '--user', 'root'], { PRIMACY_ETCD: authEtcd.endpoints[0]! });
    assertOneLine(noPassword, 2, /^primacy: etcd user root needs a password: set PRIMACY_ETCD_PASSWORD or use --password-file FILE/);
  });
});
