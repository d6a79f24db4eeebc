// Command-line flags of the replay benchmark (npm run bench:replay -- ...).
import { parseArgs } from 'node:util';

export const ALL_VARIANTS = ['cached', 'cold', 'builtin', 'builtin-tuned', 'prefaulter', 'prefaulter+builtin', 'prefaulter+builtin-tuned', 'prefaulter-pread', 'prefaulter-running'] as const;
/** Run when --variants is not given; prefaulter-pread is a diagnostic, prefaulter-running is for the crash modes only. */
export const DEFAULT_VARIANTS: readonly VariantName[] = ['cached', 'cold', 'builtin', 'builtin-tuned', 'prefaulter', 'prefaulter+builtin'];
export type VariantName = (typeof ALL_VARIANTS)[number];

export type BenchMode = 'restart' | 'live' | 'container' | 'crash' | 'crash-standby';
export const ALL_MODES: readonly BenchMode[] = ['restart', 'live', 'container', 'crash', 'crash-standby'];

export interface BenchOptions {
  /** restart: the burst waits while the standby is stopped; live: while its replay is paused. */
  modes: BenchMode[];
  versions: number[];
  sizeMb: number;
  updates: number;
  reps: number;
  latencyUs: number;
  /** slowio's IOPS cap on the modelled volume, shared by every process (0: none). */
  iops: number;
  fpw: boolean;
  seed: number;
  variants: VariantName[];
  standbySharedBuffers: string;
  /** Updates per committed transaction in the burst. */
  perCommit: number;
  /** Extra arguments passed to `pg-prefaulter run` (repeatable --agent-arg). */
  agentArgs: string[];
  /** node flags for the agent process only (e.g. --cpu-prof for profiling). */
  agentNodeArgs: string[];
  /** Give up on one replay after this many seconds. */
  timeoutS: number;
  /** Container mode (bench/replay-container.ts): the follower's and the agents' memory limits, and the bursts. */
  followerLimitMb: number;
  agentLimitsMb: number[];
  distributions: ('uniform' | 'zipfian')[];
  /** Crash modes, variant prefaulter-running: from the kill to PostgreSQL's start. */
  restartGapMs: number;
}

export const USAGE = `npm run bench:replay -- [options]

Times a PostgreSQL standby's replay of a fixed random-update burst, with a
cold page cache behind a slow storage model (slowio), for each variant:
  cached              page cache warm (the limit)
  cold                recovery_prefetch=off, no sidecar
  builtin             recovery_prefetch=on, maintenance_io_concurrency=10 (PG 15+)
  builtin-tuned       recovery_prefetch=on, maintenance_io_concurrency=200 (PG 15+)
  prefaulter          pg-prefaulter run (default config), recovery_prefetch=off
  prefaulter+builtin  pg-prefaulter run and recovery_prefetch=on (PG 15+)
  prefaulter+builtin-tuned  not run by default: pg-prefaulter run and
                      recovery_prefetch=on, maintenance_io_concurrency=200
                      (PG 15+; the built-in prefetcher covers replay until
                      the sidecar's first hint)
  prefaulter-pread    diagnostic, not run by default: prefaulter with
                      io_method=pread (reads on libuv's threadpool, the
                      method before posix_fadvise hints)
  prefaulter-running  crash modes only, not run by default: the sidecar was
                      already running when PostgreSQL was killed (a container
                      restart in the same pod, Patroni restarting PostgreSQL,
                      the postmaster's own crash recovery after a backend
                      died); it is frozen (SIGSTOP) from before the kill
                      until the eviction is done, then PostgreSQL starts
                      --restart-gap-ms later

Modes (--mode):
  restart   (default) the burst is written while the standby is stopped (after a
            restartpoint); the timer starts when the standby starts. The sidecar
            is started first and must find PostgreSQL and catch up: a follower
            restart, e.g. after maintenance or a crash.
  live      standby and sidecar run and are caught up; the standby is restarted
            (empty shared_buffers) before the run, then replay is paused and the
            sidecar frozen (SIGSTOP) while the burst is written; the timer starts
            when both resume together: a lagging follower in steady state.
  crash     a pod restart of a primary: CHECKPOINT, the burst, SIGKILL to
            every PostgreSQL process; then PostgreSQL and the sidecar start
            at the same instant; timed until postmaster.pid says "ready"
            (crash recovery done, connections accepted).
  crash-standby  the same for the standby: at a restartpoint, the burst
            replayed, SIGKILL; both started together; timed until replay
            passes the burst's end again (connections are refused until
            replay reaches minRecoveryPoint).

Options:
  --mode restart,live   one or more of restart, live, crash, crash-standby,
                        on the same data set (default live:
                        replay paused during the burst, then resumed)
  --pg 15,17            PostgreSQL major versions (default 17)
  --size-mb N           table size on disk (default 2048)
  --updates N           updates in the burst (default 20000)
  --per-commit N        updates per transaction (default 10)
  --reps N              repetitions of every variant (default 3)
  --latency-us N        slowio miss latency in microseconds (default 1000)
  --iops N              cap the modelled volume at N IOs a second, shared by
                        every process (default 0: no cap); reports the limit
                        max(all cached, pages / N)
  --fpw on|off          full_page_writes on the primary (default off)
  --seed N              seed of the burst's random ids (default 42)
  --variants a,b        variants to run (default all but prefaulter-pread)
  --shared-buffers S    standby shared_buffers (default 128MB)
  --agent-arg ARG       extra argument for pg-prefaulter run (repeatable)
  --agent-node-args=S   node flags for the agent only, e.g. "--agent-node-args=--cpu-prof --cpu-prof-dir=/tmp/prof"
  --timeout-s N         abort one replay after N seconds (default 900)
  --restart-gap-ms N    crash modes: from the sidecar's thaw (prefaulter-running,
                        after the kill and the eviction) or its start
                        (prefaulter: a pod whose sidecar is up while Patroni
                        boots) to PostgreSQL's start (default 0: together)

Container mode (--mode container, bench/replay-container.ts): the follower
in one memory cgroup, the agent in another (root; cgroup v1 memory or v2),
live-mode timing, variants none (cold) / builtin / builtin-tuned / prefaulter
(once per agent limit); use with --fpw on:
  --follower-limit-mb N   the follower's memory cgroup limit (default 48)
  --agent-limits-mb a,b   the agent's limits, one prefaulter variant each (default 64,1024)
  --distributions a,b     uniform and/or zipfian bursts (default uniform,zipfian)
Each agent run reports its peak anonymous memory and whether its cgroup
OOM-killed it. Environment:
  PREFAULTER_BENCH_TRACE=1          write <run>-trace.tsv: replay's position and
                                    the agent's every 100 ms
  PREFAULTER_BENCH_AGENT_NODE=PATH  the node binary the agent runs on, in
                                    every mode (e.g. the image's Node.js 26)
`;

function positiveInt(name: string, text: string | undefined, fallback: number): number {
  if (text === undefined) return fallback;
  const n = Number(text);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`--${name} must be a positive integer, got "${text}"`);
  return n;
}

/** Parses argv (without node and script); throws with a message naming the bad flag. */
export function parseBenchArgs(argv: string[]): BenchOptions | 'help' {
  const { values } = parseArgs({
    args: argv,
    options: {
      mode: { type: 'string' },
      pg: { type: 'string' },
      'size-mb': { type: 'string' },
      updates: { type: 'string' },
      'per-commit': { type: 'string' },
      reps: { type: 'string' },
      'latency-us': { type: 'string' },
      iops: { type: 'string' },
      fpw: { type: 'string' },
      seed: { type: 'string' },
      variants: { type: 'string' },
      'shared-buffers': { type: 'string' },
      'agent-arg': { type: 'string', multiple: true },
      'agent-node-args': { type: 'string' },
      'timeout-s': { type: 'string' },
      'follower-limit-mb': { type: 'string' },
      'agent-limits-mb': { type: 'string' },
      distributions: { type: 'string' },
      'restart-gap-ms': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.help) return 'help';
  const versions = (values.pg ?? '17').split(/[\s,]+/).filter(Boolean).map(Number);
  for (const v of versions) {
    if (!Number.isInteger(v) || v < 13 || v > 18) throw new Error(`--pg names ${v}: use major versions 13..18, e.g. --pg 15,17`);
  }
  const fpw = values.fpw ?? 'off';
  if (fpw !== 'on' && fpw !== 'off') throw new Error(`--fpw must be on or off, got "${fpw}"`);
  const modes = (values.mode ?? 'live').split(',').filter(Boolean);
  for (const m of modes) if (!(ALL_MODES as readonly string[]).includes(m)) throw new Error(`--mode takes ${ALL_MODES.join(', ')} (comma-separated); got "${m}"`);
  const distributions = (values.distributions ?? 'uniform,zipfian').split(',').filter(Boolean);
  for (const d of distributions) if (d !== 'uniform' && d !== 'zipfian') throw new Error(`--distributions names "${d}": use uniform, zipfian or both`);
  const variants = (values.variants ?? DEFAULT_VARIANTS.join(',')).split(',').filter(Boolean);
  for (const v of variants) {
    if (!(ALL_VARIANTS as readonly string[]).includes(v)) throw new Error(`--variants names "${v}": choose from ${ALL_VARIANTS.join(', ')}`);
  }
  if (variants.includes('prefaulter-running') && modes.some((m) => m !== 'crash' && m !== 'crash-standby')) {
    throw new Error('--variants prefaulter-running applies to --mode crash and crash-standby only (the sidecar running across the kill)');
  }
  return {
    modes: modes as BenchMode[],
    versions,
    sizeMb: positiveInt('size-mb', values['size-mb'], 2048),
    updates: positiveInt('updates', values.updates, 20000),
    perCommit: positiveInt('per-commit', values['per-commit'], 10),
    reps: positiveInt('reps', values.reps, 3),
    latencyUs: values['latency-us'] === '0' ? 0 : positiveInt('latency-us', values['latency-us'], 1000),
    iops: values.iops === undefined || values.iops === '0' ? 0 : positiveInt('iops', values.iops, 0),
    fpw: fpw === 'on',
    seed: positiveInt('seed', values.seed, 42),
    variants: variants as VariantName[],
    standbySharedBuffers: values['shared-buffers'] ?? '128MB',
    agentArgs: values['agent-arg'] ?? [],
    agentNodeArgs: (values['agent-node-args'] ?? '').split(/\s+/).filter(Boolean),
    timeoutS: positiveInt('timeout-s', values['timeout-s'], 900),
    followerLimitMb: positiveInt('follower-limit-mb', values['follower-limit-mb'], 48),
    agentLimitsMb: (values['agent-limits-mb'] ?? '64,1024').split(',').filter(Boolean).map((x) => positiveInt('agent-limits-mb', x, 0)),
    distributions: distributions as BenchOptions['distributions'],
    restartGapMs: values['restart-gap-ms'] === '0' ? 0 : positiveInt('restart-gap-ms', values['restart-gap-ms'], 0),
  };
}
