/**
 * The cluster's dynamic `config` key as an operator edits it (`show-config`, `edit-config`,
 * `maintenance`): the document as YAML, `--set` assignments, validation against the common schema,
 * and the diff shown before writing. Pure: documents in, documents, lines or a CliError out.
 */
import { structuredPatch } from 'diff';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { ClusterConfigSchema, ClusterConfigStrictSchema, describeIssues, isValidName, type ClusterConfig } from '@primacy/common';
import { CliError, ExitCode, usageError } from './errors.js';
import type { Style } from './io.js';

/** The config key's fields as stored, including ones this version of the CLI does not know. */
export type ConfigDoc = Readonly<Record<string, unknown>>;

/** One `--set PATH=VALUE`: a dotted path, and a YAML scalar value; null removes the field. */
export interface Assignment {
  readonly path: readonly string[];
  readonly value: unknown;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** `nodes.db1.priority=10`, `paused=true`, `maxLagMs=null` (removes it). */
export function parseAssignment(raw: string): Assignment {
  const eq = raw.indexOf('=');
  const path = eq < 0 ? [] : raw.slice(0, eq).split('.');
  if (eq < 0 || path.some((p) => p === '')) throw usageError(`bad --set "${raw}": expected FIELD=VALUE, such as paused=true or nodes.db1.priority=10`);
  let value: unknown;
  try {
    value = parseYaml(raw.slice(eq + 1));
  } catch {
    throw usageError(`bad --set "${raw}": the value is not a YAML scalar`);
  }
  if (value === undefined) value = null;
  if (isRecord(value) || Array.isArray(value)) throw usageError(`bad --set "${raw}": set one field at a time (FIELD.SUBFIELD=VALUE)`);
  return { path, value };
}

/** The document with one field set or, for null, removed; objects left empty by a removal go too. */
export function applyAssignment(doc: ConfigDoc, a: Assignment): ConfigDoc {
  const [head, ...rest] = a.path;
  if (head === undefined) return doc;
  const out: Record<string, unknown> = { ...doc };
  if (rest.length === 0) {
    if (a.value === null) delete out[head];
    else out[head] = a.value;
    return out;
  }
  const inner = applyAssignment(isRecord(doc[head]) ? doc[head] : {}, { path: rest, value: a.value });
  if (Object.keys(inner).length === 0) delete out[head];
  else out[head] = inner;
  return out;
}

export function applyAssignments(doc: ConfigDoc, assignments: readonly Assignment[]): ConfigDoc {
  return assignments.reduce(applyAssignment, doc);
}

/** Sets or clears one node's maintenance flag, keeping every other field; `maintenance: false` is not kept. */
export function withMaintenance(doc: ConfigDoc, node: string, on: boolean): ConfigDoc {
  return applyAssignment(doc, { path: ['nodes', node, 'maintenance'], value: on ? true : null });
}

/** What an operator wrote in a file or an editor: YAML (or JSON), a mapping; an empty text is `{}`. */
export function parseConfigText(text: string, from: string): ConfigDoc {
  let value: unknown;
  try {
    value = parseYaml(text);
  } catch (err) {
    const first = (err instanceof Error ? err.message : String(err)).split('\n')[0];
    throw new CliError(ExitCode.USAGE, `${from}: not valid YAML: ${first}`);
  }
  if (value === null || value === undefined) return {};
  if (!isRecord(value)) throw new CliError(ExitCode.USAGE, `${from}: expected a mapping of config fields (such as paused: true), got ${Array.isArray(value) ? 'a list' : typeof value}`);
  return value;
}

type Issue = NonNullable<ReturnType<typeof ClusterConfigStrictSchema.safeParse>['error']>['issues'][number];

function at(doc: unknown, path: readonly PropertyKey[]): unknown {
  return path.reduce<unknown>((v, k) => (isRecord(v) ? v[String(k)] : undefined), doc);
}

/**
 * Validates the edited document against the config schema, refusing fields it does not know
 * unless they were already in the stored config (written by a newer CLI, say, and kept).
 * Throws a usage CliError naming the first bad field; returns the config with defaults filled.
 */
export function checkConfig(doc: ConfigDoc, stored: ConfigDoc, from: string): ClusterConfig {
  const parsed = ClusterConfigStrictSchema.safeParse(doc);
  const issues = parsed.success
    ? []
    : parsed.error.issues.flatMap((issue): Issue[] => {
        if (issue.code !== 'unrecognized_keys') return [issue];
        const before = at(stored, issue.path);
        const keys = issue.keys.filter((k) => !(isRecord(before) && Object.hasOwn(before, k)));
        return keys.length === 0 ? [] : [{ ...issue, keys }];
      });
  const first = issues[0];
  if (first?.code === 'unrecognized_keys') {
    const where = first.path.length > 0 ? `${first.path.map(String).join('.')}.` : '';
    const known = first.path[0] === 'nodes' ? NODE_FIELDS : CONFIG_FIELDS;
    throw new CliError(ExitCode.USAGE, `${from}: unknown field ${where}${first.keys[0]} (known: ${known.join(', ')}); nothing was written`);
  }
  if (first) throw new CliError(ExitCode.USAGE, `${from}: ${describeIssues(issues)}; nothing was written`);
  const badNode = Object.keys(isRecord(doc.nodes) ? doc.nodes : {}).find((n) => !isValidName(n));
  if (badNode !== undefined) throw new CliError(ExitCode.USAGE, `${from}: nodes.${badNode}: not a node name (letters, digits, ".", "_" and "-"); nothing was written`);
  // Only the stored fields it does not know are left: the lenient schema drops them, as the agents do.
  return ClusterConfigSchema.parse(doc);
}

const CONFIG_FIELDS = Object.keys(ClusterConfigStrictSchema.shape);
const NODE_FIELDS = Object.keys(ClusterConfigStrictSchema.shape.nodes.unwrap().valueType.shape);

/** The document as an operator reads it. */
export function configYaml(doc: ConfigDoc): string {
  return stringifyYaml(doc, { lineWidth: 0 });
}

/** Same fields, same values, whatever the order. */
export function sameConfig(a: ConfigDoc, b: ConfigDoc): boolean {
  const canonical = (v: unknown): unknown => (isRecord(v) ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, canonical(v[k])])) : v);
  return JSON.stringify(canonical(a)) === JSON.stringify(canonical(b));
}

/** A unified diff of the YAML of both documents: `-` lines are removed, `+` lines added. */
export function configDiff(before: ConfigDoc, after: ConfigDoc, labels: { before: string; after: string }, style: Style): string[] {
  const patch = structuredPatch(labels.before, labels.after, configYaml(before), configYaml(after), '', '', { context: 3 });
  const lines = [style.bold(`--- ${labels.before}`), style.bold(`+++ ${labels.after}`)];
  for (const h of patch.hunks) {
    lines.push(style.cyan(`@@ -${h.oldStart},${h.oldLines} +${h.newStart},${h.newLines} @@`));
    for (const l of h.lines) lines.push(l.startsWith('+') ? style.green(l) : l.startsWith('-') ? style.red(l) : l);
  }
  return lines;
}

/** Nodes the config names that the cluster does not know: a likely typo, said but not refused (a node may be away). */
export function unknownConfigNodes(config: ClusterConfig, known: readonly string[]): string[] {
  return Object.keys(config.nodes).filter((n) => !known.includes(n));
}
