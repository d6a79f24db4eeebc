#!/usr/bin/env node
// In a source checkout (src/ present, tsx installed) run the TypeScript
// directly, so the CLI is never a stale build; an installed package or
// image runs the compiled dist/ (made by `npm run build`).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const source = new URL('../src/cli/main.ts', import.meta.url);
let useSource = existsSync(fileURLToPath(source));
if (useSource) {
  try {
    const { register } = await import('tsx/esm/api');
    register();
  } catch {
    useSource = false;
  }
}
await import(useSource ? source.href : new URL('../dist/cli/main.js', import.meta.url).href);
