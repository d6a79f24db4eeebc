#!/usr/bin/env node
// In a source checkout (src/ present, tsx installed) run the TypeScript
// directly, so the CLI is never a stale build; an installed package or
// image runs the compiled dist/ (made by `npm run build`; PREFAULTER_USE_DIST=1
// runs it in a checkout too).
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

// With io_method = pread every read runs on libuv's threadpool, which is
// sized once, from UV_THREADPOOL_SIZE, when the process starts (the ES module
// loader already uses it, so setting the variable here is too late). For the
// commands that prefault, a process started without it runs itself again with
// the pool sized to io_concurrency (flag or env, default 64) and passes
// signals on. Hints (io_method willneed, auto's choice where koffi loads)
// need no pool, so no second process. A config file's io_method = "pread" is
// handled later, by `run` itself (src/prefault/threadpool.ts).
const command = process.argv[2];
if ((command === 'run' || command === 'demo') && !process.env.UV_THREADPOOL_SIZE && preadsNeedPool()) {
  const given = Number(flagValue('--io-concurrency') ?? process.env.PG_PREFAULTER_IO_CONCURRENCY);
  const size = Number.isInteger(given) && given > 0 ? Math.min(1024, Math.max(4, given)) : 64;
  const child = spawn(process.execPath, [...process.execArgv, ...process.argv.slice(1)], {
    stdio: 'inherit',
    env: { ...process.env, UV_THREADPOOL_SIZE: String(size) },
  });
  for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP']) process.on(signal, () => child.kill(signal));
  child.on('exit', (code, signal) => {
    process.exitCode = code ?? (signal === 'SIGKILL' ? 137 : 1);
  });
} else {
  // Loading the CLI (compiling it, from a checkout) takes a moment; as PID 1 a
  // SIGTERM without a handler meanwhile would be dropped (src/cli/early-stop.ts
  // takes over once main runs).
  const exitNow = () => process.exit(0);
  process.on('SIGTERM', exitNow);
  process.on('SIGINT', exitNow);
  const source = new URL('../src/cli/main.ts', import.meta.url);
  // PREFAULTER_USE_DIST=1: run the build even in a checkout (benchmarks time what the image runs).
  let useSource = process.env.PREFAULTER_USE_DIST !== '1' && existsSync(fileURLToPath(source));
  if (useSource) {
    try {
      const { register } = await import('tsx/esm/api');
      register();
    } catch {
      useSource = false;
    }
  }
  await import(useSource ? source.href : new URL('../dist/cli/main.js', import.meta.url).href);
  process.off('SIGTERM', exitNow);
  process.off('SIGINT', exitNow);
}

function preadsNeedPool() {
  const method = flagValue('--io-method') ?? (process.env.PG_PREFAULTER_IO_METHOD || 'auto');
  if (method === 'willneed') return false;
  if (method !== 'auto' || process.platform !== 'linux') return true;
  try {
    createRequire(import.meta.url)('koffi');
    return false;
  } catch {
    return true;
  }
}

/** The value of `--name value` or `--name=value` (the last one wins, as in the config loader). */
function flagValue(name) {
  let value;
  for (let i = 3; i < process.argv.length; i++) {
    const a = process.argv[i];
    if (a === name) value = process.argv[++i];
    else if (a.startsWith(name + '=')) value = a.slice(name.length + 1);
  }
  return value;
}
