import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { etcdFailure, ExitCode } from './errors.js';
import { main } from './main.js';
import { captureIo } from './testing/fixtures.js';

const dir = mkdtempSync(join(tmpdir(), 'primacy-cli-connect-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const file = (name: string, text: string): string => {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
};

/** Every one of these fails before any etcd call: the endpoint is never dialled. */
async function usageLine(argv: string[], env: Record<string, string> = {}): Promise<string> {
  const io = captureIo({ env: { PRIMACY_CLUSTER: 'c1', PRIMACY_ETCD: 'https://127.0.0.1:1', ...env } });
  assert.equal(await main(['status', ...argv], io), ExitCode.USAGE, io.err());
  assert.equal(io.out(), '');
  assert.match(io.err(), /^primacy: [^\n]+\n$/, 'one line');
  return io.err();
}

describe('TLS and password files are checked before etcd is dialled', () => {
  test('a missing, a directory or a non-PEM CA file', async () => {
    const missing = join(dir, 'nosuch.pem');
    assert.equal(await usageLine(['--cacert', missing]), `primacy: cannot use --cacert ${missing}: no such file\n`);
    assert.equal(await usageLine([], { PRIMACY_ETCD_CACERT: dir }), `primacy: cannot use PRIMACY_ETCD_CACERT ${dir}: it is a directory\n`);
    const junk = file('junk.pem', 'not a certificate\n');
    assert.equal(await usageLine(['--cacert', junk]), `primacy: cannot use --cacert ${junk}: not a PEM certificate\n`);
  });

  test('a missing client certificate', async () => {
    const junk = file('junk.key', 'not a key\n');
    assert.match(await usageLine(['--cert', join(dir, 'c.pem'), '--key', junk]), /cannot use --cert .*c\.pem: no such file/);
  });

  test('a missing or empty password file', async () => {
    const missing = join(dir, 'nosuch.pw');
    assert.equal(await usageLine(['--user', 'root', '--password-file', missing]), `primacy: cannot use --password-file ${missing}: no such file\n`);
    const empty = file('empty.pw', '\n');
    assert.equal(await usageLine(['--user', 'root', '--password-file', empty]), `primacy: cannot use --password-file ${empty}: it is empty\n`);
  });
});

describe('etcdFailure', () => {
  const endpoints = ['https://127.0.0.1:2379'];
  const ca = { path: 'ca.pem', from: '--cacert' };
  const cert = { path: 'me.pem', from: '--cert' };
  const auth = { user: 'ops', password: { value: 'x' } };
  // The messages as etcd 3.4 and grpc-js give them.
  const cases: Array<[string, Parameters<typeof etcdFailure>[0], string]> = [
    ['etcdserver: authentication failed, invalid user ID or password', { endpoints, tls: null, auth }, 'refused user ops: wrong user name or password'],
    ['etcdserver: user name is empty', { endpoints, tls: null, auth: null }, 'requires a user: give --user NAME'],
    ['etcdserver: permission denied', { endpoints, tls: null, auth }, 'denied user ops: permission denied'],
    [
      '14 UNAVAILABLE: No connection established. Last error: Error: 80:error:0A000412:SSL routines:ssl3_read_bytes:sslv3 alert bad certificate:rec_layer_s3.c:1601:SSL alert number 42. Resolution note: ',
      { endpoints, tls: { ca, cert, key: null }, auth: null },
      'refused the client certificate me.pem',
    ],
    ['14 UNAVAILABLE: No connection established. Last error: Error: unable to verify the first certificate', { endpoints, tls: { ca, cert: null, key: null }, auth: null }, '(is --cacert ca.pem the CA that signed it?)'],
    ['14 UNAVAILABLE: No connection established. Last error: Error: self-signed certificate in certificate chain', { endpoints, tls: null, auth: null }, '(give its CA with --cacert FILE)'],
    ['14 UNAVAILABLE: No connection established. Last error: Error: connect ECONNREFUSED 127.0.0.1:2379', { endpoints, tls: null, auth: null }, 'cannot reach etcd at https://127.0.0.1:2379: connect ECONNREFUSED'],
  ];
  for (const [message, target, expected] of cases) {
    test(expected, () => {
      const e = etcdFailure(target, new Error(message));
      assert.equal(e.exitCode, ExitCode.ETCD_UNREACHABLE);
      assert.ok(e.message.includes(expected), e.message);
    });
  }
});

test('an answer larger than the CLI takes is said as such, not as etcd unreachable', () => {
  const e = etcdFailure({ endpoints: ['http://127.0.0.1:2379'], tls: null, auth: null }, new Error('8 RESOURCE_EXHAUSTED: Received message larger than max (7381903 vs 4194304)'));
  assert.deepEqual([e.exitCode, e.message], [ExitCode.FAILED, 'etcd at http://127.0.0.1:2379 answered with 7381903 bytes, more than the CLI takes in one answer (4194304): too many keys for one read']);
});
