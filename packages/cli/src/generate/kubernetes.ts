/**
 * Kubernetes manifests for one cluster: a StatefulSet whose pods run MariaDB with the agent as a
 * sidecar, its headless Service, the ConfigMap with the agent's config and the server's options,
 * and a PodDisruptionBudget. Passwords are only referenced (one Secret, made by the operator);
 * no value is ever written. The pods' names are the nodes' names: `<name>-0`, `<name>-1`, ….
 */
import { stringify } from 'yaml';
// Types only: object literals of these types get their field names checked at compile time.
import type { IStatefulSet } from 'kubernetes-models/apps/v1/StatefulSet';
import type { IPodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget';
import type { IConfigMap } from 'kubernetes-models/v1/ConfigMap';
import type { IService } from 'kubernetes-models/v1/Service';
import { agentConfigDocument } from './agent-config.js';
import type { ClusterPlan } from './plan.js';

export const MYSQL_PORT = 3306;
export const API_PORT = 8008;
const MYSQL_GID = 999;
/** The Secret's keys. */
export const SECRET_KEYS = { root: 'root-password', mysql: 'mysql-password', repl: 'repl-password' } as const;
const SECRETS_DIR = '/etc/primacy/secrets';

export type Manifest = IService | IConfigMap | IStatefulSet | IPodDisruptionBudget;

function labels(plan: ClusterPlan): Record<string, string> {
  return { 'app.kubernetes.io/name': 'primacy', 'app.kubernetes.io/instance': plan.kubernetes.name, 'primacy/cluster': plan.cluster };
}

function metadata(plan: ClusterPlan, name: string): { name: string; namespace: string; labels: Record<string, string> } {
  return { name, namespace: plan.kubernetes.namespace, labels: labels(plan) };
}

/** The agent's config in the pod: node name and addresses come from the pod through PRIMACY__ variables. */
function podAgentConfig(plan: ClusterPlan): string {
  const k = plan.kubernetes;
  const first = { name: `${k.name}-0`, host: `${k.name}-0.${k.name}.${k.namespace}.svc`, mysqlPort: MYSQL_PORT, apiPort: API_PORT };
  const doc = agentConfigDocument({ ...plan, bootstrap: first.name }, first, {
    mysqlPassword: `${SECRETS_DIR}/${SECRET_KEYS.mysql}`,
    replPassword: `${SECRETS_DIR}/${SECRET_KEYS.repl}`,
    // mysqld runs in another container, out of the agent's sight: a refused connection on the pod's
    // loopback address proves it gone.
    pidFile: null,
  });
  return [
    '# primacy-agent in each pod of the StatefulSet. node, mysql.advertiseHost and http.advertiseUrl are',
    '# set per pod by the PRIMACY__NODE, PRIMACY__MYSQL__ADVERTISEHOST and PRIMACY__HTTP__ADVERTISEURL',
    '# variables; the values below are those of the first pod.',
    stringify(doc, { lineWidth: 0 }),
  ].join('\n');
}

/** The server's options, as in the sandbox: read-only at start (invariant 1), GTID, row binlog. */
const SERVER_OPTIONS = `[mariadbd]
# Only the node's own agent makes it writable.
read_only = ON
log_bin = mariadb-bin
relay_log = relay-bin
log_slave_updates = ON
binlog_format = ROW
gtid_strict_mode = ON
gtid_domain_id = 0
skip_name_resolve = ON
sync_binlog = 1
innodb_flush_log_at_trx_commit = 1
# The agents turn on the side of semi-sync that each node's role needs; AFTER_SYNC is the lossless one.
rpl_semi_sync_master_enabled = OFF
rpl_semi_sync_slave_enabled = OFF
rpl_semi_sync_master_wait_point = AFTER_SYNC
`;

/**
 * Run once by the mariadb image, on an empty data directory. Every pod makes these accounts on its
 * own, so they stay out of the binlog: replicated, they would be transactions the other pods lack.
 */
function usersScript(plan: ClusterPlan): string {
  const agentUser = plan.mysqlUser.replace(/'/g, "''");
  const replUser = plan.replUser.replace(/'/g, "''");
  return `# The agent's and the replication accounts (docs/configuration.md, "The agent's account on MariaDB").
# The passwords come from the Secret's files, never from this ConfigMap.
agent_pw=$(sed "s/'/''/g" ${SECRETS_DIR}/${SECRET_KEYS.mysql})
repl_pw=$(sed "s/'/''/g" ${SECRETS_DIR}/${SECRET_KEYS.repl})
docker_process_sql <<SQL
SET SESSION sql_log_bin = 0;
CREATE DATABASE IF NOT EXISTS primacy;
CREATE USER '${agentUser}'@'%' IDENTIFIED BY '$agent_pw';
GRANT RELOAD, PROCESS, CONNECTION ADMIN, READ_ONLY ADMIN, REPLICATION SLAVE ADMIN, REPLICATION MASTER ADMIN, SLAVE MONITOR ON *.* TO '${agentUser}'@'%';
GRANT SELECT, INSERT, UPDATE, CREATE ON primacy.* TO '${agentUser}'@'%';
CREATE USER '${replUser}'@'%' IDENTIFIED BY '$repl_pw';
GRANT REPLICATION SLAVE ON *.* TO '${replUser}'@'%';
SQL
`;
}

export function kubernetesManifests(plan: ClusterPlan): Manifest[] {
  const k = plan.kubernetes;
  const selector = { 'app.kubernetes.io/name': 'primacy', 'app.kubernetes.io/instance': k.name };
  const podDns = `$(POD_NAME).${k.name}.${k.namespace}.svc`;
  const configMap = `${k.name}-config`;
  const service: IService = {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: metadata(plan, k.name),
    spec: {
      // Headless: each pod gets its own DNS name, which the agents advertise; before it is ready too,
      // as replication and fencing must reach a node that is not (yet) healthy.
      clusterIP: 'None',
      publishNotReadyAddresses: true,
      selector,
      ports: [
        { name: 'mysql', port: MYSQL_PORT, targetPort: 'mysql' },
        { name: 'api', port: API_PORT, targetPort: 'api' },
      ],
    },
  };
  const config: IConfigMap = {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: metadata(plan, configMap),
    data: { 'agent.yaml': podAgentConfig(plan), 'primacy.cnf': SERVER_OPTIONS, 'primacy-users.sh': usersScript(plan) },
  };
  const secretFile = (key: string) => ({ key, path: key });
  const statefulSet: IStatefulSet = {
    apiVersion: 'apps/v1',
    kind: 'StatefulSet',
    metadata: metadata(plan, k.name),
    spec: {
      serviceName: k.name,
      replicas: plan.nodes.length,
      // The agents agree through etcd, not through the start order.
      podManagementPolicy: 'Parallel',
      selector: { matchLabels: selector },
      template: {
        metadata: { labels: labels(plan) },
        spec: {
          // A primary's agent hands over through a switchover on SIGTERM (up to 10 s).
          terminationGracePeriodSeconds: 30,
          // The mariadb image runs as mysql (gid 999): the data volume and the Secret's files are its group's.
          securityContext: { fsGroup: MYSQL_GID },
          containers: [
            {
              name: 'mariadb',
              image: k.mariadbImage,
              // server_id from the pod's ordinal; $$ is a literal $ for Kubernetes.
              command: ['sh', '-c', 'exec docker-entrypoint.sh mariadbd --server-id=$$((${HOSTNAME##*-} + 1)) --report-host=${HOSTNAME}.' + k.name],
              env: [{ name: 'MARIADB_ROOT_PASSWORD', valueFrom: { secretKeyRef: { name: k.secret, key: SECRET_KEYS.root } } }],
              ports: [{ name: 'mysql', containerPort: MYSQL_PORT }],
              volumeMounts: [
                { name: 'data', mountPath: '/var/lib/mysql' },
                { name: 'config', mountPath: '/etc/mysql/conf.d/primacy.cnf', subPath: 'primacy.cnf', readOnly: true },
                { name: 'config', mountPath: '/docker-entrypoint-initdb.d/primacy-users.sh', subPath: 'primacy-users.sh', readOnly: true },
                { name: 'secrets', mountPath: SECRETS_DIR, readOnly: true },
              ],
            },
            {
              name: 'agent',
              image: k.agentImage,
              command: ['primacy-agent', '--config', '/etc/primacy/agent.yaml'],
              env: [
                { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
                { name: 'PRIMACY__NODE', value: '$(POD_NAME)' },
                { name: 'PRIMACY__MYSQL__ADVERTISEHOST', value: podDns },
                { name: 'PRIMACY__HTTP__ADVERTISEURL', value: `http://${podDns}:${API_PORT}` },
              ],
              ports: [{ name: 'api', containerPort: API_PORT }],
              // /health: the agent runs and its server answers. Readiness only: restarting a pod
              // because its server is slow would turn a hiccup into a failover.
              readinessProbe: { httpGet: { path: '/health', port: 'api' }, periodSeconds: 2, timeoutSeconds: 1, failureThreshold: 2 },
              volumeMounts: [
                { name: 'config', mountPath: '/etc/primacy/agent.yaml', subPath: 'agent.yaml', readOnly: true },
                { name: 'secrets', mountPath: SECRETS_DIR, readOnly: true },
              ],
            },
          ],
          volumes: [
            { name: 'config', configMap: { name: configMap } },
            {
              name: 'secrets',
              secret: { secretName: k.secret, defaultMode: 0o440, items: [secretFile(SECRET_KEYS.mysql), secretFile(SECRET_KEYS.repl)] },
            },
          ],
        },
      },
      volumeClaimTemplates: [
        {
          metadata: { name: 'data' },
          spec: {
            accessModes: ['ReadWriteOnce'],
            ...(k.storageClass === undefined ? {} : { storageClassName: k.storageClass }),
            resources: { requests: { storage: k.storage } },
          },
        },
      ],
    },
  };
  const disruptionBudget: IPodDisruptionBudget = {
    apiVersion: 'policy/v1',
    kind: 'PodDisruptionBudget',
    metadata: metadata(plan, k.name),
    // One node at a time: a drain moves the primary by a switchover, never two nodes at once.
    spec: { maxUnavailable: 1, selector: { matchLabels: selector } },
  };
  return [service, config, statefulSet, disruptionBudget];
}

export function renderManifest(m: Manifest): string {
  return stringify(m, { lineWidth: 0 });
}
