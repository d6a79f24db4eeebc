// The storage model: builds ../shared/tools/slowio.c (beside the repo) into a
// temp dir at bench time, and reads the per-process counters it keeps.
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

export interface SlowIoCounters {
  misses: number;
  reads: number;
  willneed: number;
}

export interface SlowIo {
  dir: string;
  library: string;
  /** File holding the miss latency in microseconds (slowio re-reads it every 200 ms). */
  latencyFile: string;
  /** Environment that routes a process's reads through the model, counting into statsPrefix.<pid>. */
  env(statsPrefix: string): Record<string, string>;
  setLatency(us: number): void;
  /** IO cap of the modelled volume (0: none). */
  iops: number;
  /** Removes the volume's shared clock (/dev/shm). */
  removeVolume(): void;
}

/** Finds slowio.c: $SLOWIO_C, else relative to the repo root: ../shared/tools/slowio.c. */
export function findSlowIoSource(repoRoot: string): string {
  // SLOWIO_C names it elsewhere (e.g. from a git worktree one level deeper).
  const path = process.env.SLOWIO_C ?? process.env.SLOWIO_SOURCE ?? resolve(repoRoot, '..', 'shared', 'tools', 'slowio.c');
  if (!existsSync(path)) throw new Error(`slowio.c not found at ${path}: the storage model must sit beside the repo (../shared/tools/slowio.c)`);
  return path;
}

/**
 * Compiles the shim into a fresh temp dir readable by the server user. With
 * iops > 0 every process routed through it shares one volume capped at that
 * many IOs a second (a shared-memory clock of this run's own, removed by
 * removeVolume()).
 */
export function buildSlowIo(repoRoot: string, latencyUs: number, iops = 0): SlowIo {
  const source = findSlowIoSource(repoRoot);
  const dir = mkdtempSync(join(tmpdir(), 'pg-prefaulter-bench-slowio-'));
  chmodSync(dir, 0o755);
  const library = join(dir, 'slowio.so');
  try {
    execFileSync('cc', ['-O2', '-shared', '-fPIC', '-o', library, source, '-ldl', '-lpthread'], { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (e) {
    const err = e as { stderr?: Buffer };
    throw new Error(`building slowio.so from ${source} failed (is a C compiler installed as cc?): ${err.stderr?.toString() ?? String(e)}`);
  }
  chmodSync(library, 0o755);
  const latencyFile = join(dir, 'latency-us');
  // "LATENCY_US IOPS": slowio re-reads it every 200 ms; latency 0 turns the model (and the cap) off.
  const setLatency = (us: number): void => {
    writeFileSync(latencyFile, `${us} ${iops}\n`, { mode: 0o644 });
  };
  const volume = `/pg-prefaulter-bench-${process.pid}`;
  setLatency(latencyUs);
  return {
    dir,
    library,
    latencyFile,
    setLatency,
    // SLOWIO_FILE (not SLOWIO_US): only that mode also writes SLOWIO_STATS files.
    env: (statsPrefix) => ({ LD_PRELOAD: library, SLOWIO_FILE: latencyFile, SLOWIO_STATS: statsPrefix, SLOWIO_VOLUME: volume }),
    iops,
    removeVolume: () => rmSync(join('/dev/shm', volume), { force: true }),
  };
}

/** Per-pid counters written under statsPrefix (files statsPrefix.<pid>). */
export function readSlowIoStats(statsPrefix: string): Map<number, SlowIoCounters> {
  const dir = resolve(statsPrefix, '..');
  const base = statsPrefix.slice(dir.length + 1);
  const out = new Map<number, SlowIoCounters>();
  if (!existsSync(dir)) return out;
  for (const name of readdirSync(dir)) {
    if (!name.startsWith(`${base}.`)) continue;
    const pid = Number(name.slice(base.length + 1));
    if (!Number.isInteger(pid)) continue;
    const [misses = 0, reads = 0, willneed = 0] = readFileSync(join(dir, name), 'utf8').trim().split(/\s+/).map(Number);
    out.set(pid, { misses, reads, willneed });
  }
  return out;
}

export function sumCounters(stats: Iterable<SlowIoCounters>): SlowIoCounters {
  const total = { misses: 0, reads: 0, willneed: 0 };
  for (const s of stats) {
    total.misses += s.misses;
    total.reads += s.reads;
    total.willneed += s.willneed;
  }
  return total;
}
