export { Agent } from './agent.js';
export { AGENT_VERSION } from './version.js';
export type { AgentView } from './view.js';
export { resilientEtcdOptions } from './etcd/connect.js';
export { CREATE_HEARTBEAT_TABLE } from './node/probe.js';
export { chooseRejoin, currentSalvage, rejoinPolicy, type RejoinFacts, type RejoinPlanChoice } from './coordinator/rejoin.js';
