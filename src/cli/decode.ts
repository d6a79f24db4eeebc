// `pg-prefaulter decode`: decodes WAL segment files (or a pg_wal directory) and prints
// one line per record (text or ndjson) or a per-rmgr summary (--stats).
import { stat } from 'node:fs/promises';
import { basename } from 'node:path';
import { ArgError, parseOptions } from '../args.ts';
import { formatLsn, parseLsn, parseSegmentName, listSegments, segmentSizeOf, FORK_NAMES, type WalRecord, type SegmentFile } from '../wal/index.ts';
import { decodeFiles, type DecodeRange } from './decode-files.ts';
import { parallelStats } from './decode-parallel.ts';
import { RmgrCounts } from './decode-stats.ts';

const HELP = `Usage: pg-prefaulter decode [--start LSN] [--end LSN] [--format text|ndjson] [--stats] [--jobs N] [--block-size N] PATH...

Decodes PostgreSQL 13-18 WAL. PATH is a pg_wal directory or WAL segment files.
  --start LSN          first record to print (a record or page start; default: the
                       first record of the first segment)
  --end LSN            stop before the first record starting at or after LSN
  --format text|ndjson one line per record (default text)
  --stats              per resource manager summary instead of records
  --block-size N       the cluster's BLCKSZ (SHOW block_size), which full-page
                       images are checked against (default 8192)
  --jobs N             --stats: decode N parts of the range at once, on worker
                       threads (default 1: one pass; more costs ~1.3x the CPU
                       and shortens wall time only on idle cores)
Exit status: 0 decoded, 1 decode errors (on stderr with their LSN), 2 bad usage.
`;

interface Args {
  start: bigint | null;
  end: bigint | null;
  format: 'text' | 'ndjson';
  stats: boolean;
  blockSize: number;
  /** --stats: parts decoded at once */
  jobs: number;
  paths: string[];
}

class UsageError extends Error {}

function parseArgs(argv: string[]): Args | 'help' {
  let parsed;
  try {
    parsed = parseOptions(argv, {
      start: { type: 'string' },
      end: { type: 'string' },
      format: { type: 'string' },
      stats: { type: 'boolean' },
      'block-size': { type: 'string' },
      jobs: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    }, { positionals: true });
  } catch (e) {
    throw e instanceof ArgError ? new UsageError(e.message) : e;
  }
  const { values, positionals } = parsed;
  if (values.help) return 'help';
  const format = values.format ?? 'text';
  if (format !== 'text' && format !== 'ndjson') throw new UsageError(`--format "${format}": use text or ndjson`);
  const blockSize = Number(values['block-size'] ?? 8192);
  // PostgreSQL's configure accepts 1, 2, 4, 8, 16 and 32 kB
  if (![1024, 2048, 4096, 8192, 16384, 32768].includes(blockSize)) {
    throw new UsageError(`--block-size "${values['block-size']}": use 1024, 2048, 4096, 8192, 16384 or 32768`);
  }
  const jobs = Number(values.jobs ?? 1);
  if (!Number.isInteger(jobs) || jobs < 1 || jobs > 64) throw new UsageError(`--jobs "${values.jobs}": use a whole number from 1 to 64`);
  const args: Args = {
    start: lsnFlag('--start', values.start),
    end: lsnFlag('--end', values.end),
    format,
    stats: values.stats ?? false,
    blockSize,
    jobs,
    paths: positionals,
  };
  if (args.paths.length === 0) throw new UsageError('no PATH given: name a pg_wal directory or WAL segment files');
  if (args.start !== null && args.end !== null && args.end <= args.start) {
    throw new UsageError(`--end ${formatLsn(args.end)} is not after --start ${formatLsn(args.start)}`);
  }
  return args;
}

function lsnFlag(flag: string, text: string | undefined): bigint | null {
  if (text === undefined) return null;
  try {
    return parseLsn(text);
  } catch (e) {
    throw new UsageError(`${flag}: ${(e as Error).message}`);
  }
}

/** Segment files named by the paths, their segment size (from the first file's long page header). */
async function collectSegments(paths: string[]): Promise<{ files: SegmentFile[]; segSize: number }> {
  const names: { path: string; dir: boolean }[] = [];
  for (const p of paths) {
    let st;
    try {
      st = await stat(p);
    } catch (e) {
      throw new UsageError(`cannot read "${p}": ${(e as Error).message}`);
    }
    if (st.isDirectory()) names.push({ path: p, dir: true });
    else if (parseSegmentName(basename(p))) names.push({ path: p, dir: false });
    else throw new UsageError(`"${p}" is neither a directory nor a WAL segment file (named like 000000010000000000000001)`);
  }
  // The segment size decides how names map to segment numbers: read it from a file first.
  let segSize: number | null = null;
  for (const n of names) {
    const first = n.dir ? (await listSegments(n.path))[0]?.path : n.path;
    if (first) {
      segSize = await segmentSizeOf(first);
      if (segSize === null) throw new UsageError(`"${first}" does not start with a WAL long page header of PostgreSQL 13-18`);
      break;
    }
  }
  if (segSize === null) throw new UsageError(`no WAL segment files in ${paths.join(', ')}`);
  const files: SegmentFile[] = [];
  for (const n of names) {
    if (n.dir) files.push(...(await listSegments(n.path, segSize)));
    else files.push({ path: n.path, ...parseSegmentName(basename(n.path), segSize)! });
  }
  files.sort((a, b) => (a.segNo < b.segNo ? -1 : a.segNo > b.segNo ? 1 : a.timeline - b.timeline));
  // For a segment present on several timelines (after a promotion) the newest timeline wins.
  const bySeg: SegmentFile[] = [];
  for (const f of files) {
    const last = bySeg[bySeg.length - 1];
    if (last && last.segNo === f.segNo) bySeg[bySeg.length - 1] = f;
    else bySeg.push(f);
  }
  return { files: bySeg, segSize };
}

/**
 * Buffered stdout that respects backpressure and stops quietly when the reader goes away
 * (| head). Lines are written into byte buffers as they come, so each line's string dies
 * young (holding a megabyte of strings for a join made the GC half of the work).
 */
class Out {
  private static readonly CHUNK = 256 * 1024;
  private done: Buffer[] = [];
  private buf = Buffer.allocUnsafe(Out.CHUNK);
  private pos = 0;
  closed = false;
  constructor() {
    process.stdout.on('error', () => {
      this.closed = true;
    });
  }
  line(s: string): void {
    if (this.pos + s.length * 3 + 1 > this.buf.length) {
      if (this.pos > 0) this.done.push(this.buf.subarray(0, this.pos));
      this.buf = Buffer.allocUnsafe(Math.max(Out.CHUNK, s.length * 3 + 1));
      this.pos = 0;
    }
    this.pos += this.buf.write(s, this.pos, 'utf8');
    this.buf[this.pos++] = 0x0a;
  }
  /** A full chunk is waiting: flush() now, so memory does not grow with the input. */
  get full(): boolean {
    return this.done.length > 0;
  }
  async flush(force = false): Promise<void> {
    if (force && this.pos > 0) {
      this.done.push(this.buf.subarray(0, this.pos));
      this.buf = Buffer.allocUnsafe(Out.CHUNK);
      this.pos = 0;
    }
    const chunks = this.done;
    this.done = [];
    if (this.closed || chunks.length === 0) return;
    if (!process.stdout.write(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks))) {
      // a reader that goes away (| head) never drains: stop waiting on error/close too
      await new Promise<void>((res) => {
        const done = (): void => {
          process.stdout.off('drain', done).off('error', done).off('close', done);
          res();
        };
        process.stdout.once('drain', done).once('error', done).once('close', done);
      });
    }
  }
}

function recordNdjson(r: WalRecord): string {
  let s = `{"lsn":"${formatLsn(r.lsn)}","rmgr":"${r.rmgrName}","info":${r.info},"len":${r.totalLength},"blocks":[`;
  for (let i = 0; i < r.blocks.length; i++) {
    const b = r.blocks[i]!;
    s += `${i ? ',' : ''}{"id":${b.id},"spc":${b.spcOid},"db":${b.dbOid},"rel":${b.relNumber},"fork":"${FORK_NAMES[b.fork] ?? b.fork}","blk":${b.block},"image":${b.hasImage},"apply":${b.applyImage},"willInit":${b.willInit}}`;
  }
  return `${s}]}`;
}

function recordText(r: WalRecord): string {
  let s = `rmgr: ${r.rmgrName.padEnd(11)} len: ${String(r.totalLength).padStart(6)}, tx: ${String(r.xid).padStart(10)}, lsn: ${formatLsn(r.lsn)}, prev ${formatLsn(r.prevLsn)}, info 0x${r.info.toString(16).toUpperCase().padStart(2, '0')}`;
  for (const b of r.blocks) {
    s += `, blkref #${b.id}: rel ${b.spcOid}/${b.dbOid}/${b.relNumber}${b.fork ? ` fork ${FORK_NAMES[b.fork] ?? b.fork}` : ''} blk ${b.block}`;
    if (b.hasImage) s += b.applyImage ? ' FPW' : ' FPW (not applied)';
    if (b.willInit) s += ' (init)';
  }
  for (const e of r.events) s += `; ${JSON.stringify(e)}`;
  return s;
}

export default async function decodeCommand(argv: string[]): Promise<number> {
  let args: Args;
  let segs: { files: SegmentFile[]; segSize: number };
  try {
    const parsed = parseArgs(argv);
    if (parsed === 'help') {
      process.stdout.write(HELP);
      return 0;
    }
    args = parsed;
    segs = await collectSegments(args.paths);
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`pg-prefaulter decode: ${e.message}\n\n${HELP}`);
      return 2;
    }
    throw e;
  }
  const { segSize } = segs;
  const segBig = BigInt(segSize);
  let files = segs.files;
  if (args.start !== null) {
    const startSeg = args.start / segBig;
    files = files.filter((f) => f.segNo >= startSeg);
    if (files[0]?.segNo !== startSeg) {
      process.stderr.write(`pg-prefaulter decode: --start ${formatLsn(args.start)} is in segment ${startSeg.toString(16).toUpperCase()}, which none of the given paths holds\n`);
      return 2;
    }
  }
  const range: DecodeRange = { files, segSize, blockSize: args.blockSize, start: args.start ?? files[0]!.segNo * segBig, end: args.end };
  const out = new Out();
  if (args.stats) {
    const parallel = args.jobs > 1 ? await parallelStats(range, args.jobs) : null;
    if (parallel) {
      for (const l of parallel.table()) out.line(l);
      await out.flush(true);
      return 0;
    }
  }
  const counts = new RmgrCounts();
  const outcome = await decodeFiles(range, {
    record: (r) => {
      if (args.stats) counts.add(r);
      else {
        out.line(args.format === 'ndjson' ? recordNdjson(r) : recordText(r));
        if (out.full) return out.flush();
      }
      return undefined;
    },
    problem: (message) => {
      process.stderr.write(`pg-prefaulter decode: ${message}\n`);
      return true;
    },
    fileDone: async () => {
      await out.flush();
      return out.closed;
    },
  });
  if (outcome.readFailed) return 1;
  if (args.stats) for (const l of counts.table()) out.line(l);
  await out.flush(true);
  return outcome.problems ? 1 : 0;
}
