// Replay benchmark: how long a PostgreSQL standby takes to replay the same
// random-update burst from a cold page cache on slow storage, with no
// prefetch, with PostgreSQL's own recovery_prefetch, and with pg-prefaulter.
// Run: npm run bench:replay -- --help
import { execFileSync } from 'node:child_process';
import { mkdirSync, chmodSync, writeFileSync, rmSync } from 'node:fs';
import { cpus, totalmem, release, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, sleep, type Cluster } from '../test/harness/index.ts';
import { ALL_VARIANTS, parseBenchArgs, USAGE, type BenchMode, type BenchOptions, type VariantName } from './replay-args.ts';
import { agentAvailable, agentStreaming, metricSum, sampleProc, schedStat, startAgent, threadCpuSince, userSystem, vmstat, type RunningAgent, type TreeSample } from './replay-agent.ts';
import { evict, relationFiles, residency, warm } from './replay-cache.ts';
import { createBenchCluster, flushSlowIoCounters, loadTable, parkStandby, replayReached, runBurst, type Burst, type LoadedTable } from './replay-cluster.ts';
import { agentTable, iopsLimit, replayTable, runsTable, summarize, targetsTable, type AgentFigures, type RunResult } from './replay-report.ts';
import { runContainerMode } from './replay-container.ts';
import { buildSlowIo, readSlowIoStats, sumCounters, type SlowIo } from './replay-slowio.ts';
import { runCrash } from './replay-crash.ts';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');

const log = (msg: string): void => {
  process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
};

interface VariantSpec {
  prefetch: 'on' | 'off';
  ioConcurrency: number;
  agent: boolean;
  warmCache: boolean;
  needsPrefetchGuc: boolean;
  /** Extra environment for the agent (diagnostic variants). */
  agentEnv?: Record<string, string>;
  /** Crash modes: the agent runs before the kill and across it. */
  running?: boolean;
}

const SPECS: Record<VariantName, VariantSpec> = {
  cached: { prefetch: 'off', ioConcurrency: 10, agent: false, warmCache: true, needsPrefetchGuc: false },
  cold: { prefetch: 'off', ioConcurrency: 10, agent: false, warmCache: false, needsPrefetchGuc: false },
  builtin: { prefetch: 'on', ioConcurrency: 10, agent: false, warmCache: false, needsPrefetchGuc: true },
  'builtin-tuned': { prefetch: 'on', ioConcurrency: 200, agent: false, warmCache: false, needsPrefetchGuc: true },
  prefaulter: { prefetch: 'off', ioConcurrency: 10, agent: true, warmCache: false, needsPrefetchGuc: false },
  'prefaulter+builtin': { prefetch: 'on', ioConcurrency: 10, agent: true, warmCache: false, needsPrefetchGuc: true },
  'prefaulter+builtin-tuned': { prefetch: 'on', ioConcurrency: 200, agent: true, warmCache: false, needsPrefetchGuc: true },
  'prefaulter-pread': { prefetch: 'off', ioConcurrency: 10, agent: true, warmCache: false, needsPrefetchGuc: false, agentEnv: { PG_PREFAULTER_IO_METHOD: 'pread' } },
  'prefaulter-running': { prefetch: 'off', ioConcurrency: 10, agent: true, warmCache: false, needsPrefetchGuc: false, running: true },
};

interface Context {
  opts: BenchOptions;
  mode: BenchMode;
  cluster: Cluster;
  table: LoadedTable;
  slowio: SlowIo;
  statsDir: string;
  logDir: string;
}

async function waitForAgentReady(agent: RunningAgent, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const state = agent.exited();
    if (state !== null) throw new Error(`pg-prefaulter run exited (${state}) before it served ${agent.metricsUrl}; see ${agent.logFile}`);
    if ((await agent.scrape()) !== null) return;
    await sleep(100);
  }
  throw new Error(`pg-prefaulter run did not serve ${agent.metricsUrl} within ${timeoutMs} ms; see ${agent.logFile}`);
}

interface AgentCounters {
  walBytes: number | null;
  records: number | null;
  issued: number | null;
}

function lsnBytes(lsn: string): number {
  const [hi = '0', lo = '0'] = lsn.split('/');
  return parseInt(hi, 16) * 2 ** 32 + parseInt(lo, 16);
}

function agentCounters(metrics: string): AgentCounters {
  return {
    walBytes: metricSum(metrics, 'pg_prefaulter_wal_bytes_total'),
    records: metricSum(metrics, 'pg_prefaulter_wal_records_total'),
    issued: metricSum(metrics, 'pg_prefaulter_prefaults_issued_total'),
  };
}

interface Prepared {
  tag: string;
  burst: Burst;
  residentFraction: number;
  standbyStats: string;
  agentStats: string;
  /** The agent's counters before the burst (live mode; a fresh agent starts at zero). */
  agentBefore?: AgentCounters;
}

// Variant settings, the slowio environment, and the page cache, for a
// standby that is stopped (restart mode) or about to be restarted (live).
function configureStandby(ctx: Context, variant: VariantName, rep: number): Pick<Prepared, 'tag' | 'standbyStats' | 'agentStats'> {
  const { cluster } = ctx;
  const spec = SPECS[variant];
  const settings: Record<string, string | number> = { maintenance_io_concurrency: spec.ioConcurrency };
  if (cluster.version >= 15) settings.recovery_prefetch = spec.prefetch;
  cluster.standby.configure(settings);
  const tag = `pg${cluster.version}-${ctx.mode}-${variant}-${rep}`;
  const standbyStats = join(ctx.statsDir, `${tag}-standby`);
  cluster.standby.env = ctx.slowio.env(standbyStats);
  return { tag, standbyStats, agentStats: join(ctx.statsDir, `${tag}-agent`) };
}

function prepareCache(ctx: Context, variant: VariantName): number {
  const { standby } = ctx.cluster;
  const files = relationFiles(standby.dataDir);
  if (SPECS[variant].warmCache) warm(files);
  else evict(files);
  const tableFiles = files.filter((f) => ctx.table.relationPaths.some((p) => f === join(standby.dataDir, p) || f.startsWith(`${join(standby.dataDir, p)}.`)));
  const res = residency(tableFiles);
  return res.totalBytes ? res.residentBytes / res.totalBytes : 0;
}

function launchAgent(ctx: Context, variant: VariantName, tag: string, agentStats: string, port: number): RunningAgent {
  return startAgent({
    repoRoot,
    standby: ctx.cluster.standby,
    metricsPort: port,
    env: { ...ctx.slowio.env(agentStats), ...(SPECS[variant].agentEnv ?? {}) },
    nodeArgs: ctx.opts.agentNodeArgs,
    execPath: process.env.PREFAULTER_BENCH_AGENT_NODE || undefined,
    logFile: join(ctx.logDir, `${tag}-agent.log`),
    extraArgs: ctx.opts.agentArgs,
  });
}

async function waitForAgentStreaming(agent: RunningAgent, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const state = agent.exited();
    if (state !== null) throw new Error(`pg-prefaulter run exited (${state}); see ${agent.logFile}`);
    const m = await agent.scrape();
    if (m !== null && agentStreaming(m)) return;
    await sleep(100);
  }
  throw new Error(`pg-prefaulter run did not report streaming within ${timeoutMs} ms; see ${agent.logFile}`);
}

/** Polls until replay passes endLsn; returns seconds since t0 and when the agent first prefaulted. */
async function timeReplay(ctx: Context, tag: string, endLsn: string, t0: number, agent: RunningAgent | null): Promise<{ seconds: number; firstPrefaultS: number | null }> {
  const { standby } = ctx.cluster;
  const deadline = Date.now() + ctx.opts.timeoutS * 1000;
  // When did the sidecar issue its first prefault of this burst?
  let issuedBefore: number | null = null;
  let firstPrefaultS: number | null = null;
  let lastScrape = 0;
  while (!(await replayReached(standby, endLsn))) {
    if (Date.now() > deadline) throw new Error(`${tag}: replay did not reach ${endLsn} within ${ctx.opts.timeoutS} s\n${standby.logTail()}`);
    if (agent && firstPrefaultS === null && performance.now() - lastScrape >= 25) {
      lastScrape = performance.now();
      // /status, not /metrics: a scrape also walks /proc/self/fd, which slowio's
      // queued WILLNEEDs (a dup'd fd each) make slow, and Prometheus scrapes every 15 s+, not every 25 ms.
      const issued = await agent.prefaultsIssued();
      if (issued !== null) {
        if (issuedBefore === null) issuedBefore = ctx.mode === 'live' ? issued : 0;
        if (issued > issuedBefore) firstPrefaultS = (performance.now() - t0) / 1000;
      }
    }
    await sleep(20);
  }
  return { seconds: (performance.now() - t0) / 1000, firstPrefaultS };
}

async function finish(
  ctx: Context,
  variant: VariantName,
  rep: number,
  prep: Prepared,
  timing: { seconds: number; startupSeconds: number; firstPrefaultS: number | null; t0: number },
  agent: RunningAgent | null,
  before: TreeSample | null,
): Promise<RunResult> {
  const after = agent ? sampleProc(agent.pid) : null;
  // Per thread group over the timed window (before: sampled when the timer started).
  const perThread = agent ? threadCpuSince(agent.pid, before?.perThread) : undefined;
  const metrics = agent ? await agent.scrape() : null;
  // How long the agent took to read the whole burst (it may trail a replay
  // that needed no reads): its own WAL throughput.
  let readEndS: number | null = null;
  if (agent) {
    const target = lsnBytes(prep.burst.endLsn);
    const deadline = Date.now() + 60_000;
    for (let m = metrics; Date.now() < deadline; m = await agent.scrape()) {
      const at = m === null ? null : metricSum(m, 'pg_prefaulter_stream_lsn_bytes');
      if (at !== null && at >= target) {
        readEndS = (performance.now() - timing.t0) / 1000;
        break;
      }
      await sleep(20);
    }
  }
  const startupPid = await flushSlowIoCounters(ctx.cluster, ctx.table.rows);
  let agentFigures: AgentFigures | null = null;
  if (agent) {
    const now = metrics === null ? null : agentCounters(metrics);
    const was = prep.agentBefore ?? { walBytes: 0, records: 0, issued: 0 };
    const delta = (k: keyof AgentCounters): number | null => (now === null || now[k] === null ? null : now[k]! - (was[k] ?? 0));
    if (metrics !== null) writeFileSync(join(ctx.logDir, `${prep.tag}-metrics.txt`), metrics);
    const exitedEarly = agent.exited();
    const exit = exitedEarly !== null ? `died early (${exitedEarly})` : await agent.stop();
    agentFigures = {
      cpuSeconds: after && before ? after.cpuSeconds - before.cpuSeconds : NaN,
      userSeconds: after && before ? after.userSeconds - before.userSeconds : undefined,
      cpuSecondsTotal: after?.cpuSeconds ?? NaN,
      peakRssBytes: after?.peakRssBytes ?? 0,
      processes: after?.processes ?? 0,
      threads: after?.threads ?? 0,
      firstPrefaultS: timing.firstPrefaultS,
      readEndS,
      walBytesMetric: delta('walBytes'),
      records: delta('records'),
      prefaultsIssued: delta('issued'),
      misses: sumCounters(readSlowIoStats(prep.agentStats).values()).misses,
      exit,
      threadCpu: perThread,
    };
  }
  const perPid = readSlowIoStats(prep.standbyStats);
  const standbyCounters = (startupPid !== null ? perPid.get(startupPid) : undefined) ?? sumCounters(perPid.values());
  const result: RunResult = {
    variant,
    rep,
    seconds: timing.seconds,
    startupSeconds: timing.startupSeconds,
    walBytes: prep.burst.walBytes,
    residentFraction: prep.residentFraction,
    standbyMisses: standbyCounters.misses,
    standbyWillneed: standbyCounters.willneed,
    agent: agentFigures,
  };
  const a = agentFigures;
  log(
    `${prep.tag}: ${timing.seconds.toFixed(2)} s (standby start ${timing.startupSeconds.toFixed(2)} s, burst ${(prep.burst.walBytes / 1048576).toFixed(1)} MB WAL, ` +
      `resident ${(prep.residentFraction * 100).toFixed(1)}%, replay misses ${standbyCounters.misses}, willneed ${standbyCounters.willneed}` +
      (a
        ? `, agent cpu ${a.cpuSeconds.toFixed(2)} s, first prefault at ${a.firstPrefaultS?.toFixed(2) ?? 'never'} s, burst read by ${a.readEndS?.toFixed(2) ?? 'never'} s, ${a.processes} proc/${a.threads} threads, ` +
          `rss ${(a.peakRssBytes / 1048576).toFixed(0)} MB, agent misses ${a.misses}, exit ${a.exit}; ` +
          `cpu by thread during replay ${Object.entries(a.threadCpu ?? {}).filter(([, c]) => c >= 0.005).map(([n, c]) => `${n} ${c.toFixed(2)} s`).join(', ')})`
        : ')'),
  );
  return result;
}

/** Restart mode: burst while the standby is stopped; time from its start. */
async function runRestart(ctx: Context, variant: VariantName, rep: number): Promise<RunResult> {
  const { cluster, opts, table } = ctx;
  await parkStandby(cluster);
  const burst = await runBurst(cluster.primary, table.rows, opts);
  const names = configureStandby(ctx, variant, rep);
  const residentFraction = prepareCache(ctx, variant);
  const prep: Prepared = { ...names, burst, residentFraction };
  let agent: RunningAgent | null = null;
  try {
    if (SPECS[variant].agent) {
      agent = launchAgent(ctx, variant, prep.tag, prep.agentStats, await freePort());
      await waitForAgentReady(agent, 60_000);
    }
    const before = agent ? sampleProc(agent.pid) : null;
    const t0 = performance.now();
    await cluster.standby.start();
    const startupSeconds = (performance.now() - t0) / 1000;
    const t = await timeReplay(ctx, prep.tag, burst.endLsn, t0, agent);
    const result = await finish(ctx, variant, rep, prep, { ...t, startupSeconds, t0 }, agent, before);
    agent = null;
    return result;
  } finally {
    if (agent) await agent.stop();
  }
}

/** Live mode: standby and sidecar caught up; burst while replay is paused and the sidecar frozen. */
async function runLive(ctx: Context, variant: VariantName, rep: number): Promise<RunResult> {
  const { cluster, opts, table } = ctx;
  const { primary, standby } = cluster;
  await parkStandby(cluster); // stopped: the restart empties shared_buffers
  const names = configureStandby(ctx, variant, rep);
  await standby.start();
  let agent: RunningAgent | null = null;
  try {
    let agentBefore: AgentCounters | undefined;
    if (SPECS[variant].agent) {
      agent = launchAgent(ctx, variant, names.tag, names.agentStats, await freePort());
      await waitForAgentStreaming(agent, 60_000);
    }
    await standby.pauseReplay();
    if (agent) {
      await sleep(300); // let it settle at the current end of WAL
      agentBefore = agentCounters((await agent.scrape()) ?? '');
      agent.signalTree('SIGSTOP');
    }
    const burst = await runBurst(primary, table.rows, opts);
    await standby.waitForReceive(burst.endLsn, 600_000);
    const residentFraction = prepareCache(ctx, variant);
    const prep: Prepared = { ...names, burst, residentFraction, agentBefore };
    // The replay process's CPU and run-queue wait: is it waiting on storage or on a CPU?
    const startupRows = await standby.query<{ pid: number }>(`select pid from pg_stat_activity where backend_type = 'startup'`);
    const replayPid = startupRows[0] ? Number(startupRows[0].pid) : null;
    const schedBefore = replayPid === null ? null : schedStat(replayPid);
    const before = agent ? sampleProc(agent.pid) : null;
    const traceBefore = process.env.BENCH_TRACE && replayPid !== null ? { cpu: userSystem(replayPid), vm: vmstat() } : null;
    const t0 = performance.now();
    if (process.env.BENCH_TRACE) log(`${prep.tag}: t0 monotonic ${process.hrtime.bigint() / 1000n} us`);
    agent?.signalTree('SIGCONT');
    await standby.resumeReplay();
    const t = await timeReplay(ctx, prep.tag, burst.endLsn, t0, agent);
    const schedAfter = replayPid === null ? null : schedStat(replayPid);
    if (traceBefore && replayPid !== null) {
      // BENCH_TRACE: where the replay process's CPU went (user/system) and what memory management did meanwhile.
      const cpu = userSystem(replayPid);
      const vm = vmstat();
      const vmDelta = Object.entries(vm).map(([k, v]) => [k, v - (traceBefore.vm[k] ?? 0)] as const).filter(([, d]) => d !== 0);
      log(`${prep.tag}: replay user ${((cpu?.user ?? 0) - (traceBefore.cpu?.user ?? 0)).toFixed(2)} s, system ${((cpu?.system ?? 0) - (traceBefore.cpu?.system ?? 0)).toFixed(2)} s; vmstat ${vmDelta.map(([k, d]) => `${k} ${d}`).join(', ')}`);
    }
    const result = await finish(ctx, variant, rep, prep, { ...t, startupSeconds: 0, t0 }, agent, before);
    if (schedBefore && schedAfter) {
      result.replayCpuS = schedAfter.cpuSeconds - schedBefore.cpuSeconds;
      result.replayRunqueueWaitS = schedAfter.runqueueWaitSeconds - schedBefore.runqueueWaitSeconds;
      log(`${prep.tag}: replay process CPU ${result.replayCpuS.toFixed(2)} s, run-queue wait ${result.replayRunqueueWaitS.toFixed(2)} s`);
    }
    agent = null;
    return result;
  } finally {
    if (agent) {
      agent.signalTree('SIGCONT');
      await agent.stop();
    }
  }
}

function runMode(ctx: Context, variant: VariantName, rep: number): Promise<RunResult> {
  if (ctx.mode === 'live') return runLive(ctx, variant, rep);
  if (ctx.mode === 'restart') return runRestart(ctx, variant, rep);
  if (ctx.mode === 'container') throw new Error('container mode runs from benchVersion (replay-container.ts)');
  return runCrash({ ...ctx, mode: ctx.mode, repoRoot, log }, variant, SPECS[variant], rep);
}

function machine(): string {
  const mem = (totalmem() / 1024 ** 3).toFixed(1);
  return `${cpus().length} CPUs (${cpus()[0]?.model ?? 'unknown'}), ${mem} GiB RAM, Linux ${release()}, node ${process.version}`;
}

async function section(ctx: Context, version: number, results: RunResult[], notes: string[]): Promise<string> {
  const { opts, table, cluster, mode } = ctx;
  const summaries = summarize(results, ALL_VARIANTS);
  const limitLine = iopsLimit(summaries, opts.iops);
  // Crash mode leaves the standby stopped; the primary's settings are the same.
  const server = cluster.standby.running ? cluster.standby : cluster.primary;
  const sb = await cluster.standby.scalar<string>('show shared_buffers').catch(() => `${opts.standbySharedBuffers} (standby stopped)`);
  const contexts = await server.query<{ name: string; context: string }>(
    `select name, context from pg_settings where name in ('recovery_prefetch', 'maintenance_io_concurrency', 'wal_decode_buffer_size') order by name`,
  );
  const parts = [
    `### PostgreSQL ${version}, ${mode} mode`,
    '',
    `Table ${(table.tableBytes / 1048576).toFixed(0)} MB + index ${(table.indexBytes / 1048576).toFixed(0)} MB (${table.rows} rows); standby shared_buffers ${sb}; ` +
      `burst ${opts.updates} random single-row updates (${opts.perCommit} per commit, seed ${opts.seed}), ` +
      `${((results[0]?.walBytes ?? 0) / 1048576).toFixed(1)} MB of WAL; full_page_writes ${opts.fpw ? 'on' : 'off'}; slowio miss latency ${opts.latencyUs} us${opts.iops ? `, volume capped at ${opts.iops} IOPS` : ', no IOPS cap'}; ${opts.reps} repetitions.`,
    '',
    ...(mode === 'crash' ? ['"replay s" here is from the start of PostgreSQL (killed with SIGKILL after the burst) and the sidecar to postmaster.pid saying "ready": crash recovery done.', ''] : []),
    ...(mode === 'crash-standby' ? ['"replay s" here is from the start of the standby (killed with SIGKILL after replaying the burst) and the sidecar until replay passes the burst\'s end again; "standby start s" in All runs is when it accepted connections (consistent).', ''] : []),
    replayTable(summaries),
    '',
    ...(limitLine ? [limitLine, ''] : []),
  ];
  for (const v of ['prefaulter', 'prefaulter-pread'] as const) {
    const t = targetsTable(summaries, v);
    if (t) parts.push(`Targets for \`${v}\` (medians):`, '', t, '');
  }
  const at = agentTable(summaries);
  if (at) parts.push(`Sidecar cost (CPU and WAL rate from the ${mode === 'live' ? 'resume' : "standby's start"} to the end of replay):`, '', at, '');
  if (notes.length) parts.push(...notes.map((n) => `- ${n}`), '');
  parts.push(`Setting contexts on this version: ${contexts.map((c) => `${c.name} = ${c.context}`).join(', ')}.`, '');
  parts.push('<details><summary>All runs</summary>', '', runsTable(results), '', '</details>', '');
  return parts.join('\n');
}

async function benchVersion(
  opts: BenchOptions,
  version: number,
  slowio: SlowIo,
  agentOk: { ok: boolean; why: string },
  workDir: string,
  emit: (markdown: string) => void,
): Promise<void> {
  const notes: string[] = [];
  const variants = opts.variants.filter((v) => {
    if (SPECS[v].needsPrefetchGuc && version < 15) {
      notes.push(`${v}: skipped, recovery_prefetch exists on PostgreSQL 15+ only`);
      return false;
    }
    if (SPECS[v].agent && !agentOk.ok) {
      notes.push(`${v}: skipped, ${agentOk.why}`);
      return false;
    }
    return true;
  });
  log(`PG ${version}: creating cluster`);
  const cluster = await createBenchCluster(version, opts);
  const statsDir = join(workDir, `stats-${version}`);
  const logDir = join(workDir, `logs-${version}`);
  for (const d of [statsDir, logDir]) {
    mkdirSync(d, { recursive: true });
    chmodSync(d, 0o1777); // server processes (user nobody) write their slowio counters here
  }
  let failed = false;
  try {
    const t = performance.now();
    const table = await loadTable(cluster, opts.sizeMb, (m) => log(`PG ${version}: ${m}`));
    log(`PG ${version}: table ${(table.tableBytes / 1048576).toFixed(0)} MB + index ${(table.indexBytes / 1048576).toFixed(0)} MB, ${table.rows} rows, loaded in ${((performance.now() - t) / 1000).toFixed(0)} s`);
    // One untimed burst first: the first burst after the load finds frozen,
    // all-visible pages and writes less WAL than every later (identical) one.
    const warmup = await runBurst(cluster.primary, table.rows, opts);
    await cluster.standby.waitForReplay(warmup.endLsn, 600_000);
    for (const mode of opts.modes) {
      if (mode === 'container') {
        emit(await runContainerMode({ opts, cluster, table, slowio, statsDir, logDir, repoRoot, log }));
        continue;
      }
      const ctx: Context = { opts, mode, cluster, table, slowio, statsDir, logDir };
      const results: RunResult[] = [];
      // Variants interleave within each repetition, so drift of the table
      // (more dead tuples each burst) and of the machine hits all alike.
      for (let rep = 1; rep <= opts.reps; rep++) {
        for (const v of variants) results.push(await runMode(ctx, v, rep));
      }
      writeFileSync(join(workDir, `results-${version}-${mode}.json`), JSON.stringify({ version, mode, opts, table, results }, null, 2));
      emit(await section(ctx, version, results, notes));
    }
  } catch (e) {
    failed = true;
    process.stderr.write(`\n${cluster.primary.logTail()}\n${cluster.standby.logTail()}\nlogs kept in ${join(cluster.base, 'logs')} and ${logDir}\n`);
    throw e;
  } finally {
    await cluster.destroy(failed);
  }
}

async function main(argv: string[]): Promise<number> {
  let opts: BenchOptions | 'help';
  try {
    opts = parseBenchArgs(argv);
  } catch (e) {
    process.stderr.write(`bench:replay: ${(e as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (opts === 'help') {
    process.stdout.write(USAGE);
    return 0;
  }
  if (process.getuid?.() !== 0) {
    process.stderr.write('bench:replay: run as root: it evicts the standby\'s files from the page cache and reads the agent\'s /proc entries\n');
    return 2;
  }
  const workDir = join(tmpdir(), `pg-prefaulter-bench-replay-${process.pid}`);
  mkdirSync(workDir, { recursive: true });
  chmodSync(workDir, 0o755);
  const slowio = buildSlowIo(repoRoot, opts.latencyUs, opts.iops);
  const agentOk = opts.variants.some((v) => SPECS[v].agent) ? agentAvailable(repoRoot) : { ok: false, why: 'not requested' };
  if (!agentOk.ok && opts.variants.some((v) => SPECS[v].agent)) log(`agent variants will be skipped: ${agentOk.why}`);
  const command = `npm run bench:replay -- ${argv.join(' ')}`.trimEnd();
  const out: string[] = [
    `## Replay benchmark`,
    '',
    `Command: \`${command}\``,
    '',
    `Machine: ${machine()}; run ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC; agent: ${agentOk.ok ? `\`pg-prefaulter run\` from this checkout (${gitHead()})` : agentOk.why}.`,
    '',
  ];
  try {
    // Each table is printed as soon as it is complete.
    process.stdout.write(`${out.join('\n')}\n`);
    for (const version of opts.versions) await benchVersion(opts, version, slowio, agentOk, workDir, (md) => process.stdout.write(`${md}\n`));
  } finally {
    rmSync(slowio.dir, { recursive: true, force: true });
    slowio.removeVolume();
  }
  log(`per-run JSON, agent logs and metrics in ${workDir}`);
  return 0;
}

function gitHead(): string {
  try {
    return execFileSync('git', ['-C', repoRoot, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
  } catch {
    return 'unknown commit';
  }
}

// Ctrl-C or a kill: exit through process.exit so the harness's and the
// agent module's exit hooks stop the servers and agents.
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    process.stderr.write(`bench:replay: ${signal}, stopping servers (data dirs stay in ${tmpdir()})\n`);
    process.exit(130);
  });
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`bench:replay: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 1;
  },
);
