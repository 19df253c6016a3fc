/**
 * `primacy edit-config` without --set or --file: the config in the operator's editor ($VISUAL, then
 * $EDITOR, then vi), on a file in a private temporary directory that is removed afterwards.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { refused } from './errors.js';
import type { Io } from './io.js';

export function editorOf(env: Io['env']): string {
  return env['VISUAL']?.trim() || env['EDITOR']?.trim() || 'vi';
}

/** Opens `text` in the editor and returns what was saved; an editor that fails writes nothing. */
export async function editText(text: string, env: Io['env']): Promise<string> {
  const editor = editorOf(env);
  const dir = await mkdtemp(join(tmpdir(), 'primacy-config-'));
  const file = join(dir, 'config.yaml');
  try {
    await writeFile(file, text, { mode: 0o600 });
    // Through the shell, as git does, so that EDITOR may carry arguments ("code --wait").
    const status = await new Promise<number | string>((resolve) => {
      const child = spawn('/bin/sh', ['-c', `${editor} "$1"`, 'editor', file], { stdio: 'inherit', env: { ...process.env, ...env } });
      child.on('error', (err) => resolve(err.message));
      child.on('exit', (code, signal) => resolve(code ?? signal ?? 'unknown'));
    });
    if (status !== 0) throw refused(`the editor (${editor}) ${typeof status === 'number' ? `exited with status ${status}` : `failed: ${status}`}; nothing was written`);
    return await readFile(file, 'utf8');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
