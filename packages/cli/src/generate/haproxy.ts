/**
 * The HAProxy config in front of a cluster, and the server-state file it starts from. One template
 * for deploy/haproxy.cfg, `primacy config generate` and test/haproxy.test.ts, so the shipped config
 * is the tested one. HAProxy cannot read etcd: it asks each node's agent (`/primary`, `/replica`).
 */
import type { ClusterPlan } from './plan.js';

export const WRITE_LISTENER = 'mysql-write';
export const READ_LISTENER = 'mysql-read';

/**
 * Check timings of each pool. Writes: the old primary leaves within inter + fastinter (0.35 s) of
 * its agent turning 503; two failures, so that one slow answer does not cut every write session.
 * The new one joins within downinter (0.25 s) of its first 200: only the ready primary with a live
 * lease answers 200, so one answer is enough. Reads change less often and cost a check per replica
 * per second.
 */
export const WRITE_CHECKS = 'inter 250ms fastinter 100ms downinter 250ms fall 2 rise 1';
export const READ_CHECKS = 'inter 1s fastinter 250ms downinter 1s fall 2 rise 2';

function hostPort(host: string, port: number): string {
  return `${host.includes(':') ? `[${host}]` : host}:${port}`;
}

interface Listener {
  readonly name: string;
  readonly port: number;
  readonly balance: string | null;
  readonly check: string;
  readonly why: readonly string[];
  readonly checks: string;
}

function listener(plan: ClusterPlan, l: Listener): string[] {
  return [
    `listen ${l.name}`,
    `  bind ${hostPort(plan.haproxy.bind, l.port)}`,
    ...(l.balance === null ? [] : [`  balance ${l.balance}`]),
    `  option httpchk GET ${l.check}`,
    '  http-check expect status 200',
    ...l.why.map((line) => `  # ${line}`),
    `  default-server ${l.checks} on-marked-down shutdown-sessions`,
    ...plan.nodes.map((n) => `  server ${n.name} ${hostPort(n.host, n.mysqlPort)} check port ${n.apiPort}`),
    '',
  ];
}

export function renderHaproxyConfig(plan: ClusterPlan): string {
  const h = plan.haproxy;
  return [
    `# HAProxy (2.6 or later) in front of the Primacy cluster "${plan.cluster}", written by primacy config generate.`,
    '# Writes go to the one node whose agent answers 200 on /primary, reads to the replicas whose agent',
    `# answers 200 on /replica within ${h.maxLagMs} ms of lag. docs/operations.md, "Load balancers", says what to expect.`,
    'global',
    '  # The runtime API: echo "show servers state" | socat stdio <socket>',
    `  stats socket ${h.statsSocket} mode 660 level admin`,
    '  # HAProxy 2.6 has no init-state: a new server starts UP and takes connections until its first',
    '  # check fails, so writes would reach replicas (and be refused with 1290) right after a start.',
    '  # This file, written with the config, lists every server DOWN: none takes a connection before',
    '  # its agent has answered 200 (rise checks in a row). A reload starts from it too; to keep the',
    '  # live states across a reload, write `show servers state` from the socket into it first.',
    `  server-state-file ${h.stateFile}`,
    '',
    'defaults',
    '  mode tcp',
    '  timeout connect 2s',
    '  timeout client 1h',
    '  timeout server 1h',
    '  # An agent that has not answered within this fails the check.',
    '  timeout check 1s',
    '  load-server-state-from-file global',
    '',
    ...listener(plan, {
      name: WRITE_LISTENER,
      port: h.writePort,
      balance: null,
      check: '/primary',
      why: ['Only the ready primary with a live lease answers 200. Its sessions are cut once it is marked', 'down: on a demoted primary they would get error 1290 (read-only).'],
      checks: WRITE_CHECKS,
    }),
    ...listener(plan, {
      name: READ_LISTENER,
      port: h.readPort,
      balance: 'leastconn',
      check: `/replica?max_lag=${h.maxLagMs}`,
      why: ['A replica marked down (lagging, replication stopped, promoted) loses its open sessions too:', 'a persistent connection would otherwise keep reading stale data.'],
      checks: READ_CHECKS,
    }),
  ].join('\n');
}

/**
 * The state HAProxy loads at start-up (server-state-file version 1): every server DOWN, so that each
 * must pass `rise` checks before it takes a connection. HAProxy matches the lines by listener and
 * server name; the ids are left 0 for it to fill.
 */
export function renderHaproxyStartState(plan: ClusterPlan): string {
  const header =
    '# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change ' +
    'srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord';
  // op state 0 (stopped), admin state 0, weights 1, check status 1 (none) result 0 health 0, check state 6 (enabled, configured).
  const lines = [WRITE_LISTENER, READ_LISTENER].flatMap((listener) =>
    plan.nodes.map((n) => `0 ${listener} 0 ${n.name} ${n.host} 0 0 1 1 0 1 0 0 6 0 0 0 - ${n.mysqlPort} -`),
  );
  return ['1', header, ...lines, ''].join('\n');
}
