import { readFileSync } from 'node:fs';
import { Etcd3, type IOptions } from 'etcd3';
import type { AgentConfig } from '@primacy/common';

/** Every unary call gets a deadline so that a blackholed etcd cannot hang a loop; streams get none. */
export function callDeadline(timeoutMs: number): IOptions['defaultCallOptions'] {
  return (context) => (context.isStream ? {} : { deadline: Date.now() + timeoutMs });
}

export function connectEtcd(config: AgentConfig): Etcd3 {
  const { etcd } = config;
  const options: IOptions = {
    hosts: [...etcd.endpoints],
    dialTimeout: etcd.dialTimeoutMs,
    defaultCallOptions: callDeadline(etcd.dialTimeoutMs),
  };
  if (etcd.tls) {
    options.credentials = {
      rootCertificate: readFileSync(etcd.tls.ca),
      ...(etcd.tls.key ? { privateKey: readFileSync(etcd.tls.key) } : {}),
      ...(etcd.tls.cert ? { certChain: readFileSync(etcd.tls.cert) } : {}),
    };
  }
  if (etcd.user !== undefined && config.secrets.etcdPassword !== undefined) {
    options.auth = { username: etcd.user, password: config.secrets.etcdPassword };
  }
  return new Etcd3(options);
}
