// Sizing libuv's threadpool, which runs every fs call (so caps concurrent
// preads). libuv reads UV_THREADPOOL_SIZE once, when the pool starts on the
// first threadpool job; under ESM the module loader already reads files
// through it before any of our code runs, so in practice the size must be in
// the environment when node starts: set it there, or relaunch.
import { createRequire } from 'node:module';

const LIBUV_DEFAULT_POOL = 4;
const LIBUV_MAX_POOL = 1024;
/** UV_THREADPOOL_SIZE when this module loaded: what libuv runs with (it had started by then). */
const startupPoolSetting = process.env.UV_THREADPOOL_SIZE;
const RELAUNCH_MARK = 'PG_PREFAULTER_THREADPOOL_RELAUNCHED';

export interface ThreadpoolSizing {
  requested: number;
  /** The pool size libuv runs with in this process. */
  effective: number;
  /** The requested size only takes effect in a new process started with UV_THREADPOOL_SIZE set. */
  needsRestart: boolean;
}

/**
 * Ask for a libuv threadpool of n threads (clamped to 1..1024): sets
 * process.env.UV_THREADPOOL_SIZE (children and a relaunch inherit it) and
 * reports whether this process already runs with n threads. The CLI calls it
 * first thing; when needsRestart it may relaunchWithThreadpool(). Raising
 * ioConcurrency at runtime beyond the pool size needs a restart to help.
 */
export function sizeThreadpool(n: number): ThreadpoolSizing {
  const requested = Math.min(LIBUV_MAX_POOL, Math.max(1, Math.floor(n)));
  const parsed = Number(startupPoolSetting);
  const effective =
    startupPoolSetting !== undefined && Number.isFinite(parsed) && parsed > 0 ? Math.min(LIBUV_MAX_POOL, Math.floor(parsed)) : LIBUV_DEFAULT_POOL;
  if (effective !== requested) process.env.UV_THREADPOOL_SIZE = String(requested);
  return { requested, effective, needsRestart: effective !== requested };
}

/**
 * Run this same command again in a child node process with the requested
 * UV_THREADPOOL_SIZE, forwarding SIGTERM/SIGINT/SIGHUP and stdio; resolves
 * with the child's exit code (the caller exits with it). Resolves null, doing
 * nothing, when no restart is needed or this process already is the relaunch.
 */
export function relaunchWithThreadpool(sizing: ThreadpoolSizing): Promise<number | null> {
  if (!sizing.needsRestart || process.env[RELAUNCH_MARK] === '1') return Promise.resolve(null);
  // Required here, not imported: node:child_process costs the agent's start ~4 ms and only io_method pread needs it.
  const { spawn } = createRequire(import.meta.url)('node:child_process') as typeof import('node:child_process');
  const child = spawn(process.execPath, [...process.execArgv, ...process.argv.slice(1)], {
    stdio: 'inherit',
    env: { ...process.env, UV_THREADPOOL_SIZE: String(sizing.requested), [RELAUNCH_MARK]: '1' },
  });
  const forward = (signal: NodeJS.Signals) => () => child.kill(signal);
  const handlers = (['SIGTERM', 'SIGINT', 'SIGHUP'] as const).map((s) => [s, forward(s)] as const);
  for (const [s, h] of handlers) process.on(s, h);
  return new Promise((resolve, reject) => {
    child.once('error', (e) => reject(new Error(`relaunching with UV_THREADPOOL_SIZE=${sizing.requested} failed: ${e.message}`)));
    child.once('exit', (code, signal) => {
      for (const [s, h] of handlers) process.off(s, h);
      resolve(code ?? (signal ? 128 + signalNumber(signal) : 1));
    });
  });
}

function signalNumber(signal: NodeJS.Signals): number {
  return signal === 'SIGTERM' ? 15 : signal === 'SIGINT' ? 2 : signal === 'SIGHUP' ? 1 : signal === 'SIGKILL' ? 9 : 0;
}
