import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chooseLeader, type EndpointStatus } from './leader-route.js';

const at = (endpoint: string, memberId: string, leader: string): EndpointStatus => ({ endpoint, memberId, leader });

test('chooseLeader: the endpoint of the member that the answers name as leader', () => {
  const cases: Array<[string, EndpointStatus[], string | null]> = [
    ['all agree on b', [at('e1', 'a', 'b'), at('e2', 'b', 'b'), at('e3', 'c', 'b')], 'e2'],
    ['the leader alone answers', [at('e2', 'b', 'b')], 'e2'],
    ['a follower alone answers: its leader is not reachable here', [at('e1', 'a', 'b')], null],
    ['no member knows a leader (an election)', [at('e1', 'a', '0'), at('e2', 'b', '0')], null],
    ['nobody answers', [], null],
    // A member cut off from the others names itself until check-quorum steps it down.
    ['a stale leader is outvoted', [at('e1', 'a', 'a'), at('e2', 'b', 'c'), at('e3', 'c', 'c')], 'e3'],
    ['a tie is no answer', [at('e1', 'a', 'a'), at('e3', 'c', 'c')], null],
    ['the named leader says it follows another', [at('e1', 'a', 'b'), at('e2', 'b', 'c'), at('e3', 'c', 'b')], null],
  ];
  for (const [name, statuses, expected] of cases) assert.equal(chooseLeader(statuses), expected, name);
});
