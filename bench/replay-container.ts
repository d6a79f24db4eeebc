// Container mode of the replay benchmark (--mode container): the follower in
// one memory cgroup and the agent in another, as in a Kubernetes pod whose
// containers have memory limits, with full_page_writes on. Page cache is
// charged to the cgroup that first reads a page, so what replay can keep
// cached is bounded by the follower's limit, and what the agent hints by the
// agent's. The burst updates a hot range several times the follower's limit,
// uniformly or skewed (zipfian), touching pages repeatedly: the first touch
// after the checkpoint carries a full-page image, the later ones read the page
// unless it is still in memory. Needs root and a writable memory controller
// (cgroup v1, or v2 with memory delegated).
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, sleep, type PgServer } from '../test/harness/index.ts';
import { createMemoryCgroup, type TestCgroup } from '../test/helpers/memory-cgroup.ts';
import { readMemoryCgroup } from '../src/prefault/memory-cgroup.ts';
import type { BenchOptions } from './replay-args.ts';
import { agentStreaming, metricSum, processTree, startAgent, type RunningAgent } from './replay-agent.ts';
import { evict, relationFiles } from './replay-cache.ts';
import { flushSlowIoCounters, parkStandby, replayReached, TABLE, type ModeContext } from './replay-cluster.ts';
import { readSlowIoStats, sumCounters } from './replay-slowio.ts';
import { sampleCgroupMemory, traceAgentVsReplay, type MemorySample, type MemorySampler } from './replay-memory.ts';

export const DISTRIBUTIONS = ['uniform', 'zipfian'] as const;
export type Distribution = (typeof DISTRIBUTIONS)[number];
/** Zipf exponent of the skewed burst (YCSB's default). */
const ZIPF_S = 0.99;

interface ContainerVariant {
  name: string;
  prefetch: 'on' | 'off';
  ioConcurrency: number;
  /** The agent's memory limit (MiB); null = no agent. */
  agentLimitMb: number | null;
}

export interface ContainerContext extends ModeContext {
  /** The built CLI (dist/cli/main.js), as the image runs it: no TypeScript compiler in the agent's memory. */
  agentScript?: string;
}

interface ContainerResult {
  distribution: Distribution;
  variant: string;
  rep: number;
  seconds: number;
  replayMisses: number;
  agentHinted: number | null;
  agentFetched: number | null;
  agentWindow: number | null;
  agentMisses: number | null;
  /** The agent's memory over the run (null: no agent). */
  agentMemory: MemorySample | null;
  /** prefault.recordsBehind: records replay had applied when the agent got to them. */
  recordsBehind: number | null;
  /** How the agent ended the run: null (no agent), 'running', or its exit (SIGKILL = OOM-killed). */
  agentExit: string | null;
  walBytes: number;
}

function variants(opts: BenchOptions, version: number): ContainerVariant[] {
  const out: ContainerVariant[] = [];
  const want = new Set(opts.variants);
  if (want.has('cold')) out.push({ name: 'none', prefetch: 'off', ioConcurrency: 10, agentLimitMb: null });
  if (version >= 15 && want.has('builtin')) out.push({ name: 'builtin', prefetch: 'on', ioConcurrency: 10, agentLimitMb: null });
  if (version >= 15 && want.has('builtin-tuned')) out.push({ name: 'builtin-tuned', prefetch: 'on', ioConcurrency: 200, agentLimitMb: null });
  if (want.has('prefaulter')) {
    for (const mb of opts.agentLimitsMb) out.push({ name: `prefaulter, agent ${mb >= 1024 ? `${mb / 1024} GiB` : `${mb} MiB`}`, prefetch: 'off', ioConcurrency: 10, agentLimitMb: mb });
  }
  return out;
}

/** Moves a process and its descendants into a cgroup (charges already made stay where they are). */
function moveTree(pid: number, procsFile: string): void {
  for (const p of processTree(pid)) {
    try {
      writeFileSync(procsFile, String(p));
    } catch {
      // exited meanwhile
    }
  }
}

function postmasterPid(standby: PgServer): number {
  return Number(readFileSync(join(standby.dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
}

/**
 * The skewed or uniform burst: `updates` single-row updates, 10 per commit.
 * Zipfian ranks come from the inverse CDF of a continuous zipf(s) over
 * 1..rows, and are scattered over the table by a multiplicative permutation,
 * so the hot rows are not neighbours on disk.
 */
async function runBurst(primary: PgServer, rows: number, opts: BenchOptions, dist: Distribution): Promise<{ endLsn: string; walBytes: number }> {
  const startLsn = await primary.scalar<string>('select pg_current_wal_lsn()::text');
  const seed = (opts.seed % 1_000_000) / 1_000_000;
  const pick =
    dist === 'uniform'
      ? `1 + floor(random() * ${rows})::int`
      : `1 + ((floor(power((power(${rows}::float8, ${1 - ZIPF_S}) - 1) * random() + 1, ${1 / (1 - ZIPF_S)}))::bigint * 2654435761) % ${rows})::int`;
  await primary.exec(`
    do $$
    declare target int;
    begin
      perform setseed(${seed});
      for i in 1..${opts.updates} loop
        target := least(${rows}, greatest(1, ${pick}));
        update ${TABLE} set v = v + 1 where id = target;
        if i % ${opts.perCommit} = 0 then commit; end if;
      end loop;
    end $$;`);
  const endLsn = await primary.scalar<string>('select pg_current_wal_lsn()::text');
  const walBytes = Number(await primary.scalar('select pg_wal_lsn_diff($1::pg_lsn, $2::pg_lsn)', [endLsn, startLsn]));
  return { endLsn, walBytes };
}

async function waitStreaming(agent: RunningAgent, opts: BenchOptions, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (agent.exited() !== null) throw new Error(`pg-prefaulter run exited (${agent.exited()}); see ${agent.logFile}`);
    const m = await agent.scrape();
    // --source local has no upstream connection: streaming is enough then.
    if (m !== null && (agentStreaming(m) || (opts.agentArgs.includes('--source=local') && /^pg_prefaulter_state\{state="streaming"\} 1$/m.test(m)))) return;
    await sleep(100);
  }
  throw new Error(`pg-prefaulter run did not report streaming within ${timeoutMs} ms; see ${agent.logFile}`);
}

async function runOne(
  ctx: ContainerContext,
  groups: { follower: TestCgroup; agents: Map<number, TestCgroup> },
  dist: Distribution,
  v: ContainerVariant,
  rep: number,
): Promise<ContainerResult> {
  const { cluster, opts, table, slowio } = ctx;
  const { primary, standby } = cluster;
  const tag = `pg${cluster.version}-container-${dist}-${v.name.replace(/[^a-z0-9]+/gi, '-')}-${rep}`;
  await parkStandby(cluster); // a checkpoint: the burst's first touch of each page carries its image
  const settings: Record<string, string | number> = { maintenance_io_concurrency: v.ioConcurrency };
  if (cluster.version >= 15) settings.recovery_prefetch = v.prefetch;
  standby.configure(settings);
  const standbyStats = join(ctx.statsDir, `${tag}-standby`);
  const agentStats = join(ctx.statsDir, `${tag}-agent`);
  standby.env = slowio.env(standbyStats);
  await standby.start();
  moveTree(postmasterPid(standby), groups.follower.procs);
  let agent: RunningAgent | null = null;
  let memory: MemorySampler | null = null;
  try {
    if (v.agentLimitMb !== null) {
      const group = groups.agents.get(v.agentLimitMb)!;
      memory = sampleCgroupMemory(group.dir, group.version);
      agent = startAgent({
        repoRoot: ctx.repoRoot, standby, metricsPort: await freePort(), env: slowio.env(agentStats),
        logFile: join(ctx.logDir, `${tag}-agent.log`), extraArgs: opts.agentArgs, nodeArgs: opts.agentNodeArgs,
        script: ctx.agentScript, execPath: process.env.PREFAULTER_BENCH_AGENT_NODE || undefined,
      });
      // Into its container before node has run a line (it reads its limit once connected).
      moveTree(agent.pid, group.procs);
      await waitStreaming(agent, opts, 60_000);
    }
    await standby.pauseReplay();
    let before = { issued: 0, fetched: 0 };
    if (agent) {
      await sleep(300);
      const m = (await agent.scrape()) ?? '';
      before = { issued: metricSum(m, 'pg_prefaulter_prefaults_issued_total') ?? 0, fetched: metricSum(m, 'pg_prefaulter_pages_fetched_for_replay_total') ?? 0 };
      agent.signalTree('SIGSTOP');
    }
    const burst = await runBurst(primary, table.rows, opts, dist);
    await standby.waitForReceive(burst.endLsn, 600_000);
    evict(relationFiles(standby.dataDir));
    const t0 = performance.now();
    agent?.signalTree('SIGCONT');
    await standby.resumeReplay();
    const endTrace = agent
      ? traceAgentVsReplay(join(ctx.logDir, `${tag}-trace.tsv`), () => standby.scalar<string>('select pg_last_wal_replay_lsn()::text'), agent.metricsUrl.replace(/\/metrics$/, '/status'))
      : async () => {};
    const deadline = Date.now() + opts.timeoutS * 1000;
    while (!(await replayReached(standby, burst.endLsn))) {
      if (Date.now() > deadline) throw new Error(`${tag}: replay did not reach ${burst.endLsn} within ${opts.timeoutS} s`);
      await sleep(20);
    }
    const seconds = (performance.now() - t0) / 1000;
    await endTrace();
    const agentMemory = memory?.stop() ?? null;
    memory = null;
    const agentExit = agent ? (agent.exited() ?? 'running') : null;
    const metrics = agent ? await agent.scrape() : null;
    const behind = agent ? await recordsBehind(agent) : null;
    const startupPid = await flushSlowIoCounters(cluster, table.rows);
    const perPid = readSlowIoStats(standbyStats);
    const replay = (startupPid !== null ? perPid.get(startupPid) : undefined) ?? sumCounters(perPid.values());
    const result: ContainerResult = {
      distribution: dist, variant: v.name, rep, seconds, replayMisses: replay.misses, walBytes: burst.walBytes,
      agentHinted: metrics ? (metricSum(metrics, 'pg_prefaulter_prefaults_issued_total') ?? 0) - before.issued : null,
      agentFetched: metrics ? (metricSum(metrics, 'pg_prefaulter_pages_fetched_for_replay_total') ?? 0) - before.fetched : null,
      agentWindow: metrics ? metricSum(metrics, 'pg_prefaulter_max_pages_ahead') : null,
      agentMisses: agent ? sumCounters(readSlowIoStats(agentStats).values()).misses : null,
      agentMemory, agentExit, recordsBehind: behind,
    };
    if (metrics) writeFileSync(join(ctx.logDir, `${tag}-metrics.txt`), metrics);
    ctx.log(`${tag}: ${seconds.toFixed(2)} s, replay misses ${replay.misses}` +
      (agent ? `, agent hinted ${result.agentHinted} (fetched ${result.agentFetched}), window ${result.agentWindow} pages, records replay passed before the agent planned them ${behind ?? '?'}` : '') +
      (agentMemory ? `, agent peak anon ${mb(agentMemory.peakAnonBytes)} MB, cgroup peak ${agentMemory.peakUsageBytes === null ? '?' : mb(agentMemory.peakUsageBytes)} MB, ${agentExit === 'running' ? 'alive' : `exited ${agentExit}`}${agentMemory.oomKills ? ` (OOM-killed x${agentMemory.oomKills})` : ''}` : ''));
    return result;
  } finally {
    memory?.stop();
    if (agent) {
      agent.signalTree('SIGCONT');
      await agent.stop();
    }
  }
}

/** prefault.recordsBehind from /status: records replay had passed when the agent got to them. */
async function recordsBehind(agent: RunningAgent): Promise<number | null> {
  try {
    const res = await fetch(agent.metricsUrl.replace(/\/metrics$/, '/status'), { signal: AbortSignal.timeout(5000) });
    const body = (await res.json()) as { prefault?: { recordsBehind?: number; nearHints?: number } | null };
    return body.prefault?.recordsBehind ?? null;
  } catch {
    return null;
  }
}

const mb = (bytes: number): string => (bytes / 1048576).toFixed(1);

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

function table(results: ContainerResult[], dist: Distribution): string {
  const rows = results.filter((r) => r.distribution === dist);
  const names = [...new Set(rows.map((r) => r.variant))];
  const none = median(rows.filter((r) => r.variant === 'none').map((r) => r.seconds));
  const lines = [
    '| variant | replay s (median) | vs none | replay\'s misses | pages the agent hinted | of which fetched for replay | agent window (pages) | records behind replay | agent peak anon MB | agent |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---|',
  ];
  for (const n of names) {
    const rs = rows.filter((r) => r.variant === n);
    const s = median(rs.map((r) => r.seconds));
    const opt = (f: (r: ContainerResult) => number | null) => (rs[0] && f(rs[0]) !== null ? String(Math.round(median(rs.map((r) => f(r)!)))) : '-');
    const peak = rs[0]?.agentMemory ? mb(Math.max(...rs.map((r) => r.agentMemory?.peakAnonBytes ?? 0))) : '-';
    const killed = rs.filter((r) => (r.agentMemory?.oomKills ?? 0) > 0 || r.agentExit === 'SIGKILL').length;
    const fate = rs[0]?.agentExit === null ? '-' : killed ? `OOM-killed in ${killed} of ${rs.length}` : 'alive';
    lines.push(`| ${n} | ${s.toFixed(2)} | ${Number.isFinite(none) ? `${(none / s).toFixed(2)}x` : '-'} | ${Math.round(median(rs.map((r) => r.replayMisses)))} | ${opt((r) => r.agentHinted)} | ${opt((r) => r.agentFetched)} | ${opt((r) => r.agentWindow)} | ${opt((r) => r.recordsBehind)} | ${peak} | ${fate} |`);
  }
  return lines.join('\n');
}

/** Runs the container mode on a loaded cluster; returns its markdown section. */
export async function runContainerMode(ctx: ContainerContext): Promise<string> {
  const { opts, cluster } = ctx;
  if (!opts.fpw) ctx.log('container mode: full_page_writes is off (--fpw on is the case this mode is about)');
  ctx.agentScript ??= buildAgent(ctx.repoRoot, ctx.log);
  const self = readMemoryCgroup();
  const follower = createMemoryCgroup('pgpf-bench-follower', opts.followerLimitMb * 1048576);
  if (self === null || follower === null) throw new Error('container mode needs root and a writable memory cgroup controller (v1 memory, or v2 with memory delegated)');
  const agents = new Map<number, TestCgroup>();
  const parentProcs = join(self.dir, 'cgroup.procs');
  try {
    for (const mb of opts.agentLimitsMb) {
      const g = createMemoryCgroup(`pgpf-bench-agent-${mb}`, mb * 1048576);
      if (g === null) throw new Error(`cannot create the agent's ${mb} MiB memory cgroup`);
      agents.set(mb, g);
    }
    const results: ContainerResult[] = [];
    const list = variants(opts, cluster.version);
    for (const dist of opts.distributions) {
      for (let rep = 1; rep <= opts.reps; rep++) {
        for (const v of list) results.push(await runOne(ctx, { follower, agents }, dist, v, rep));
      }
    }
    writeFileSync(join(ctx.logDir, '..', `results-${cluster.version}-container.json`), JSON.stringify({ opts, results }, null, 2));
    const sb = await cluster.standby.scalar<string>('show shared_buffers');
    const wal = median(results.map((r) => r.walBytes)) / 1048576;
    const parts = [
      `### PostgreSQL ${cluster.version}, container mode (cgroup v${follower.version})`,
      '',
      `Follower in a ${opts.followerLimitMb} MiB memory cgroup, shared_buffers ${sb}; agent in its own memory cgroup (limit per variant); ` +
        `table ${(ctx.table.tableBytes / 1048576).toFixed(0)} MB (${ctx.table.rows} rows, the hot range); ${opts.updates} single-row updates per burst ` +
        `(${opts.perCommit} per commit, ~${wal.toFixed(1)} MB WAL) after a checkpoint; full_page_writes ${opts.fpw ? 'on' : 'off'}; ` +
        `slowio ${opts.latencyUs} us per miss${opts.iops ? `, volume capped at ${opts.iops} IOPS` : ''}; ${opts.reps} repetition(s).`,
      '',
    ];
    for (const dist of opts.distributions) {
      parts.push(`${dist === 'uniform' ? 'Uniform' : `Zipfian (s = ${ZIPF_S}, hot rows scattered over the table)`} updates:`, '', table(results, dist), '');
    }
    return parts.join('\n');
  } finally {
    // Leave the cgroups empty so they can go (the servers stay up for the other modes).
    const postmaster = postmasterPidOrZero(cluster.standby);
    for (const pid of postmaster > 0 ? processTree(postmaster) : []) {
      try {
        writeFileSync(parentProcs, String(pid));
      } catch {
        // exited
      }
    }
    for (const g of [follower, ...agents.values()]) await g.remove();
  }
}

/** Compiles the CLI into dist/ (npm run build): the source checkout's tsx would put esbuild in the agent's cgroup. */
function buildAgent(repoRoot: string, log: (msg: string) => void): string {
  log('container mode: building dist/ (npm run build) so the agent runs as in the image');
  execFileSync(process.execPath, [join(repoRoot, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(repoRoot, 'tsconfig.build.json')], { stdio: 'inherit' });
  return join(repoRoot, 'dist', 'cli', 'main.js');
}

function postmasterPidOrZero(standby: PgServer): number {
  try {
    return postmasterPid(standby);
  } catch {
    return 0;
  }
}
