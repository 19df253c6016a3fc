#!/usr/bin/env node
/**
 * `primacy-agent --config FILE`. A bad config or a wrong flag exits with code 2 and one line; any
 * later failure is logged, never a stack trace on the terminal and never a crash loop.
 */
import { parseArgs } from 'node:util';
import { ConfigError, describeError, loadAgentConfig, type AgentConfig } from '@primacy/common';
import { Agent } from './agent.js';
import { exposeProcessMetrics } from './metrics.js';
import { AGENT_VERSION } from './version.js';

const USAGE = 'usage: primacy-agent --config FILE';

function fail(line: string, code: number): never {
  process.stderr.write(`primacy-agent: ${line}\n`);
  process.exit(code);
}

function readConfig(argv: string[]): AgentConfig {
  let values: { config?: string | undefined; version?: boolean | undefined; help?: boolean | undefined };
  try {
    ({ values } = parseArgs({ args: argv, options: { config: { type: 'string', short: 'c' }, version: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } }, strict: true }));
  } catch (err) {
    fail(`${describeError(err)}; ${USAGE}`, 2);
  }
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    process.exit(0);
  }
  if (values.version) {
    process.stdout.write(`${AGENT_VERSION}\n`);
    process.exit(0);
  }
  if (!values.config) fail(`missing --config; ${USAGE}`, 2);
  try {
    return loadAgentConfig(values.config);
  } catch (err) {
    fail(err instanceof ConfigError ? err.toLine() : describeError(err), 2);
  }
}

async function main(): Promise<void> {
  const config = readConfig(process.argv.slice(2));
  exposeProcessMetrics();
  const agent = new Agent(config, { onFatal: (line) => fail(line, 2) });
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    const force = setTimeout(() => process.exit(1), 14_000); // a primary hands over for up to 10 s; systemd waits 15
    force.unref();
    agent.stop().then(
      () => process.exit(0),
      (err: unknown) => fail(`stopping on ${signal}: ${describeError(err)}`, 1),
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('unhandledRejection', (err) => process.stderr.write(`primacy-agent: unhandled: ${describeError(err)}\n`));
  try {
    await agent.start();
  } catch (err) {
    fail(describeError(err), 1);
  }
}

void main();
