// `decode --stats` on several cores: the segment files are cut into parts at segment
// boundaries and each part after the first is decoded on a worker thread. A part starts
// at its first segment's first page (the tail of the record spanning into it skipped, as
// after reset()) and the part before it decodes that spanning record, stopping at the
// first record at or after the boundary, which must be the next part's first record.
// Any problem (damage, a gap, parts that do not meet) gives null: the caller decodes
// everything again in one pass, which reports it exactly as it always has.
// Not the default: each part pays a worker's start-up, a cold JIT and its own segment
// buffers (about 1.3x the CPU of one pass), which only pays off on idle cores
// (docs/benchmarks-decode.md).
import { Worker } from 'node:worker_threads';
import { decodeFiles, type DecodeOutcome, type DecodeRange } from './decode-files.ts';
import { RmgrCounts, type StatsRow } from './decode-stats.ts';

export interface StatsPart {
  outcome: DecodeOutcome;
  rows: StatsRow[];
}


/** One part's counts; the first problem stops it (the caller falls back to one pass). */
export async function statsPart(range: DecodeRange): Promise<StatsPart> {
  const counts = new RmgrCounts();
  const outcome = await decodeFiles(range, {
    record: (r) => {
      counts.add(r);
      return undefined;
    },
    problem: () => false,
    fileDone: async () => false,
  });
  return { outcome, rows: counts.rows() };
}

/**
 * The counts of range decoded in up to `jobs` parts, or null when it is not cut (fewer
 * than 2 parts of a segment file or more, a gap) or the parts do not join up cleanly.
 */
export async function parallelStats(range: DecodeRange, jobs: number): Promise<RmgrCounts | null> {
  const seg = BigInt(range.segSize);
  const files = range.end === null ? range.files : range.files.filter((f) => f.segNo * seg < range.end!);
  const parts = Math.min(jobs, files.length);
  if (parts < 2) return null;
  for (let i = 1; i < files.length; i++) if (files[i]!.segNo !== files[i - 1]!.segNo + 1n) return null;
  const firsts = Array.from({ length: parts }, (_, p) => Math.floor((p * files.length) / parts));
  const ranges: DecodeRange[] = firsts.map((a, p) => {
    const last = p === parts - 1;
    const next = firsts[p + 1]!;
    return {
      ...range,
      // the part before a boundary also needs the next file, for the record spanning into it
      files: last ? range.files.slice(a) : files.slice(a, next + 1),
      start: p === 0 ? range.start : files[a]!.segNo * seg,
      end: last ? range.end : files[next]!.segNo * seg,
    };
  });
  const results = await Promise.all(ranges.map((r, p) => (p === 0 ? statsPart(r) : onWorker(r))));
  const counts = new RmgrCounts();
  for (let p = 0; p < parts; p++) {
    const part = results[p];
    if (!part || part.outcome.problems > 0) return null;
    counts.merge(part.rows);
    // One pass stops where written WAL ends (a preallocated or recycled segment follows): so do we.
    if (part.outcome.endOfWal) return counts;
    if (p < parts - 1 && (part.outcome.stopLsn === null || part.outcome.stopLsn !== results[p + 1]?.outcome.firstLsn)) return null;
  }
  return counts;
}

/** statsPart on a worker thread; null if the worker fails. */
function onWorker(range: DecodeRange): Promise<StatsPart | null> {
  return new Promise((resolve) => {
    let worker: Worker;
    try {
      worker = new Worker(workerUrl(), { workerData: range });
    } catch {
      resolve(null);
      return;
    }
    worker.once('message', (m: StatsPart) => resolve(m));
    worker.once('error', () => resolve(null));
    worker.once('exit', () => resolve(null)); // after a message this changes nothing
  });
}

/** The worker's module; from a source checkout (tsx) it registers the TypeScript loader first. */
function workerUrl(): URL {
  const here = import.meta.url;
  if (!here.endsWith('.ts')) return new URL('./decode-stats-worker.js', here);
  const target = new URL('./decode-stats-worker.ts', here).href;
  const code = `import { register } from ${JSON.stringify(import.meta.resolve('tsx/esm/api'))}; register(); await import(${JSON.stringify(target)});`;
  return new URL(`data:text/javascript,${encodeURIComponent(code)}`);
}
