import { readFileSync } from 'node:fs';

// package.json is one level above both src/ and dist/.
const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { name: string; version: string };

export const NAME = pkg.name;
export const VERSION = pkg.version;
