/** The help texts: one overview and one page per command. */
import type { CommandName } from './args.js';

const WHERE = `Where the cluster is (every command but sandbox and config):
  --etcd URL[,URL]      etcd endpoints (env PRIMACY_ETCD; default http://127.0.0.1:2379)
  --cluster NAME        the cluster (env PRIMACY_CLUSTER; required)
  --root PREFIX         key root (env PRIMACY_ROOT; default /primacy)

etcd TLS and authentication, as etcdctl's (with a TLS file, host:port means https):
  --cacert FILE         CA of etcd's certificates (env PRIMACY_ETCD_CACERT; default: Node's CAs)
  --cert FILE           client certificate, with --key (env PRIMACY_ETCD_CERT)
  --key FILE            its private key (env PRIMACY_ETCD_KEY)
  --user NAME           etcd user (env PRIMACY_ETCD_USER)
  --password-file FILE  the user's password; or set PRIMACY_ETCD_PASSWORD (never a command-line flag)`;

export const OVERVIEW = `usage: primacy COMMAND [options]

Reads and steers a Primacy cluster through etcd (no database credentials needed).

Commands:
  status [--json] [--watch]        the primary, the coordinator and every node
  status --all [--json]            every cluster under the root on one screen
  clusters [--json]                every cluster under the root: primary, epoch, health, operation
  topology                         the replication tree from the primary
  history [--json]                 every operation, oldest first
  explain [EPOCH] [--json]         why an operation went as it did (default: the newest)
  pause | resume                   stop or allow automatic failover
  durability [async|semi-sync|strict]
                                   show or set what commits wait for
  show-config [--json]             the cluster's dynamic config, as YAML (or JSON)
  edit-config [--set F=V]... [--file F] [--yes]
                                   change it: in $EDITOR, or by fields, or from a file
  maintenance [NODE on|off]        keep a node out of failovers, or list those kept out
  which-primary                    host:port of the ready primary, for scripts
  dsn [--role primary|replica]     a mysql:// DSN of the ready primary (or of each ready replica)
  switchover [--to NODE] [--yes]   ask the coordinator to move the primary
  failover --to NODE [--force] [--yes]
                                   ask the coordinator to promote NODE
  failover --to NODE --unfenced [--yes]
                                   let a failover that waits for a fencing proof go on
  rejoin NODE [--method M] [--dry-run] [--yes]
                                   rejoin a diverged node (flashback, reseed or script)
  sandbox up|status|kill|start|down
                                   a local throw-away cluster to try Primacy on
  config generate PLAN --out DIR   agent configs, systemd unit, HAProxy and Kubernetes files
  web --port P [--allow-actions]   a live web page of the cluster, or of every cluster
  help [COMMAND]                   this text, or a command's

${WHERE}

  -h, --help            help (also after a command: primacy status --help)
  --version             the CLI's version

Exit codes: 0 ok, 1 refused/aborted/failed, 2 usage, 3 etcd unreachable or refused,
4 unknown cluster/node/epoch, 5 timeout, 130 interrupted while waiting.
See docs/cli.md.`;

const PAGES: Record<CommandName, string> = {
  status: `usage: primacy status [--json] [--watch] | primacy status --all [--json]

The cluster (primary, epoch, coordinator, paused, last operation, durability) and a table of every
node: role, state, health, read_only, executed GTID position, lag, semi-sync and agent version.
Nodes named by the last operation that have no member key show as "gone". A failover that waits
for a proof that the old primary is fenced gets a line saying what it waits for and what to do.

  --json    machine-readable output (schema version 1, see docs/cli.md)
  --watch   redraw on every change in etcd and at least every second, until Ctrl-C
            (with --json: one JSON document per line)
  --all     every cluster under the root instead (no --cluster): how many are ok, degraded
            or down, paused, running an operation; then one line per cluster that needs a look.
            One ranged read of the root, however many clusters there are`,
  clusters: `usage: primacy clusters [--json]

Every cluster under the root (--root), one line each: its primary and epoch, health (ok; degraded:
a node not ok, no coordinator, a failover waiting for a fencing proof; down: no ready primary), how
many nodes are ok, the operation running, and notes (paused, nodes in maintenance, requests not
taken). One ranged read of the root, however many clusters there are; no --cluster.`,
  'show-config': `usage: primacy show-config [--json]

The cluster's dynamic config (its config key) as stored, as YAML (--json: as JSON): paused, maxLagMs,
antiFlapMs, durability, and per node priority, noPromote and maintenance.`,
  'edit-config': `usage: primacy edit-config [--set FIELD=VALUE]... [--file FILE] [--yes]

Changes the cluster's dynamic config. Without --set or --file it opens the config as YAML in $VISUAL
or $EDITOR (default vi). The result is checked against the config schema (an unknown field is
refused), shown as a diff, and written only if the config key has not changed since it was read.

  --set FIELD=VALUE   set one field, by its dotted path, such as maxLagMs=5000 or
                      nodes.db2.noPromote=true; the value is YAML; null removes the field. Repeatable
  --file FILE         the whole new config, YAML or JSON (--set then applies on top of it)
  --yes               write without asking (required when stdin is not a terminal)`,
  maintenance: `usage: primacy maintenance [NODE on|off]

A node in maintenance is never a candidate for promotion, and its absence blocks no failover (it is
not counted among the nodes that must answer). Sets nodes.NODE.maintenance in the config, keeping
its other fields. Without arguments: the nodes in maintenance.`,
  'which-primary': `usage: primacy which-primary

Prints host:port of the ready primary. Exit 1, with the reason on stderr, when there is no primary or
it is not ready (promoting, switching).`,
  dsn: `usage: primacy dsn [--role primary|replica] [--db-user NAME] [--database NAME] [--max-lag MS]

Prints a mysql:// DSN (never a password) of the ready primary, or with --role replica one line per
replica fit to read from (replicating from the primary, read-only, not in maintenance, within the
lag limit), least lag first. Exit 1 when there is none.

  --role R         primary (default) or replica
  --db-user NAME   the database user to put in the DSN
  --database NAME  the database to put in the DSN
  --max-lag MS     replicas only: the most lag allowed (default: the config's maxLagMs, else none)`,
  topology: `usage: primacy topology

The replication tree from the primary, with lag and broken replication; nodes that replicate from
nowhere, from outside the tree, or that have diverged are listed apart.`,
  history: `usage: primacy history [--json]

Every operation recorded in etcd (ops/), oldest first: epoch, kind, from, to, start, duration,
outcome and reason.`,
  explain: `usage: primacy explain [EPOCH] [--json]

The decision record of one operation (default: the newest): what triggered it, what proved the old
primary fenced (or what a running failover still waits for), the old primary's semi-sync state
before it, the members and candidates with their GTID positions, why the chosen one won and why the
others did not, and every step with its duration.`,
  pause: `usage: primacy pause

Sets paused in the cluster's config, keeping its other fields: the coordinator then refuses
automatic failover, and records each refusal in ops/ with the reason.`,
  resume: `usage: primacy resume

Clears paused in the cluster's config: automatic failover is allowed again.`,
  durability: `usage: primacy durability [async|semi-sync|strict]

Without an argument: the cluster's durability (durability in its config; when not set, each agent
follows its own replication.semiSync) and the primary's semi-sync state as the coordinator last
recorded it. With one, sets durability in the config, keeping its other fields; the agents apply it.

  async       commits do not wait for any replica; a failover can lose acknowledged writes
  semi-sync   commits wait for a replica's acknowledgement, but fall back to asynchronous
              replication when none comes within the timeout
  strict      never falls back: commits wait for an acknowledgement, however long; then a
              revoke of the replicas proves a failed primary fenced`,
  rejoin: `usage: primacy rejoin NODE [--method flashback|reseed|script] [--dry-run] [--yes] [--no-wait] [--timeout S]

Asks the coordinator to rejoin NODE, a node that diverged (it has transactions the primary lacks)
and whose agent has salvaged them (copied off, under salvage/NODE in etcd). Its agent carries the
rejoin out; the command prints each step until the record under rejoin/NODE says done.

  --method M    flashback (undo the extra row events; by default only when semi-sync was in sync at
                the failover), reseed (copy a healthy replica), or script (the agent's rejoin.script);
                default: the cluster's rejoin.method
  --dry-run     print what would be salvaged, undone or copied, and why the method is allowed or
                refused; nothing is written
  --yes         go ahead without being asked (required when stdin is not a terminal)
  --no-wait     print the request id and return at once
  --timeout S   how long to wait, in seconds (default 600)`,
  switchover: `usage: primacy switchover [--to NODE] [--yes] [--no-wait] [--timeout S]

Asks the coordinator to move the primary to NODE (or to the replica it chooses), then waits for the
outcome, printing each step. On a terminal it asks first.

  --to NODE     the replica to promote (default: the coordinator chooses)
  --yes         go ahead without being asked (required when stdin is not a terminal)
  --no-wait     print the request id and return at once
  --timeout S   how long to wait, in seconds (default 60); a request nobody took by then is deleted`,
  failover: `usage: primacy failover --to NODE [--force] [--unfenced] [--yes] [--no-wait] [--timeout S]

Asks the coordinator to promote NODE now, whatever the state of the primary, then waits for the
outcome, printing each step. No one is promoted before the old primary is proven fenced. On a
terminal it asks first.

  --to NODE     the replica to promote (required)
  --force       let the coordinator override its safety rules (errant GTIDs, no-promote, lag)
  --unfenced    your word that the old primary takes no writes (powered off, cut off), for a
                failover that waits for a fencing proof (see primacy status); on a terminal you
                confirm by typing the old primary's name
  --yes         confirm --unfenced without being asked, and the failover itself (required when
                stdin is not a terminal)
  --no-wait     print the request id and return at once
  --timeout S   how long to wait, in seconds (default 60); a request nobody took by then is deleted`,
  sandbox: `usage: primacy sandbox up|status|kill|start|down ...

A local throw-away cluster (MariaDB servers, etcd and agents) to try Primacy on.
Run primacy sandbox --help for its options.`,
  config: `usage: primacy config generate PLAN --out DIR [--force]

Writes the files to deploy a cluster from PLAN, a short YAML or JSON file: cluster, etcd (a list of
URLs) and nodes (name, host, and mysqlPort and apiPort, 3306 and 8008 when left out); see
deploy/cluster.example.yaml and docs/configuration.md for the optional settings. Into DIR:

  agents/NODE.yaml                 each node's agent config (/etc/primacy/agent.yaml on that node)
  systemd/primacy-agent.service    the agent's unit, the same on every node
  haproxy/haproxy.cfg              HAProxy's write and read ports, checking the agents
  haproxy/primacy.state            the state HAProxy starts from: every server down until checked
  kubernetes/*.yaml                a StatefulSet with the agent beside MariaDB, its Service,
                                   ConfigMap and PodDisruptionBudget; passwords stay in a Secret

No etcd is read or written. A bad plan (a duplicate name, two nodes on one host and port, no etcd)
is refused with one line and writes nothing.

  --out DIR   the folder to write into (made when missing)
  --force     overwrite files that exist (without it, an existing file is refused)`,
  web: `usage: primacy web --port P [--host H] [--allow-actions] [--cluster NAME]

Serves a live page of the cluster (without --cluster and PRIMACY_CLUSTER: of every cluster under
the root): the replication tree with roles, health, lag and GTID positions, the current operation
step by step, and the history with each operation's explanation. It follows etcd with a watch and
updates the page without a reload. Runs until Ctrl-C.

  --port P          the port to listen on (0: any free port; the URL is printed)
  --host H          the address to listen on (default 127.0.0.1)
  --allow-actions   show switchover, pause and resume buttons; without it the page is read-only
                    and the action endpoints answer 403`,
  help: `usage: primacy help [COMMAND]`,
};

export function helpText(topic: CommandName | null): string {
  if (topic === null) return OVERVIEW;
  const page = PAGES[topic];
  return topic === 'sandbox' || topic === 'help' || topic === 'config' ? page : `${page}\n\n${WHERE}`;
}
