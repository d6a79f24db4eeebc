// Crash modes of the replay benchmark, in the shape of a pod restart:
// - crash: the primary takes a CHECKPOINT, writes the burst, and every one of
//   its processes is killed with SIGKILL; then PostgreSQL and the sidecar are
//   started at the same instant and the timer runs until the postmaster
//   reports "ready" in postmaster.pid (accepts connections): crash recovery.
// - crash-standby: the standby, at a restartpoint, replays the burst (buffers
//   it evicts move minRecoveryPoint forward) and is killed with SIGKILL; then
//   PostgreSQL and the sidecar start together and the timer runs until replay
//   passes the burst's end again (the burst is in its pg_wal). It refuses
//   connections until replay reaches minRecoveryPoint (consistency).
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, sleep, type PgServer } from '../test/harness/index.ts';
import { findStartupProcess } from '../src/follower/startup-process.ts';
import { readPostmasterPid } from '../src/follower/postmaster-pid.ts';
import { readControlFile } from '../src/follower/control-file.ts';
import { formatLsn } from '../src/lsn.ts';
import { metricSum, processTree, sampleProc, schedStat, startAgent, type RunningAgent } from './replay-agent.ts';
import type { VariantName } from './replay-args.ts';
import { evict, relationFiles, residency, warm } from './replay-cache.ts';
import { replayReached, runBurst, type LoadedTable, type ModeContext } from './replay-cluster.ts';
import type { AgentFigures, RunResult } from './replay-report.ts';
import { readSlowIoStats, sumCounters } from './replay-slowio.ts';

export interface CrashSpec {
  prefetch: 'on' | 'off';
  ioConcurrency: number;
  agent: boolean;
  warmCache: boolean;
  agentEnv?: Record<string, string>;
  /** The sidecar already runs when PostgreSQL is killed (prefaulter-running), PostgreSQL starts opts.restartGapMs later. */
  running?: boolean;
}

export interface CrashContext extends ModeContext {
  mode: 'crash' | 'crash-standby';
}

const SEG = 16 * 1024 * 1024;

/** SIGKILL the postmaster and all its children at once, as a pod kill does, and wait until all are gone. */
async function killAll(server: PgServer): Promise<void> {
  const pm = server.pid;
  if (pm === undefined) throw new Error(`${server.name} is not running`);
  const pids = processTree(pm);
  for (const p of pids) {
    try {
      process.kill(p, 'SIGKILL');
    } catch {
      // gone already
    }
  }
  const deadline = Date.now() + 30_000;
  while (server.running || pids.some((p) => alive(p))) {
    if (Date.now() > deadline) throw new Error(`${server.name}: processes ${pids.join(', ')} still alive 30 s after SIGKILL`);
    await sleep(10);
  }
}

function alive(pid: number): boolean {
  try {
    // A zombie is gone for our purpose (its shared memory attachment is released).
    return !/\) Z /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

function prepareCache(server: PgServer, table: LoadedTable, warmCache: boolean): number {
  const files = relationFiles(server.dataDir);
  if (warmCache) warm(files);
  else evict(files);
  const tableFiles = files.filter((f) => table.relationPaths.some((p) => f === join(server.dataDir, p) || f.startsWith(`${join(server.dataDir, p)}.`)));
  const res = residency(tableFiles);
  return res.totalBytes ? res.residentBytes / res.totalBytes : 0;
}

/** One crash-and-restart, timed. */
export async function runCrash(ctx: CrashContext, variant: VariantName, spec: CrashSpec, rep: number): Promise<RunResult> {
  const { cluster, opts, table } = ctx;
  const { primary, standby } = cluster;
  const target = ctx.mode === 'crash' ? primary : standby;
  const tag = `pg${cluster.version}-${ctx.mode}-${variant}-${rep}`;

  // Where recovery will start: a checkpoint (primary) or restartpoint (standby) just before the burst.
  await primary.exec('checkpoint');
  if (ctx.mode === 'crash-standby') {
    if (!standby.running) await standby.start();
    await standby.waitForReplay(await primary.currentLsn(), 600_000);
    await standby.exec('checkpoint');
  } else if (standby.running) {
    await standby.stop('fast'); // not replaying the burst in parallel: the machine has 2 cores
  }
  const burst = await runBurst(primary, table.rows, opts);
  if (ctx.mode === 'crash-standby') await standby.waitForReplay(burst.endLsn, 600_000);
  const statsPrefix = join(ctx.statsDir, `${tag}-server`);
  const agentStats = join(ctx.statsDir, `${tag}-agent`);
  let agent: RunningAgent | null = null;
  // prefaulter-running: the sidecar is up and attached (primary_idle / streaming) before the kill.
  const newAgent = async (): Promise<RunningAgent> =>
    startAgent({
      repoRoot: ctx.repoRoot,
      standby: target,
      metricsPort: await freePort(),
      env: { ...ctx.slowio.env(agentStats), ...(spec.agentEnv ?? {}) },
      nodeArgs: opts.agentNodeArgs,
      logFile: join(ctx.logDir, `${tag}-agent.log`),
      extraArgs: opts.agentArgs,
      execPath: process.env.PREFAULTER_BENCH_AGENT_NODE || undefined,
    });
  if (spec.agent && spec.running) {
    agent = await newAgent();
    await waitForState(agent, ctx.mode === 'crash' ? 'primary_idle' : 'streaming', 60_000);
  }
  const issuedAtKill = agent ? ((await agent.prefaultsIssued()) ?? 0) : 0;
  // Frozen across the kill and the eviction below, so that what it hints after the crash is not evicted again.
  agent?.signalTree('SIGSTOP');
  const killedAt = performance.now();
  await killAll(target);
  const control = await readControlFile(target.dataDir);
  ctx.log(`${tag}: killed; pg_control: ${control.state}, redo ${formatLsn(control.checkPointCopy.redo)}, minRecoveryPoint ${formatLsn(control.minRecoveryPoint)}, burst ${burst.startLsn}..${burst.endLsn}`);

  const settings: Record<string, string | number> = { maintenance_io_concurrency: spec.ioConcurrency };
  if (cluster.version >= 15) settings.recovery_prefetch = spec.prefetch;
  target.configure(settings);
  target.env = ctx.slowio.env(statsPrefix);
  const residentFraction = prepareCache(target, table, spec.warmCache);
  let issuedAtStart: number | null = null;
  // A fresh sidecar with a gap starts that long before PostgreSQL: a pod whose sidecar is up
  // while Patroni boots and starts PostgreSQL. Without a gap both start at the same instant.
  if (spec.agent && !agent && opts.restartGapMs > 0) agent = await newAgent();
  else agent?.signalTree('SIGCONT');
  if (agent) {
    const startAt = performance.now() + opts.restartGapMs;
    while (performance.now() < startAt) await sleep(Math.min(10, startAt - performance.now()));
    issuedAtStart = (await agent.prefaultsIssued()) ?? 0;
    if (!spec.running) ctx.log(`${tag}: the sidecar started ${opts.restartGapMs} ms before PostgreSQL; ${issuedAtStart} prefaults issued by PostgreSQL's start (as /metrics tells: 0 while its start-up settles)`);
  }

  const logFrom = logSize(target.logFile);
  const t0 = performance.now();
  try {
    if (spec.agent && !agent) agent = await newAgent();
    const starting = target.start(opts.timeoutS * 1000);
    starting.catch(() => {});
    // Poll the same signals the agent can see: postmaster.pid's status and the startup process.
    let startupPid: number | null = null;
    // The startup process's CPU and run-queue wait as last read (it exits at the end of a crash
    // recovery): does replay wait on storage, or on a CPU the sidecar holds?
    let replaySched: { cpuSeconds: number; runqueueWaitSeconds: number } | null = null;
    let readyS: number | null = null;
    let firstPrefaultS: number | null = null;
    const pollFirstPrefault = spec.running || opts.restartGapMs > 0;
    const deadline = Date.now() + opts.timeoutS * 1000;
    for (;;) {
      if (Date.now() > deadline) throw new Error(`${tag}: not done within ${opts.timeoutS} s\n${target.logTail()}`);
      const lookup = await findStartupProcess(target.dataDir, { segmentSize: SEG });
      if (lookup.kind === 'startup') {
        startupPid = lookup.pid;
        replaySched = schedStat(lookup.pid) ?? replaySched;
      }
      // A sidecar started with PostgreSQL reports its own first hint afterwards (firstHintSinceStart):
      // polling its endpoint meanwhile is a fetch every 10 ms beside replay in the agent's variants
      // only (perf sched counted ~20 ms of the harness on replay's CPU in one run; builtin's: ~4).
      if (agent && pollFirstPrefault && firstPrefaultS === null && ((await agent.prefaultsIssued()) ?? 0) > (issuedAtStart ?? 0)) firstPrefaultS = (performance.now() - t0) / 1000;
      // The killed postmaster's postmaster.pid still says "ready": wait for the new one's.
      const pm = await readPostmasterPid(target.dataDir);
      if (readyS === null && pm !== null && pm.pid === target.pid && pm.status === 'ready') readyS = (performance.now() - t0) / 1000;
      if (readyS !== null && ctx.mode === 'crash') break;
      if (readyS !== null && (await replayReachedAfterResume(target, burst.endLsn))) break;
      await sleep(10);
    }
    const seconds = (performance.now() - t0) / 1000;
    await starting;
    // Started with PostgreSQL: its own first-hint time (ms since its process started, a
    // millisecond after t0); /status is only served once start-up settled, after the hints.
    if (agent && !spec.running && opts.restartGapMs === 0) firstPrefaultS = (await firstHintSinceStart(agent)) ?? firstPrefaultS;
    const figures = agent ? await agentFigures(agent, firstPrefaultS, agentStats) : null;
    agent = null;
    const perPid = readSlowIoStats(statsPrefix);
    const counters = (startupPid !== null ? perPid.get(startupPid) : undefined) ?? sumCounters(perPid.values());
    if (issuedAtStart !== null && spec.running) ctx.log(`${tag}: the running sidecar (frozen from the kill to the eviction, ${((t0 - killedAt) / 1000).toFixed(2)} s) had issued ${issuedAtKill} prefaults at the kill, ${issuedAtStart} at PostgreSQL's start (its recovery prefaulter counts from 0)`);
    // Replay alone, as PostgreSQL logs it ("redo done ... elapsed"): without the start-up and the end-of-recovery checkpoint's writes.
    const redo = redoElapsed(target.logFile, logFrom);
    ctx.log(`${tag}: ${seconds.toFixed(2)} s (accepting connections at ${readyS?.toFixed(2)} s; redo ${redo ?? '?'} s; burst ${(burst.walBytes / 1048576).toFixed(1)} MB WAL; resident ${(residentFraction * 100).toFixed(1)}%; replay misses ${counters.misses}, willneed ${counters.willneed}${figures ? `; agent first prefault ${figures.firstPrefaultS?.toFixed(2) ?? 'never'} s, prefaults ${figures.prefaultsIssued ?? 'n/a'}, misses ${figures.misses}, exit ${figures.exit}` : ''})`);
    if (replaySched) ctx.log(`${tag}: startup process CPU ${replaySched.cpuSeconds.toFixed(2)} s, run-queue wait ${replaySched.runqueueWaitSeconds.toFixed(2)} s (as last read, every ~10 ms)`);
    return { replayCpuS: replaySched?.cpuSeconds, replayRunqueueWaitS: replaySched?.runqueueWaitSeconds, variant, rep, seconds, startupSeconds: readyS ?? seconds, walBytes: burst.walBytes, residentFraction, standbyMisses: counters.misses, standbyWillneed: counters.willneed, agent: figures };
  } finally {
    if (agent) await agent.stop();
    // Back to a fast server for the next burst: without the storage model.
    target.env = {};
    if (target.running) await target.stop('fast');
    await target.start();
  }
}

/** Waits until the agent's /status reports the state (it attached to PostgreSQL). */
async function waitForState(agent: RunningAgent, state: string, timeoutMs: number): Promise<void> {
  const url = agent.metricsUrl.replace(/\/metrics$/, '/status');
  const deadline = Date.now() + timeoutMs;
  let seen = 'unreachable';
  while (Date.now() < deadline) {
    if (agent.exited() !== null) throw new Error(`pg-prefaulter exited (${agent.exited()}) before reaching ${state}; see ${agent.logFile}`);
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
      if (res.ok) seen = String(((await res.json()) as { state?: string }).state);
    } catch {
      // not serving yet
    }
    if (seen === state) return;
    await sleep(50);
  }
  throw new Error(`pg-prefaulter did not reach state ${state} within ${timeoutMs} ms (last: ${seen}); see ${agent.logFile}`);
}

// The burst is done once replay passes its end (SQL: after consistency).
async function replayReachedAfterResume(standby: PgServer, endLsn: string): Promise<boolean> {
  try {
    return await replayReached(standby, endLsn);
  } catch {
    return false; // not accepting connections yet
  }
}

function logSize(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}

/** The "elapsed" of the last "redo done" line PostgreSQL logged after offset `from` (seconds, as text), or null. */
function redoElapsed(path: string, from: number): string | null {
  try {
    const text = readFileSync(path).subarray(from).toString('utf8');
    const all = [...text.matchAll(/redo done at .*elapsed: ([0-9.]+) s/g)];
    return all.length ? all[all.length - 1]![1]! : null;
  } catch {
    return null;
  }
}

/** firstHintMs from the agent's /status, in seconds (null if unreachable or no hint yet). */
async function firstHintSinceStart(agent: RunningAgent): Promise<number | null> {
  try {
    const res = await fetch(agent.metricsUrl.replace(/\/metrics$/, '/status'), { signal: AbortSignal.timeout(5000) });
    const ms = res.ok ? ((await res.json()) as { firstHintMs?: number | null }).firstHintMs : null;
    return typeof ms === 'number' ? ms / 1000 : null;
  } catch {
    return null;
  }
}

// The sidecar's whole-life figures (it starts with PostgreSQL), then stop it.
async function agentFigures(agent: RunningAgent, firstPrefaultS: number | null, statsPrefix: string): Promise<AgentFigures> {
  const sample = sampleProc(agent.pid);
  const metrics = await agent.scrape();
  const died = agent.exited();
  const exit = died !== null ? `died early (${died})` : await agent.stop();
  const cpu = sample?.cpuSeconds ?? NaN;
  return {
    cpuSeconds: cpu,
    userSeconds: sample?.userSeconds,
    cpuSecondsTotal: cpu,
    peakRssBytes: sample?.peakRssBytes ?? 0,
    processes: sample?.processes ?? 0,
    threads: sample?.threads ?? 0,
    firstPrefaultS,
    readEndS: null,
    walBytesMetric: metrics === null ? null : metricSum(metrics, 'pg_prefaulter_wal_bytes_total'),
    records: metrics === null ? null : metricSum(metrics, 'pg_prefaulter_wal_records_total'),
    prefaultsIssued: metrics === null ? null : metricSum(metrics, 'pg_prefaulter_prefaults_issued_total'),
    misses: sumCounters(readSlowIoStats(statsPrefix).values()).misses,
    exit,
    threadCpu: sample?.perThread,
  };
}
