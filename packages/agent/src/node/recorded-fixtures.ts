/**
 * Loading recorded server output (fixtures/*.json) and building a driver on it. Used by the tests only.
 */
import { readFileSync } from 'node:fs';
import type { Flavor, NodeDriver } from './driver.js';
import { driverOnSessions } from './index.js';
import { RecordedSession, Transcript, type RecordedResponse } from './recorded.js';

export interface Fixture {
  readonly server: string;
  readonly source: string;
  readonly scenarios: Readonly<Record<string, { readonly note: string; readonly responses: readonly RecordedResponse[] }>>;
}

export function loadFixture(file: string): Fixture {
  return JSON.parse(readFileSync(new URL(`./fixtures/${file}`, import.meta.url), 'utf8')) as Fixture;
}

export interface Replayed {
  readonly driver: NodeDriver;
  readonly transcript: Transcript;
  readonly sessions: { readonly probe: RecordedSession; readonly admin: RecordedSession; readonly wait: RecordedSession };
}

/** Thread ids of the recorded sessions: the processlist fixtures show 77 as the driver's own. */
export const RECORDED_THREAD_IDS = { probe: 77, admin: 78, wait: 79 } as const;

export const QUERY_TIMEOUT_MS = 1000;

export function replay(fixture: Fixture, scenario: string, flavor: Flavor | 'auto', extra: readonly RecordedResponse[] = []): Replayed {
  const recorded = fixture.scenarios[scenario];
  if (recorded === undefined) throw new Error(`no scenario ${scenario} in ${fixture.server}`);
  const transcript = new Transcript([...extra, ...recorded.responses]);
  const sessions = {
    probe: new RecordedSession('probe', transcript, RECORDED_THREAD_IDS.probe),
    admin: new RecordedSession('admin', transcript, RECORDED_THREAD_IDS.admin),
    wait: new RecordedSession('wait', transcript, RECORDED_THREAD_IDS.wait),
  };
  const driver = driverOnSessions(sessions, flavor, { where: 'db:3306', queryTimeoutMs: QUERY_TIMEOUT_MS });
  return { driver, transcript, sessions };
}
