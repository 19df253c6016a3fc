/**
 * The agent's systemd unit. deploy/primacy-agent.service is this text for the default config path;
 * a test keeps the two equal.
 */
import type { ClusterPlan } from './plan.js';

export function renderAgentUnit(plan: Pick<ClusterPlan, 'paths'>): string {
  return `[Unit]
Description=Primacy failover agent for the local MySQL/MariaDB server
After=network-online.target mariadb.service mysql.service
Wants=network-online.target

[Service]
Type=simple
User=primacy
# Node flags for a small footprint (docs/benchmarks.md, "Agent steady-state cost"). --lite-mode runs
# JavaScript without a JIT: the agent waits on I/O, and this saves about 20 MB of RSS (68 MiB against
# 89). It implies --jitless, which turns WebAssembly off; --no-expose-wasm only silences the warning.
# --single-threaded-gc keeps the GC off helper threads, which cost more CPU than they save here. The
# agent behaves the same without them. The shell finds primacy-agent on PATH, as \`env\` would.
ExecStart=/bin/sh -c 'exec node --lite-mode --no-expose-wasm --single-threaded-gc "$$(command -v primacy-agent)" --config ${plan.paths.agentConfig}'
# SIGTERM: a replica's agent leaves the cluster at once; a primary's agent hands over through a planned
# switchover (up to 10 s), or else fences its node read-only and lets the cluster fail over.
KillSignal=SIGTERM
TimeoutStopSec=15
# Exit code 2 is a bad config: restarting will not fix it.
RestartPreventExitStatus=2
Restart=on-failure
RestartSec=2

[Install]
WantedBy=multi-user.target
`;
}
