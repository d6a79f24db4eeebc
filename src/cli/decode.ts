// `pg-prefaulter decode`: decodes WAL segment files (or a pg_wal directory) and prints
// one line per record (text or ndjson) or a per-rmgr summary (--stats).
import { stat } from 'node:fs/promises';
import { basename } from 'node:path';
import { ArgError, parseOptions } from '../args.ts';
import { WalDecoder, formatLsn, isDecodeError, parseLsn, parseSegmentName, listSegments, readSegmentFile, segmentSizeOf, FORK_NAMES, type WalRecord, type SegmentFile } from '../wal/index.ts';

const HELP = `Usage: pg-prefaulter decode [--start LSN] [--end LSN] [--format text|ndjson] [--stats] [--block-size N] PATH...

Decodes PostgreSQL 13-18 WAL. PATH is a pg_wal directory or WAL segment files.
  --start LSN          first record to print (a record or page start; default: the
                       first record of the first segment)
  --end LSN            stop before the first record starting at or after LSN
  --format text|ndjson one line per record (default text)
  --stats              per resource manager summary instead of records
  --block-size N       the cluster's BLCKSZ (SHOW block_size), which full-page
                       images are checked against (default 8192)
Exit status: 0 decoded, 1 decode errors (on stderr with their LSN), 2 bad usage.
`;

interface Args {
  start: bigint | null;
  end: bigint | null;
  format: 'text' | 'ndjson';
  stats: boolean;
  blockSize: number;
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
  const args: Args = { start: lsnFlag('--start', values.start), end: lsnFlag('--end', values.end), format, stats: values.stats ?? false, blockSize, paths: positionals };
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

interface RmgrStats {
  records: number;
  bytes: number;
  blocks: number;
  images: number;
}

function statsTable(stats: Map<string, RmgrStats>): string[] {
  const total: RmgrStats = { records: 0, bytes: 0, blocks: 0, images: 0 };
  for (const s of stats.values()) {
    total.records += s.records;
    total.bytes += s.bytes;
    total.blocks += s.blocks;
    total.images += s.images;
  }
  const pct = (n: number, d: number): string => `(${d ? ((100 * n) / d).toFixed(2) : '0.00'}%)`.padStart(9);
  const lines = [`${'Type'.padEnd(20)} ${'N'.padStart(10)} ${'(%)'.padStart(9)} ${'Bytes'.padStart(14)} ${'(%)'.padStart(9)} ${'Block refs'.padStart(11)} ${'FPIs'.padStart(9)}`];
  lines.push(`${'----'.padEnd(20)} ${'-'.padStart(10)} ${'---'.padStart(9)} ${'-----'.padStart(14)} ${'---'.padStart(9)} ${'----------'.padStart(11)} ${'----'.padStart(9)}`);
  const row = (name: string, s: RmgrStats): string =>
    `${name.padEnd(20)} ${String(s.records).padStart(10)} ${pct(s.records, total.records)} ${String(s.bytes).padStart(14)} ${pct(s.bytes, total.bytes)} ${String(s.blocks).padStart(11)} ${String(s.images).padStart(9)}`;
  for (const [name, s] of [...stats.entries()].sort((a, b) => b[1].bytes - a[1].bytes)) lines.push(row(name, s));
  lines.push(row('Total', total));
  return lines;
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
  const out = new Out();
  const stats = new Map<string, RmgrStats>();
  const byRmgr: (RmgrStats | undefined)[] = [];
  let errors = 0;
  const firstStart = args.start ?? files[0]!.segNo * segBig;
  const decoder = new WalDecoder({ startLsn: firstStart, segmentSize: segSize, blockSize: args.blockSize });
  let expectSeg = files[0]!.segNo;
  let done = false;
  let endOfWal = false;
  // Segment buffers are reused once the decoder is past their last byte (it reads a pushed
  // chunk in place until then): 16 MiB fresh from the kernel for every file cost page
  // faults and full GCs (external memory) for nothing.
  const spare: Buffer[] = [];
  const inUse: { buf: Buffer; end: bigint }[] = [];
  const recycle = (): void => {
    const decoded = decoder.nextRecordLsn;
    for (let k = inUse.length - 1; k >= 0; k--) {
      if (inUse[k]!.end <= decoded) spare.push(inUse.splice(k, 1)[0]!.buf);
    }
  };
  // Read the next file while decoding this one.
  const read = (i: number): Promise<Buffer> | null => {
    const f = files[i];
    if (!f) return null;
    const p = readSegmentFile(f.path, spare.pop());
    p.catch(() => {}); // awaited (and reported) in turn
    return p;
  };
  let reading = read(0);
  for (let i = 0; i < files.length; i++) {
    const f = files[i]!;
    if (done || endOfWal || out.closed) break;
    if (f.segNo !== expectSeg) {
      process.stderr.write(`pg-prefaulter decode: WAL segments ${expectSeg.toString(16).toUpperCase()} to ${(f.segNo - 1n).toString(16).toUpperCase()} are missing; continuing at ${f.path}\n`);
      errors++;
      decoder.reset(f.segNo * segBig);
    }
    expectSeg = f.segNo + 1n;
    let data: Buffer;
    try {
      data = await reading!;
      inUse.push({ buf: data, end: f.segNo * segBig + BigInt(data.length) });
      recycle();
      reading = read(i + 1);
    } catch (e) {
      process.stderr.write(`pg-prefaulter decode: cannot read ${f.path}: ${(e as Error).message}\n`);
      return 1;
    }
    const fileStart = f.segNo * segBig;
    const fileEnd = fileStart + BigInt(data.length);
    if (decoder.inputLsn < fileStart) {
      process.stderr.write(`pg-prefaulter decode: WAL ends at ${formatLsn(decoder.inputLsn)} before the segment boundary (short segment file?); continuing at ${f.path}\n`);
      errors++;
      decoder.reset(fileStart);
    }
    const skip = Number(decoder.inputLsn - fileStart);
    if (skip > 0) data = data.subarray(Math.min(skip, data.length));
    decoder.push(data);
    for (let r = decoder.next(); r !== null; r = decoder.next()) {
      if (isDecodeError(r)) {
        errors++;
        process.stderr.write(`pg-prefaulter decode: error at ${formatLsn(r.lsn)}: ${r.message}\n`);
        continue;
      }
      if (args.end !== null && r.lsn >= args.end) {
        done = true;
        break;
      }
      if (args.stats) {
        let s = byRmgr[r.rmgr];
        if (!s) stats.set(r.rmgrName, (s = byRmgr[r.rmgr] = { records: 0, bytes: 0, blocks: 0, images: 0 }));
        s.records++;
        s.bytes += r.totalLength;
        s.blocks += r.blocks.length;
        for (const b of r.blocks) if (b.hasImage) s.images++;
      } else {
        out.line(args.format === 'ndjson' ? recordNdjson(r) : recordText(r));
        if (out.full) await out.flush();
      }
    }
    await out.flush();
    // The decoder rewinds its input to the first unwritten byte: WAL ends inside this file.
    if (decoder.inputLsn < fileEnd) endOfWal = true;
  }
  if (!done && !endOfWal && !out.closed && decoder.bufferedBytes > 0) {
    errors++;
    process.stderr.write(`pg-prefaulter decode: error at ${formatLsn(decoder.nextRecordLsn)}: the WAL given ends inside a record (${decoder.bufferedBytes} bytes of it present)\n`);
  }
  if (args.stats) for (const l of statsTable(stats)) out.line(l);
  await out.flush(true);
  return errors ? 1 : 0;
}
