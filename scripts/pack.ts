/**
 * Packs `primacy` and `primacy-agent` as installable npm tarballs: each program bundled with esbuild
 * into one folder (its workspace packages and npm dependencies included), so that `npm install -g`
 * of the tarball needs neither the registry nor the workspace. etcd3 reads its .proto files beside
 * its own code at run time; they are shipped where it looks for them.
 *
 *   node --import tsx scripts/pack.ts [--out DIR]      (default: build/)
 */
import { cpSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative, resolve } from 'node:path';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { build } from 'esbuild';

const repoRoot = fileURLToPath(new URL('../', import.meta.url));

interface Program {
  /** The workspace package, whose name and version the tarball keeps. */
  readonly dir: string;
  readonly bin: string;
  readonly description: string;
}

const PROGRAMS: readonly Program[] = [
  { dir: 'packages/cli', bin: 'primacy', description: 'primacy: reads and steers a Primacy cluster through etcd' },
  { dir: 'packages/agent', bin: 'primacy-agent', description: 'primacy-agent: the failover agent beside each MySQL or MariaDB server' },
];

// CommonJS dependencies inside an ES module bundle still call require and read __dirname.
const BANNER = [
  "import { createRequire as __primacyRequire } from 'node:module';",
  "import { fileURLToPath as __primacyPath } from 'node:url';",
  "import { dirname as __primacyDirname } from 'node:path';",
  'const require = __primacyRequire(import.meta.url);',
  'const __filename = __primacyPath(import.meta.url);',
  'const __dirname = __primacyDirname(__filename);',
].join('\n');

function fail(line: string): never {
  process.stderr.write(`pack: ${line}\n`);
  process.exit(2);
}

async function packProgram(program: Program, outDir: string): Promise<string> {
  const source = join(repoRoot, program.dir);
  const pkg = JSON.parse(readFileSync(join(source, 'package.json'), 'utf8')) as { name: string; version: string };
  const stage = join(outDir, 'stage', program.bin);
  rmSync(stage, { recursive: true, force: true });
  // Laid out like the workspace package: dist/main.js reads ../package.json for its version.
  await build({
    entryPoints: { main: join(source, 'src/main.ts') },
    outdir: join(stage, 'dist'),
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    conditions: ['@primacy/source'],
    banner: { js: BANNER },
    logLevel: 'warning',
    logOverride: { 'empty-import-meta': 'silent' },
  });
  const etcd3 = dirname(createRequire(join(source, 'package.json')).resolve('etcd3/package.json'));
  cpSync(join(etcd3, 'proto'), join(stage, 'proto'), { recursive: true });
  writeFileSync(
    join(stage, 'package.json'),
    `${JSON.stringify(
      {
        name: pkg.name,
        version: pkg.version,
        description: program.description,
        type: 'module',
        private: true,
        license: 'UNLICENSED',
        engines: { node: '>=20' },
        bin: { [program.bin]: './dist/main.js' },
      },
      null,
      2,
    )}\n`,
  );
  const name = execFileSync('npm', ['pack', '--silent', '--pack-destination', outDir, stage], { encoding: 'utf8' }).trim().split('\n').pop();
  if (!name) fail(`npm pack printed no file name for ${program.bin}`);
  return join(outDir, name);
}

async function main(): Promise<void> {
  let out: string;
  try {
    const { values } = parseArgs({ options: { out: { type: 'string' } }, strict: true });
    out = resolve(values.out ?? join(repoRoot, 'build'));
  } catch (err) {
    fail(`${err instanceof Error ? err.message : String(err)}; usage: node --import tsx scripts/pack.ts [--out DIR]`);
  }
  mkdirSync(out, { recursive: true });
  for (const program of PROGRAMS) {
    const tarball = await packProgram(program, out);
    const shown = relative(process.cwd(), tarball);
    // `./` keeps npm from reading build/x.tgz as a GitHub repository.
    process.stdout.write(`${shown.startsWith('..') ? tarball : `./${shown}`}\n`);
  }
  rmSync(join(out, 'stage'), { recursive: true, force: true });
}

await main();
