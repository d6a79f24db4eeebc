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
import { ALL_VARIANTS, parseBenchArgs, USAGE, type BenchOptions, type VariantName } from './replay-args.ts';
import { agentAvailable, metricSum, sampleProc, startAgent, type RunningAgent } from './replay-agent.ts';
import { evict, relationFiles, residency, warm } from './replay-cache.ts';
import { createBenchCluster, flushSlowIoCounters, loadTable, parkStandby, replayReached, runBurst, type LoadedTable } from './replay-cluster.ts';
import { agentTable, replayTable, runsTable, summarize, type AgentFigures, type RunResult } from './replay-report.ts';
import { buildSlowIo, readSlowIoStats, sumCounters, type SlowIo } from './replay-slowio.ts';

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
}

const SPECS: Record<VariantName, VariantSpec> = {
  cached: { prefetch: 'off', ioConcurrency: 10, agent: false, warmCache: true, needsPrefetchGuc: false },
  cold: { prefetch: 'off', ioConcurrency: 10, agent: false, warmCache: false, needsPrefetchGuc: false },
  builtin: { prefetch: 'on', ioConcurrency: 10, agent: false, warmCache: false, needsPrefetchGuc: true },
  'builtin-tuned': { prefetch: 'on', ioConcurrency: 200, agent: false, warmCache: false, needsPrefetchGuc: true },
  prefaulter: { prefetch: 'off', ioConcurrency: 10, agent: true, warmCache: false, needsPrefetchGuc: false },
  'prefaulter+builtin': { prefetch: 'on', ioConcurrency: 10, agent: true, warmCache: false, needsPrefetchGuc: true },
};

interface Context {
  opts: BenchOptions;
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

async function runOnce(ctx: Context, variant: VariantName, rep: number): Promise<RunResult> {
  const { cluster, opts, table } = ctx;
  const { primary, standby } = cluster;
  const spec = SPECS[variant];

  await parkStandby(cluster);
  const burst = await runBurst(primary, table.rows, opts);

  const settings: Record<string, string | number> = { maintenance_io_concurrency: spec.ioConcurrency };
  if (cluster.version >= 15) settings.recovery_prefetch = spec.prefetch;
  standby.configure(settings);
  const tag = `pg${cluster.version}-${variant}-${rep}`;
  const standbyStats = join(ctx.statsDir, `${tag}-standby`);
  standby.env = ctx.slowio.env(standbyStats);

  const files = relationFiles(standby.dataDir);
  if (spec.warmCache) warm(files);
  else evict(files);
  const tableFiles = files.filter((f) => table.relationPaths.some((p) => f === join(standby.dataDir, p) || f.startsWith(`${join(standby.dataDir, p)}.`)));
  const res = residency(tableFiles);
  const residentFraction = res.totalBytes ? res.residentBytes / res.totalBytes : 0;

  let agent: RunningAgent | null = null;
  const agentStats = join(ctx.statsDir, `${tag}-agent`);
  try {
    if (spec.agent) {
      agent = startAgent({
        repoRoot,
        standby,
        metricsPort: await freePort(),
        env: ctx.slowio.env(agentStats),
        logFile: join(ctx.logDir, `${tag}-agent.log`),
        extraArgs: opts.agentArgs,
      });
      await waitForAgentReady(agent, 60_000);
    }
    const before = agent ? sampleProc(agent.pid) : null;
    const t0 = performance.now();
    await standby.start();
    const startupSeconds = (performance.now() - t0) / 1000;
    const deadline = Date.now() + opts.timeoutS * 1000;
    // When did the sidecar issue its first prefault (seconds after the standby's start)?
    let firstPrefaultS: number | null = null;
    let lastScrape = 0;
    while (!(await replayReached(standby, burst.endLsn))) {
      if (Date.now() > deadline) throw new Error(`${tag}: replay did not reach ${burst.endLsn} within ${opts.timeoutS} s\n${standby.logTail()}`);
      if (agent && firstPrefaultS === null && performance.now() - lastScrape >= 100) {
        lastScrape = performance.now();
        const m = await agent.scrape();
        if (m !== null && (metricSum(m, 'pg_prefaulter_prefaults_issued_total') ?? 0) > 0) firstPrefaultS = (performance.now() - t0) / 1000;
      }
      await sleep(20);
    }
    const seconds = (performance.now() - t0) / 1000;

    const after = agent ? sampleProc(agent.pid) : null;
    const metrics = agent ? await agent.scrape() : null;
    const startupPid = await flushSlowIoCounters(cluster, table.rows);

    let agentFigures: AgentFigures | null = null;
    if (agent) {
      const walBytesMetric = metrics === null ? null : metricSum(metrics, 'pg_prefaulter_wal_bytes_total');
      if (metrics !== null) writeFileSync(join(ctx.logDir, `${tag}-metrics.txt`), metrics);
      const exitedEarly = agent.exited();
      const exit = exitedEarly !== null ? `died early (${exitedEarly})` : await agent.stop();
      agentFigures = {
        cpuSeconds: after && before ? after.cpuSeconds - before.cpuSeconds : NaN,
        cpuSecondsTotal: after?.cpuSeconds ?? NaN,
        peakRssBytes: after?.peakRssBytes ?? 0,
        processes: after?.processes ?? 0,
        threads: after?.threads ?? 0,
        firstPrefaultS,
        walBytesMetric,
        misses: sumCounters(readSlowIoStats(agentStats).values()).misses,
        exit,
      };
      agent = null;
    }
    const perPid = readSlowIoStats(standbyStats);
    const standbyCounters = (startupPid !== null ? perPid.get(startupPid) : undefined) ?? sumCounters(perPid.values());
    const result: RunResult = {
      variant,
      rep,
      seconds,
      startupSeconds,
      walBytes: burst.walBytes,
      residentFraction,
      standbyMisses: standbyCounters.misses,
      standbyWillneed: standbyCounters.willneed,
      agent: agentFigures,
    };
    log(`${tag}: ${seconds.toFixed(2)} s (startup ${startupSeconds.toFixed(2)} s, burst ${(burst.walBytes / 1048576).toFixed(1)} MB WAL, resident ${(residentFraction * 100).toFixed(1)}%, standby misses ${standbyCounters.misses}, willneed ${standbyCounters.willneed}${agentFigures ? `, agent cpu ${agentFigures.cpuSeconds.toFixed(2)} s, first prefault at ${agentFigures.firstPrefaultS?.toFixed(2) ?? 'never'} s, ${agentFigures.processes} proc/${agentFigures.threads} threads, rss ${(agentFigures.peakRssBytes / 1048576).toFixed(0)} MB, agent misses ${agentFigures.misses}, exit ${agentFigures.exit}` : ''})`);
    return result;
  } finally {
    if (agent) await agent.stop();
  }
}

function machine(): string {
  const mem = (totalmem() / 1024 ** 3).toFixed(1);
  return `${cpus().length} CPUs (${cpus()[0]?.model ?? 'unknown'}), ${mem} GiB RAM, Linux ${release()}, node ${process.version}`;
}

async function benchVersion(opts: BenchOptions, version: number, slowio: SlowIo, agentOk: { ok: boolean; why: string }, workDir: string): Promise<string> {
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
    const ctx: Context = { opts, cluster, table, slowio, statsDir, logDir };
    const results: RunResult[] = [];
    // Variants interleave within each repetition, so drift of the table
    // (more dead tuples each burst) and of the machine hits all alike.
    for (let rep = 1; rep <= opts.reps; rep++) {
      for (const v of variants) results.push(await runOnce(ctx, v, rep));
    }
    writeFileSync(join(workDir, `results-${version}.json`), JSON.stringify({ version, table, results }, null, 2));
    const summaries = summarize(results, ALL_VARIANTS);
    const sb = await cluster.standby.scalar<string>('show shared_buffers');
    const parts = [
      `### PostgreSQL ${version}`,
      '',
      `Table ${(table.tableBytes / 1048576).toFixed(0)} MB + index ${(table.indexBytes / 1048576).toFixed(0)} MB (${table.rows} rows); standby shared_buffers ${sb}; ` +
        `burst ${opts.updates} random single-row updates (${opts.perCommit} per commit, seed ${opts.seed}), ` +
        `${((results[0]?.walBytes ?? 0) / 1048576).toFixed(1)} MB of WAL; full_page_writes ${opts.fpw ? 'on' : 'off'}; slowio miss latency ${opts.latencyUs} us; ${opts.reps} repetitions.`,
      '',
      replayTable(summaries),
      '',
    ];
    const at = agentTable(summaries);
    if (at) parts.push('Sidecar cost (CPU and WAL rate measured from the standby start to the end of replay):', '', at, '');
    if (notes.length) parts.push(...notes.map((n) => `- ${n}`), '');
    parts.push('<details><summary>All runs</summary>', '', runsTable(results), '', '</details>', '');
    return parts.join('\n');
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
  const slowio = buildSlowIo(repoRoot, opts.latencyUs);
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
    for (const version of opts.versions) out.push(await benchVersion(opts, version, slowio, agentOk, workDir));
  } finally {
    rmSync(slowio.dir, { recursive: true, force: true });
  }
  process.stdout.write(`${out.join('\n')}\n`);
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

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`bench:replay: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 1;
  },
);
