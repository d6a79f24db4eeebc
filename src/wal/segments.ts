// WAL segment files: names (TTTTTTTTXXXXXXXXYYYYYYYY), listing a pg_wal directory,
// and reading an LSN range of one timeline from its segment files.
import { open, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { PAGE_MAGIC_BY_VERSION, XLP_LONG_HEADER } from './format.ts';

const DEFAULT_SEGMENT_SIZE = 16 * 1024 * 1024;
const SEGMENT_NAME = /^([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})$/;

export interface SegmentFile {
  path: string;
  timeline: number;
  segNo: bigint;
}

/** "000000010000000200000003" -> timeline 1, segNo of log 2 seg 3 (the split depends on the segment size). */
export function parseSegmentName(name: string, segmentSize: number = DEFAULT_SEGMENT_SIZE): { timeline: number; segNo: bigint } | null {
  const m = SEGMENT_NAME.exec(name);
  if (!m) return null;
  const perId = 0x100000000n / BigInt(segmentSize);
  const seg = BigInt(`0x${m[3]}`);
  if (seg >= perId) return null;
  return { timeline: parseInt(m[1]!, 16), segNo: BigInt(`0x${m[2]}`) * perId + seg };
}

export function segmentName(timeline: number, segNo: bigint, segmentSize: number = DEFAULT_SEGMENT_SIZE): string {
  const perId = 0x100000000n / BigInt(segmentSize);
  return hex8(BigInt(timeline)) + hex8(segNo / perId) + hex8(segNo % perId);
}

function hex8(n: bigint): string {
  return n.toString(16).toUpperCase().padStart(8, '0');
}

/** Segment files of a pg_wal directory (no .partial, history or backup files), by segNo then timeline. */
export async function listSegments(pgWalDir: string, segmentSize: number = DEFAULT_SEGMENT_SIZE): Promise<SegmentFile[]> {
  const names = await readdir(pgWalDir);
  const out: SegmentFile[] = [];
  for (const name of names) {
    const p = parseSegmentName(name, segmentSize);
    if (p) out.push({ path: join(pgWalDir, name), ...p });
  }
  out.sort((a, b) => (a.segNo < b.segNo ? -1 : a.segNo > b.segNo ? 1 : a.timeline - b.timeline));
  return out;
}

/**
 * The segment size a WAL file declares in its first page's long header (xlp_seg_size),
 * or null when the file does not start with a valid long page header.
 */
export async function segmentSizeOf(path: string): Promise<number | null> {
  const fh = await open(path, 'r');
  try {
    const buf = Buffer.alloc(40);
    const { bytesRead } = await fh.read(buf, 0, 40, 0);
    if (bytesRead < 40 || !PAGE_MAGIC_BY_VERSION.has(buf.readUInt16LE(0))) return null;
    if (!(buf.readUInt16LE(2) & XLP_LONG_HEADER)) return null;
    return buf.readUInt32LE(32);
  } finally {
    await fh.close();
  }
}

export interface ReadWalRangeOptions {
  /** the pg_wal directory */
  dir: string;
  timeline: number;
  /** first byte wanted */
  start: bigint;
  /** first byte not wanted; default: as far as consecutive segment files go */
  end?: bigint;
  segmentSize?: number;
  /** bytes per yielded chunk (default 1 MiB) */
  chunkSize?: number;
}

/**
 * Reads [start, end) of one timeline's WAL from its segment files, in order, and stops
 * at the first segment file that is missing or short. Each chunk says where it starts.
 * A segment still being written is read as it is on disk (its unwritten tail is zeros,
 * which WalDecoder treats as the end of WAL).
 */
export async function* readWalRange(opts: ReadWalRangeOptions): AsyncGenerator<{ lsn: bigint; data: Buffer }> {
  const segSize = opts.segmentSize ?? DEFAULT_SEGMENT_SIZE;
  const segBig = BigInt(segSize);
  const chunkSize = opts.chunkSize ?? 1024 * 1024;
  let lsn = opts.start;
  while (opts.end === undefined || lsn < opts.end) {
    const segNo = lsn / segBig;
    const path = join(opts.dir, segmentName(opts.timeline, segNo, segSize));
    let fh;
    try {
      fh = await open(path, 'r');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw new Error(`cannot open WAL segment ${path}: ${(e as Error).message}`);
    }
    try {
      const segEnd = (segNo + 1n) * segBig;
      const stop = opts.end !== undefined && opts.end < segEnd ? opts.end : segEnd;
      while (lsn < stop) {
        const want = Number(stop - lsn < BigInt(chunkSize) ? stop - lsn : BigInt(chunkSize));
        const buf = Buffer.allocUnsafe(want);
        const { bytesRead } = await fh.read(buf, 0, want, Number(lsn % segBig));
        if (bytesRead === 0) return;
        yield { lsn, data: bytesRead === want ? buf : buf.subarray(0, bytesRead) };
        lsn += BigInt(bytesRead);
        if (bytesRead < want) return;
      }
    } finally {
      await fh.close();
    }
  }
}
