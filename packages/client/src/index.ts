/**
 * @primacy/client: follow a Primacy cluster's primary from etcd (`watchPrimary`), send statements
 * to it through a mysql2-style pool (`createPool`), and register clients that hold their writes
 * during a switchover (`registerClient`, or the pool's `register` option). See docs/client.md.
 */
export { watchPrimary, PrimaryWatch, type PrimaryWatchEvents } from './watch.js';
export { createPool, PrimaryPool, type ConnectionInfo, type PoolEvents, type PoolStats, type Queryable, type RetiredInfo } from './pool.js';
export { PrimacyConnection, type Sql } from './connection.js';
export { registerClient, registrationFor, ClientRegistrationHandle, type ClientRegistrationEvents } from './registration.js';
export { ClientError, ClientErrorCodes, OutcomeUnknownError, isClientError, type ClientErrorCode } from './errors.js';
export { classifyStatementError, type StatementFailure } from './classify.js';
export { applyPrimary, healthyReplicas, type PrimaryView, type Replica } from './topology.js';
export { resilientEtcdOptions } from './etcd.js';
export type { EtcdOption, PoolOptions, RegistrationOptions, WatchOptions } from './options.js';
export type { EtcdConnectionOptions, EtcdTlsOptions, PemSource } from './etcd-access.js';
export type { ClientRegistration, Primary } from '@primacy/common';
