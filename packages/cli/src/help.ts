/** The help texts: one overview and one page per command. */
import type { CommandName } from './args.js';

const WHERE = `Where the cluster is (every command but sandbox):
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
  topology                         the replication tree from the primary
  history [--json]                 every operation, oldest first
  explain [EPOCH] [--json]         why an operation went as it did (default: the newest)
  pause | resume                   stop or allow automatic failover
  durability [async|semi-sync|strict]
                                   show or set what commits wait for
  switchover [--to NODE]           ask the coordinator to move the primary
  failover --to NODE [--force]     ask the coordinator to promote NODE
  failover --to NODE --unfenced [--yes]
                                   let a failover that waits for a fencing proof go on
  sandbox up|status|kill|down      a local throw-away cluster to try Primacy on
  help [COMMAND]                   this text, or a command's

${WHERE}

  -h, --help            help (also after a command: primacy status --help)
  --version             the CLI's version

Exit codes: 0 ok, 1 refused/aborted/failed, 2 usage, 3 etcd unreachable or refused,
4 unknown cluster/node/epoch, 5 timeout, 130 interrupted while waiting.
See docs/cli.md.`;

const PAGES: Record<CommandName, string> = {
  status: `usage: primacy status [--json] [--watch]

The cluster (primary, epoch, coordinator, paused, last operation, durability) and a table of every
node: role, state, health, read_only, executed GTID position, lag, semi-sync and agent version.
Nodes named by the last operation that have no member key show as "gone". A failover that waits
for a proof that the old primary is fenced gets a line saying what it waits for and what to do.

  --json    machine-readable output (schema version 1, see docs/cli.md)
  --watch   redraw on every change in etcd and at least every second, until Ctrl-C
            (with --json: one JSON document per line)`,
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
  switchover: `usage: primacy switchover [--to NODE] [--no-wait] [--timeout S]

Asks the coordinator to move the primary to NODE (or to the replica it chooses), then waits for the
outcome, printing each step.

  --to NODE     the replica to promote (default: the coordinator chooses)
  --no-wait     print the request id and return at once
  --timeout S   how long to wait, in seconds (default 60); a request nobody took by then is deleted`,
  failover: `usage: primacy failover --to NODE [--force] [--unfenced [--yes]] [--no-wait] [--timeout S]

Asks the coordinator to promote NODE now, whatever the state of the primary, then waits for the
outcome, printing each step. No one is promoted before the old primary is proven fenced.

  --to NODE     the replica to promote (required)
  --force       let the coordinator override its safety rules (errant GTIDs, no-promote, lag)
  --unfenced    your word that the old primary takes no writes (powered off, cut off), for a
                failover that waits for a fencing proof (see primacy status); on a terminal you
                confirm by typing the old primary's name
  --yes         confirm --unfenced without being asked (required when stdin is not a terminal)
  --no-wait     print the request id and return at once
  --timeout S   how long to wait, in seconds (default 60); a request nobody took by then is deleted`,
  sandbox: `usage: primacy sandbox up|status|kill|down ...

A local throw-away cluster (MariaDB servers, etcd and agents) to try Primacy on.
Run primacy sandbox --help for its options.`,
  help: `usage: primacy help [COMMAND]`,
};

export function helpText(topic: CommandName | null): string {
  if (topic === null) return OVERVIEW;
  const page = PAGES[topic];
  return topic === 'sandbox' || topic === 'help' ? page : `${page}\n\n${WHERE}`;
}
