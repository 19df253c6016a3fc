/**
 * `primacy config generate PLAN --out DIR`: from a short description of the cluster (plan.ts),
 * writes each node's agent config, the systemd unit, the HAProxy config with its start-up state,
 * and the Kubernetes manifests. The renderers are pure; this shell reads the plan and writes files.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { renderAgentConfig } from './agent-config.js';
import { CliError, ExitCode } from '../errors.js';
import { renderHaproxyConfig, renderHaproxyStartState } from './haproxy.js';
import type { Io } from '../io.js';
import { kubernetesManifests, renderManifest } from './kubernetes.js';
import { parseClusterPlan, type ClusterPlan } from './plan.js';
import { renderAgentUnit } from './systemd.js';

export { compileClusterPlan, parseClusterPlan, type ClusterPlan, type NodePlan } from './plan.js';

/** Every generated file, by its path under the output folder. */
export function generateFiles(plan: ClusterPlan): Map<string, string> {
  const files = new Map<string, string>();
  for (const node of plan.nodes) files.set(`agents/${node.name}.yaml`, renderAgentConfig(plan, node));
  files.set('systemd/primacy-agent.service', renderAgentUnit(plan));
  files.set('haproxy/haproxy.cfg', renderHaproxyConfig(plan));
  files.set('haproxy/primacy.state', renderHaproxyStartState(plan));
  for (const m of kubernetesManifests(plan)) files.set(`kubernetes/${m.kind.toLowerCase()}.yaml`, renderManifest(m));
  return files;
}

export interface GenerateOptions {
  readonly input: string;
  readonly out: string;
  /** Overwrite files that already exist. */
  readonly force: boolean;
}

export function runGenerate(o: GenerateOptions, io: Io): number {
  let text: string;
  try {
    text = readFileSync(o.input, 'utf8');
  } catch (cause) {
    throw new CliError(ExitCode.USAGE, `cannot read ${o.input}: ${(cause as NodeJS.ErrnoException).code ?? 'error'}`, { cause });
  }
  const files = generateFiles(parseClusterPlan(text, o.input));
  const out = resolve(o.out);
  const existing = [...files.keys()].filter((f) => existsSync(join(out, f)));
  if (existing.length > 0 && !o.force) {
    throw new CliError(ExitCode.FAILED, `${join(o.out, existing[0]!)} exists${existing.length > 1 ? ` (and ${existing.length - 1} more)` : ''}: give another --out, or --force to overwrite`);
  }
  try {
    for (const [file, content] of files) {
      const path = join(out, file);
      mkdirSync(resolve(path, '..'), { recursive: true });
      writeFileSync(path, content);
    }
  } catch (cause) {
    throw new CliError(ExitCode.FAILED, `cannot write into ${o.out}: ${(cause as NodeJS.ErrnoException).code ?? 'error'}`, { cause });
  }
  for (const file of files.keys()) io.stdout.write(`wrote ${join(o.out, file)}\n`);
  return ExitCode.OK;
}
