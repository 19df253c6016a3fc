export { startEtcd, type EtcdCluster, type EtcdMember, type EtcdOptions } from './etcd.js';
export {
  ADMIN,
  APP,
  ER_READ_ONLY,
  REPL,
  startMariaDb,
  wireReplication,
  type Credentials,
  type MariaDbCluster,
  type MariaDbOptions,
  type MariaDbServer,
  type QueryOptions,
} from './mariadb.js';
export { startProxy, type CutMode, type ProxyOptions, type TcpProxy } from './proxy.js';
export { freePort, freePorts, LOOPBACK } from './ports.js';
export {
  cleanupAll,
  findExecutable,
  harnessDir,
  harnessRoot,
  livePids,
  logTail,
  onCleanup,
  removeDir,
  spawnManaged,
  TEMP_PREFIX,
  type ExitStatus,
  type ManagedProcess,
  type SpawnOptions,
} from './processes.js';
export { sleep, WaitAborted, waitFor, withTimeout } from './wait.js';
