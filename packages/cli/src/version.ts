/** The CLI's version, from its package.json, which sits one level above both src/ and dist/. */
import { createRequire } from 'node:module';

const pkg: unknown = createRequire(import.meta.url)('../package.json');

export const CLI_VERSION: string =
  typeof pkg === 'object' && pkg !== null && 'version' in pkg && typeof pkg.version === 'string' ? pkg.version : '0.0.0-unknown';
