/**
 * A SqlSession that answers from recorded server output and writes down every statement it is sent.
 * The MySQL driver is tested this way because no MySQL server runs on these machines; the MariaDB
 * parsers are also tested on rows recorded from a live 10.11.
 */
import type { QueryOptions, Row, SqlParam, SqlSession } from './session.js';

export interface RecordedError {
  readonly errno: number;
  readonly code: string;
  readonly message: string;
}

export interface RecordedResponse {
  /** The statement starts with this (after collapsing whitespace). */
  readonly match: string;
  /** …and, when given, contains this. */
  readonly contains?: string;
  readonly rows?: readonly Row[];
  readonly error?: RecordedError;
  /** Answer once, then let later responses (or none) answer the same statement. */
  readonly once?: boolean;
}

export interface SentStatement {
  readonly session: string;
  readonly sql: string;
  readonly params: readonly SqlParam[];
  readonly timeoutMs: number | null;
}

/** What several sessions of one driver were sent, in order. */
export class Transcript {
  readonly #responses: RecordedResponse[];
  readonly sent: SentStatement[] = [];

  constructor(responses: readonly RecordedResponse[]) {
    this.#responses = [...responses];
  }

  /** The statements alone, in order. */
  get statements(): string[] {
    return this.sent.map((s) => s.sql);
  }

  answer(session: string, sql: string, params: readonly SqlParam[], options: QueryOptions): readonly Row[] {
    this.sent.push({ session, sql, params, timeoutMs: options.timeoutMs ?? null });
    const flat = sql.replace(/\s+/g, ' ').trim();
    const index = this.#responses.findIndex((r) => flat.startsWith(r.match) && (r.contains === undefined || flat.includes(r.contains)));
    const response = this.#responses[index];
    if (response === undefined) {
      // Statements that return no result set (SET, STOP, CHANGE …) need no recording.
      if (/^(SELECT|SHOW)\b/i.test(flat)) throw new Error(`no recorded output for: ${flat}`);
      return [];
    }
    if (response.once === true) this.#responses.splice(index, 1);
    if (response.error !== undefined) throw Object.assign(new Error(response.error.message), response.error, { sqlMessage: response.error.message });
    return response.rows ?? [];
  }
}

export class RecordedSession implements SqlSession {
  readonly #name: string;
  readonly #transcript: Transcript;
  readonly threadId: number | null;
  closed = false;

  constructor(name: string, transcript: Transcript, threadId: number) {
    this.#name = name;
    this.#transcript = transcript;
    this.threadId = threadId;
  }

  async query(sql: string, params: readonly SqlParam[] = [], options: QueryOptions = {}): Promise<readonly Row[]> {
    return this.#transcript.answer(this.#name, sql, params, options);
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}
