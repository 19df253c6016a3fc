/**
 * Reading typed values out of result rows. mysql2 returns integers as numbers, session variables as
 * numbers or 'ON'/'OFF', and status variables as strings; these accept every shape a server sends and
 * throw a RowShapeError naming the column otherwise, so a surprise is reported, never guessed around.
 */
import type { Row } from './session.js';

export class RowShapeError extends Error {
  readonly code = 'PRIMACY_ROW_SHAPE';
  constructor(column: string, value: unknown, expected: string) {
    super(`column ${column} is ${JSON.stringify(value) ?? String(value)}, expected ${expected}`);
    this.name = 'RowShapeError';
  }
}

export function readText(row: Row, column: string): string {
  const v = row[column];
  if (v === null || v === undefined) return '';
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'bigint') return String(v);
  if (Buffer.isBuffer(v)) return v.toString('utf8');
  throw new RowShapeError(column, v, 'text');
}

export function readNullableInt(row: Row, column: string): number | null {
  const v = row[column];
  if (v === null || v === undefined || v === '') return null;
  const n = typeof v === 'number' ? v : typeof v === 'bigint' || typeof v === 'string' ? Number(v) : NaN;
  if (!Number.isFinite(n)) throw new RowShapeError(column, v, 'a number');
  return n;
}

export function readInt(row: Row, column: string): number {
  const n = readNullableInt(row, column);
  if (n === null) throw new RowShapeError(column, row[column], 'a number');
  return n;
}

/** 1/0, 'ON'/'OFF', 'YES'/'NO', true/false; NULL (a variable the server does not have) is false. */
export function readBool(row: Row, column: string): boolean {
  const v = row[column];
  if (v === null || v === undefined) return false;
  if (typeof v === 'boolean') return v;
  if (typeof v === 'number') return v !== 0;
  if (typeof v === 'string') {
    const s = v.trim().toUpperCase();
    if (s === 'ON' || s === 'YES' || s === '1' || s === 'TRUE') return true;
    if (s === 'OFF' || s === 'NO' || s === '0' || s === 'FALSE' || s === '') return false;
  }
  throw new RowShapeError(column, v, 'a boolean (1/0, ON/OFF)');
}

/** As readBool, but NULL or a missing column (a variable the server or a recording lacks) is null. */
export function readNullableBool(row: Row, column: string): boolean | null {
  const v = row[column];
  return v === null || v === undefined ? null : readBool(row, column);
}
