/**
 * The etcd key layout of one cluster (DESIGN.md, "etcd layout"). Every key Primacy reads or writes
 * is built here, so the layout lives in one place.
 */
export const DEFAULT_ROOT = '/primacy';

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

/** Cluster and node names become key segments, so they are kept to a safe alphabet. */
export function isValidName(name: string): boolean {
  return NAME.test(name);
}

/** Epochs are zero-padded so that a range read returns ops in epoch order. */
export function epochSegment(epoch: number): string {
  return String(epoch).padStart(10, '0');
}

export interface ClusterKeys {
  readonly prefix: string;
  readonly membersPrefix: string;
  member(node: string): string;
  readonly election: string;
  readonly primary: string;
  readonly epoch: string;
  readonly opsPrefix: string;
  op(epoch: number): string;
  readonly historyPrefix: string;
  historyEntry(atMs: number, what: string): string;
  readonly config: string;
  /** The coordinator's record of the primary's semi-sync state (DurabilityRecord). */
  readonly durability: string;
  readonly requestsPrefix: string;
  request(id: string): string;
  readonly clientsPrefix: string;
  client(id: string): string;
  /** A diverged node's salvage manifest, written by its agent with no lease: it outlives the agent. */
  readonly salvagePrefix: string;
  salvage(node: string): string;
  /** The coordinator's record (an OpRecord of kind rejoin) of the last rejoin of a node. */
  readonly rejoinPrefix: string;
  rejoin(node: string): string;
  /** The coordinator's record of every node's last published positions (LastSeenRecord). */
  readonly lastSeen: string;
}

export function clusterKeys(cluster: string, root: string = DEFAULT_ROOT): ClusterKeys {
  const prefix = `${root.replace(/\/+$/, '')}/${cluster}/`;
  return Object.freeze({
    prefix,
    membersPrefix: `${prefix}members/`,
    member: (node: string) => `${prefix}members/${node}`,
    election: `${prefix}election`,
    primary: `${prefix}primary`,
    epoch: `${prefix}epoch`,
    opsPrefix: `${prefix}ops/`,
    op: (epoch: number) => `${prefix}ops/${epochSegment(epoch)}`,
    historyPrefix: `${prefix}history/`,
    historyEntry: (atMs: number, what: string) => `${prefix}history/${String(atMs).padStart(15, '0')}-${what}`,
    config: `${prefix}config`,
    durability: `${prefix}durability`,
    requestsPrefix: `${prefix}requests/`,
    request: (id: string) => `${prefix}requests/${id}`,
    clientsPrefix: `${prefix}clients/`,
    client: (id: string) => `${prefix}clients/${id}`,
    salvagePrefix: `${prefix}salvage/`,
    salvage: (node: string) => `${prefix}salvage/${node}`,
    rejoinPrefix: `${prefix}rejoin/`,
    rejoin: (node: string) => `${prefix}rejoin/${node}`,
    lastSeen: `${prefix}last-seen`,
  });
}

/** The last segment of a key under a prefix, e.g. the node name of a member key. */
export function keyName(prefix: string, key: string): string {
  return key.startsWith(prefix) ? key.slice(prefix.length) : key;
}
