/**
 * Each node's agent config, built from the plan as the document the agent's own schema reads
 * (packages/common/src/config.ts), then rendered as commented YAML.
 */
import { stringify } from 'yaml';
import type { ClusterPlan, NodePlan } from './plan.js';

/** `[v6]:port` or `host:port`, as in a URL. */
export function urlAuthority(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/** Where a node's agent finds its passwords and its server's pid file; null leaves pidFile out. */
export interface AgentFiles {
  readonly mysqlPassword: string;
  readonly replPassword: string;
  readonly pidFile: string | null;
}

export function agentConfigDocument(plan: ClusterPlan, node: NodePlan, files: AgentFiles = plan.paths): Record<string, unknown> {
  return {
    cluster: plan.cluster,
    node: node.name,
    etcd: { endpoints: [...plan.etcd], root: plan.root },
    mysql: {
      // The agent runs beside its server; others reach the server at advertiseHost.
      host: '127.0.0.1',
      port: node.mysqlPort,
      user: plan.mysqlUser,
      password: { file: files.mysqlPassword },
      advertiseHost: node.host,
      ...(files.pidFile === null ? {} : { pidFile: files.pidFile }),
    },
    replication: { user: plan.replUser, password: { file: files.replPassword }, semiSync: plan.semiSync },
    // HAProxy and the other agents reach the API from other hosts.
    http: { host: '0.0.0.0', port: node.apiPort, advertiseUrl: `http://${urlAuthority(node.host, node.apiPort)}` },
    bootstrap: { primary: plan.bootstrap },
  };
}

export function renderAgentConfig(plan: ClusterPlan, node: NodePlan): string {
  return [
    `# primacy-agent on ${node.name} of cluster ${plan.cluster}, written by primacy config generate.`,
    `# Install as ${plan.paths.agentConfig} on ${node.host}. Every field is in docs/configuration.md;`,
    `# the passwords are read from ${plan.paths.mysqlPassword} and ${plan.paths.replPassword}.`,
    stringify(agentConfigDocument(plan, node), { lineWidth: 0 }),
  ].join('\n');
}
