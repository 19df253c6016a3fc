import { test } from 'node:test';
import assert from 'node:assert/strict';
import { publishedApiUrl } from './member.js';

test('the published API URL: advertiseUrl first, else the listen address, never a wildcard', () => {
  assert.equal(publishedApiUrl({ host: '0.0.0.0', port: 8008, advertiseUrl: 'https://db1.example:9000/' }, 'http://0.0.0.0:8008', 'db1'), 'https://db1.example:9000');
  assert.equal(publishedApiUrl({ host: '10.0.0.11', port: 8008 }, 'http://10.0.0.11:8008', 'db1'), 'http://10.0.0.11:8008');
  assert.equal(publishedApiUrl({ host: '127.0.0.1', port: 0 }, 'http://127.0.0.1:41234', 'db1'), 'http://127.0.0.1:41234');
  assert.equal(publishedApiUrl({ host: '0.0.0.0', port: 8008 }, 'http://0.0.0.0:8008', 'db1.example'), 'http://db1.example:8008');
  assert.equal(publishedApiUrl({ host: '::', port: 0 }, 'http://[::]:41234', 'fd00::11'), 'http://[fd00::11]:41234');
  assert.equal(publishedApiUrl({ host: '0.0.0.0', port: 8008 }, null, '10.0.0.11'), 'http://10.0.0.11:8008', 'before the API listens');
});
