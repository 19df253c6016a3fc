/**
 * The thin shell of `show-config`, `edit-config` and `maintenance`: read the config key, hand it to
 * the pure functions of config-edit.ts, ask, and write with a compare on the key's mod revision.
 */
import { readFile } from 'node:fs/promises';
import { encodeValue } from '@primacy/common';
import type { Assignment } from './config-edit.js';
import { applyAssignments, checkConfig, configDiff, configYaml, parseConfigText, sameConfig, unknownConfigNodes, type ConfigDoc } from './config-edit.js';
import { knownNodes } from './cluster.js';
import { confirmAtTerminal, confirmationOf } from './confirm.js';
import { editText } from './editor.js';
import type { ClusterClient } from './etcd.js';
import { CliError, ExitCode, refused, unknownNode } from './errors.js';
import { styleFor, writeLines, type Io } from './io.js';
import { inMaintenance } from './status.js';

/** The stored fields; null when the value is not a JSON object (then `raw` is all there is). */
function storedDoc(raw: string | null): ConfigDoc | null {
  if (raw === null) return {};
  try {
    const v: unknown = JSON.parse(raw);
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as ConfigDoc) : null;
  } catch {
    return null;
  }
}

export async function showConfig(client: ClusterClient, asJson: boolean, io: Io): Promise<number> {
  const view = await client.readExisting();
  const { kv } = await client.readConfig();
  const doc = storedDoc(kv?.value ?? null);
  if (doc === null) {
    io.stdout.write(`${kv!.value}\n`);
  } else {
    io.stdout.write(asJson ? `${JSON.stringify(doc, null, 2)}\n` : configYaml(doc));
  }
  const problem = doc === null ? 'not a JSON object' : view.configProblem;
  if (problem !== null) io.stderr.write(`${styleFor(io).yellow(`warning: ${client.keys.config} fails its schema (${problem}): the coordinator starts no automatic failover and takes no request until it is fixed (primacy edit-config)`)}\n`);
  return ExitCode.OK;
}

const EDITOR_HEADER = (cluster: string, key: string) =>
  [
    `# The dynamic config of cluster ${cluster} (etcd key ${key}). Lines starting with # are ignored.`,
    '# Fields: paused, maxLagMs, antiFlapMs, durability (async, semi-sync, strict),',
    '#   nodes: { <node>: { priority, noPromote, maintenance } }.',
    '# Save and quit to see the diff; an unchanged file writes nothing.',
    '',
  ].join('\n');

export async function editConfig(client: ClusterClient, inv: { sets: readonly Assignment[]; file: string | null; yes: boolean }, io: Io): Promise<number> {
  const confirmation = confirmationOf('edit-config', inv.yes, io.stdin?.isTTY === true);
  const view = await client.readExisting();
  const cluster = client.target.cluster;
  const { kv } = await client.readConfig();
  const stored = storedDoc(kv?.value ?? null);
  if (stored === null) io.stderr.write(`warning: ${client.keys.config} is not a JSON object; editing from an empty config\n`);
  const before = stored ?? {};
  let from: string;
  let edited: ConfigDoc;
  if (inv.file !== null) {
    from = inv.file;
    edited = applyAssignments(parseConfigText(await readConfigFile(inv.file), inv.file), inv.sets);
  } else if (inv.sets.length > 0) {
    from = '--set';
    edited = applyAssignments(before, inv.sets);
  } else {
    from = 'the edited config';
    // An empty config is an empty document, not `{}`, so that fields can be typed below the header.
    const text = Object.keys(before).length === 0 ? '' : configYaml(before);
    edited = parseConfigText(await editText(`${EDITOR_HEADER(cluster, client.keys.config)}${text}`, io.env), from);
  }
  if (stored !== null && sameConfig(before, edited)) {
    io.stdout.write(`no change to the config of ${cluster}; nothing was written\n`);
    return ExitCode.OK;
  }
  const config = checkConfig(edited, before, from);
  const style = styleFor(io);
  const known = knownNodes(view);
  for (const n of unknownConfigNodes(config, known)) {
    io.stderr.write(`${style.yellow(`warning: nodes.${n}: ${cluster} has no node ${n} (its nodes are ${known.join(', ') || 'none'}); kept, in case it is yet to come`)}\n`);
  }
  const revision = kv ? `mod revision ${kv.modRevision}` : 'no key yet';
  writeLines(io.stdout, configDiff(before, edited, { before: `config of ${cluster} (${revision})`, after: `config of ${cluster}, edited` }, style));
  if (confirmation === 'ask') await confirmAtTerminal(io, `Write this config of ${cluster}?`);
  const written = await client.writeConfig(encodeValue(edited), kv ? kv.modRevision : '0');
  if (written === null) {
    throw refused(`the config of ${cluster} changed since it was read (${revision}); nothing was written: run primacy edit-config again to see the change`);
  }
  io.stdout.write(`wrote the config of ${cluster} (etcd revision ${written})\n`);
  return ExitCode.OK;
}

async function readConfigFile(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code;
    throw new CliError(ExitCode.USAGE, `cannot read --file ${path}: ${code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : code === 'EISDIR' ? 'it is a directory' : String(cause)}`, { cause });
  }
}

export async function maintenance(client: ClusterClient, node: string | null, on: boolean | null, io: Io): Promise<number> {
  const view = await client.readExisting();
  const cluster = client.target.cluster;
  const listed = inMaintenance(view.config);
  if (node === null || on === null) {
    io.stdout.write(listed.length === 0 ? `no node of ${cluster} is in maintenance\n` : `in maintenance in ${cluster}: ${listed.join(', ')}\n`);
    return ExitCode.OK;
  }
  const known = [...new Set([...knownNodes(view), ...Object.keys(view.config.nodes)])];
  if (!known.includes(node)) throw unknownNode(node, cluster, known);
  const result = await client.setMaintenance(node, on);
  const lines =
    result === 'unchanged'
      ? [`${node} of ${cluster} is ${on ? 'already' : 'not'} in maintenance`]
      : on
        ? [`${node} of ${cluster} is in maintenance: never a candidate for promotion, and its absence blocks no failover`]
        : [`${node} of ${cluster} is out of maintenance: a candidate again, and counted among the nodes that must answer`];
  if (on && view.primary?.node === node) lines.push(`note: ${node} is the primary; maintenance does not move it (primacy switchover does)`);
  writeLines(io.stdout, lines);
  return ExitCode.OK;
}
