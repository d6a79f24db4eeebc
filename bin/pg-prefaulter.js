#!/usr/bin/env node
// In a source checkout (src/ present, tsx installed) run the TypeScript
// directly, so the CLI is never a stale build; an installed package or
// image runs the compiled dist/ (made by `npm run build`).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

// libuv sizes its threadpool (which runs every pread) at first use, and
// loading the CLI already uses it: size it now to the io_concurrency given by
// flag or env (default 64). A config-file value larger than that makes `run`
// relaunch itself once with a bigger pool.
if (!process.env.UV_THREADPOOL_SIZE) {
  const i = process.argv.indexOf('--io-concurrency');
  const given = Number(i > 0 ? process.argv[i + 1] : process.env.PG_PREFAULTER_IO_CONCURRENCY);
  process.env.UV_THREADPOOL_SIZE = String(Number.isInteger(given) && given > 0 ? Math.min(1024, Math.max(4, given)) : 64);
}

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
