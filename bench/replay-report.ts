// Summaries and the Markdown tables the replay benchmark prints.
import type { VariantName } from './replay-args.ts';

export interface AgentFigures {
  /** CPU seconds from the standby's start to the end of replay. */
  cpuSeconds: number;
  /** Of cpuSeconds, user space (utime of every thread, 10 ms ticks): without the kernel's work in our system calls. */
  userSeconds?: number;
  /** CPU seconds over the agent's whole life (includes its startup). */
  cpuSecondsTotal: number;
  peakRssBytes: number;
  /** Processes in the agent's tree, and threads of its busiest process. */
  processes: number;
  threads: number;
  /** Seconds from the standby's start to the agent's first prefault (null: none seen during replay). */
  firstPrefaultS: number | null;
  /** Seconds from the timer's start until the agent had read the whole burst (pg_prefaulter_stream_lsn_bytes). */
  readEndS: number | null;
  /** pg_prefaulter_wal_bytes_total at the end, or null if the metric was absent. */
  walBytesMetric: number | null;
  /** WAL records decoded and prefaults issued over the burst (metrics), null if absent. */
  records: number | null;
  prefaultsIssued: number | null;
  misses: number;
  exit: string;
  /** CPU seconds per thread group during the timed window. */
  threadCpu?: Record<string, number>;
}

export interface RunResult {
  variant: VariantName;
  rep: number;
  seconds: number;
  /** From spawning the standby until it accepted connections. */
  startupSeconds: number;
  walBytes: number;
  /** Fraction of the table and index resident in the page cache when the standby started. */
  residentFraction: number;
  standbyMisses: number;
  standbyWillneed: number;
  agent: AgentFigures | null;
  /** The replay (startup) process's CPU and run-queue wait, seconds: over the timed replay (live), over its life as last read (crash modes). */
  replayCpuS?: number;
  replayRunqueueWaitS?: number;
}

export interface VariantSummary {
  variant: VariantName;
  runs: RunResult[];
  median: number;
  min: number;
  max: number;
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

export function summarize(results: RunResult[], order: readonly VariantName[]): VariantSummary[] {
  const out: VariantSummary[] = [];
  for (const variant of order) {
    const runs = results.filter((r) => r.variant === variant);
    if (!runs.length) continue;
    const secs = runs.map((r) => r.seconds);
    out.push({ variant, runs, median: median(secs), min: Math.min(...secs), max: Math.max(...secs) });
  }
  return out;
}

const f = (x: number, digits = 2): string => x.toFixed(digits);
const mb = (bytes: number): string => (bytes / 1048576).toFixed(1);

/** The main table: replay time per variant and as a multiple of `cached`. */
export function replayTable(summaries: VariantSummary[]): string {
  const cached = summaries.find((s) => s.variant === 'cached')?.median;
  const lines = [
    '| variant | replay s (median) | min-max s | x cached | replay misses (median) | replay WILLNEEDs (median) | table resident at start |',
    '|---|---:|---:|---:|---:|---:|---:|',
  ];
  for (const s of summaries) {
    const ratio = cached ? `${f(s.median / cached)}x` : 'n/a';
    const misses = median(s.runs.map((r) => r.standbyMisses));
    const willneed = median(s.runs.map((r) => r.standbyWillneed));
    const resident = median(s.runs.map((r) => r.residentFraction));
    lines.push(`| ${s.variant} | ${f(s.median)} | ${f(s.min)}-${f(s.max)} | ${ratio} | ${Math.round(misses)} | ${Math.round(willneed)} | ${f(resident * 100, 1)}% |`);
  }
  return lines.join('\n');
}

/**
 * With an IOPS cap, the limit no prefetcher can beat: max(all cached, pages /
 * IOPS), pages being the most any variant brought in from the volume (cold
 * replay's misses, builtin's WILLNEEDs, the sidecar's hints).
 */
export function iopsLimit(summaries: VariantSummary[], iops: number): string | null {
  if (iops <= 0) return null;
  const cached = summaries.find((s) => s.variant === 'cached')?.median;
  let pages = 0;
  for (const s of summaries) {
    if (s.variant === 'cached') continue;
    for (const r of s.runs) pages = Math.max(pages, r.standbyMisses, r.standbyWillneed, r.agent?.prefaultsIssued ?? 0);
  }
  const io = pages / iops;
  const limit = Math.max(cached ?? 0, io);
  const rows = summaries.map((s) => `${s.variant} ${f(s.median / limit)}x`).join(', ');
  return `Volume capped at ${iops} IOPS: the limit is max(all cached ${cached === undefined ? 'n/a (not run)' : `${f(cached)} s`}, ${pages} pages / ${iops} IOPS = ${f(io)} s) = **${f(limit)} s**; medians as a multiple of it: ${rows}.`;
}

/** The sidecar's cost, per variant that ran it. */
export function agentTable(summaries: VariantSummary[]): string {
  const lines = [
    '| variant | WAL decoded MB (metric) | WAL MB/s over replay | CPU s during replay | of which event loop s | of which other threads s | CPU % of one core | CPU % per 10 MB/s WAL | event loop % per 10 MB/s WAL | user space % per 10 MB/s WAL | CPU us per record | records | prefaults | CPU s whole life | peak RSS MB | first prefault s | burst read by s | threads | agent misses | exit |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|',
  ];
  for (const s of summaries) {
    for (const r of s.runs) {
      const a = r.agent;
      if (!a) continue;
      const walBytes = a.walBytesMetric ?? r.walBytes;
      const mbPerS = walBytes / 1048576 / r.seconds;
      const corePct = (a.cpuSeconds / r.seconds) * 100;
      const per10 = mbPerS > 0 ? corePct / (mbPerS / 10) : NaN;
      const main = a.threadCpu?.main;
      const mainPer10 = main === undefined || !(mbPerS > 0) ? null : ((main / r.seconds) * 100) / (mbPerS / 10);
      const userPer10 = a.userSeconds === undefined || !(mbPerS > 0) ? null : ((a.userSeconds / r.seconds) * 100) / (mbPerS / 10);
      lines.push(
        `| ${s.variant} #${r.rep} | ${a.walBytesMetric === null ? `n/a (burst ${mb(r.walBytes)})` : mb(a.walBytesMetric)} | ${f(mbPerS)} | ${f(a.cpuSeconds)} | ${main === undefined ? 'n/a' : f(main)} | ${main === undefined ? 'n/a' : f(Math.max(0, a.cpuSeconds - main))} | ${f(corePct, 1)}% | ${f(per10, 1)}% | ${mainPer10 === null ? 'n/a' : `${f(mainPer10, 1)}%`} | ${userPer10 === null ? 'n/a' : `${f(userPer10, 1)}%`} | ${a.records ? f((a.cpuSeconds / a.records) * 1e6, 1) : 'n/a'} | ${a.records ?? 'n/a'} | ${a.prefaultsIssued ?? 'n/a'} | ${f(a.cpuSecondsTotal)} | ${mb(a.peakRssBytes)} | ${a.firstPrefaultS === null ? 'none' : f(a.firstPrefaultS)} | ${a.readEndS === null ? 'n/a' : f(a.readEndS)} | ${a.threads} | ${a.misses} | ${a.exit} |`,
      );
    }
  }
  return lines.length > 2 ? lines.join('\n') : '';
}

/** Every run, for the record. */
export function runsTable(results: RunResult[]): string {
  const lines = [
    '| variant | rep | replay s | standby start s | burst WAL MB | table resident at start | replay misses | replay WILLNEEDs | replay process CPU s | replay process run-queue wait s |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const r of results) {
    lines.push(`| ${r.variant} | ${r.rep} | ${f(r.seconds)} | ${f(r.startupSeconds)} | ${mb(r.walBytes)} | ${f(r.residentFraction * 100, 1)}% | ${r.standbyMisses} | ${r.standbyWillneed} | ${r.replayCpuS === undefined ? 'n/a' : f(r.replayCpuS)} | ${r.replayRunqueueWaitS === undefined ? 'n/a' : f(r.replayRunqueueWaitS)} |`);
  }
  return lines.join('\n');
}

/** The product's targets, checked against one mode's figures. */
export function targetsTable(summaries: VariantSummary[], variant: VariantName = 'prefaulter'): string {
  const by = (v: VariantName): VariantSummary | undefined => summaries.find((s) => s.variant === v);
  const p = by(variant);
  if (!p) return '';
  const rows: string[] = ['| target | measured | met |', '|---|---:|---|'];
  const cached = by('cached');
  if (cached) {
    const r = p.median / cached.median;
    rows.push(`| replay <= 1.5x cached | ${f(r)}x | ${r <= 1.5 ? 'yes' : 'no'} |`);
  }
  const tuned = by('builtin-tuned');
  if (tuned) {
    const r = tuned.median / p.median;
    rows.push(`| >= 2x faster than builtin-tuned | ${f(r)}x | ${r >= 2 ? 'yes' : 'no'} |`);
  }
  const builtin = by('builtin');
  if (builtin) {
    const r = builtin.median / p.median;
    rows.push(`| >= 5x faster than builtin | ${f(r)}x | ${r >= 5 ? 'yes' : 'no'} |`);
  }
  const cold = by('cold');
  if (cold) rows.push(`| (for reference) faster than cold | ${f(cold.median / p.median)}x | |`);
  const per10 = median(
    p.runs
      .filter((r) => r.agent)
      .map((r) => {
        const a = r.agent!;
        const mbPerS = (a.walBytesMetric ?? r.walBytes) / 1048576 / r.seconds;
        return ((a.cpuSeconds / r.seconds) * 100) / (mbPerS / 10);
      }),
  );
  rows.push(`| CPU <= 10% of a core per 10 MB/s of WAL | ${f(per10, 0)}% | ${per10 <= 10 ? 'yes' : 'no'} |`);
  const rss = Math.max(...p.runs.map((r) => r.agent?.peakRssBytes ?? 0)) / 1048576;
  rows.push(`| peak RSS <= 150 MB | ${f(rss, 0)} MB (max) | ${rss <= 150 ? 'yes' : 'no'} |`);
  return rows.join('\n');
}
