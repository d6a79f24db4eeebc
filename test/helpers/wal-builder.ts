// Builds legal WAL byte for byte (page headers, records spanning pages, CRC-32C)
// for tests and fuzz seeds that need WAL no server wrote: records of any size up
// to XLogRecordMaxSize, streamed page by page so a 1 GiB record never sits in
// memory. Layout per xlog_internal.h / xlogrecord.h.
import { CRC32C_INIT, crc32cFinish, crc32cUpdate } from '../../src/wal/crc32c.ts';

export const PG17_MAGIC = 0xd116;
const XLP_FIRST_IS_CONTRECORD = 0x0001;
const XLP_LONG_HEADER = 0x0002;
const RM_XLOG_ID = 0;
const RM_HEAP_ID = 10;
const XLOG_NOOP = 0x20;
const XLOG_HEAP_INSERT = 0x00;

export interface BlockSpec {
  spcOid: number;
  dbOid: number;
  relNumber: number;
  block: number;
}

export interface RecordSpec {
  rmgr?: number;
  info?: number;
  xid?: number;
  blocks?: BlockSpec[];
  /** main data: given bytes, or this many copies of fillByte (any size: streamed, never allocated whole) */
  mainData?: Buffer | number;
  fillByte?: number;
}

export interface WalBuilderOptions {
  /** a page boundary */
  startLsn: bigint;
  /** LSN of the record before startLsn (xl_prev of the first record); default startLsn - 8 ... must be below startLsn */
  prevLsn?: bigint;
  systemId?: bigint;
  timeline?: number;
  magic?: number;
  segmentSize?: number;
  pageSize?: number;
}

/** A heap-insert-shaped record touching the given blocks (no block data, no image). */
export function heapRecord(blocks: BlockSpec[], xid = 1000): RecordSpec {
  return { rmgr: RM_HEAP_ID, info: XLOG_HEAP_INSERT, xid, blocks, mainData: Buffer.alloc(3, 1) };
}

/** An XLOG_NOOP record carrying n bytes of main data (what pg_logical_emit_message-sized records look like to us). */
export function noopRecord(n: number, fillByte = 0x5a): RecordSpec {
  return { rmgr: RM_XLOG_ID, info: XLOG_NOOP, mainData: n, fillByte };
}

/**
 * Writes WAL from startLsn on. Full pages go to onPage as they fill (the buffer is
 * reused: copy it if you keep it); flushPartial() hands out the written part of the
 * current page, as a walsender sends WAL up to its flush position.
 */
export class WalBuilder {
  readonly pageSize: number;
  readonly segmentSize: number;
  private readonly magic: number;
  private readonly sysid: bigint;
  private readonly tli: number;
  private page: Buffer;
  private pageLsn: bigint;
  private off = 0; // write position in page
  private flushedOff = 0; // bytes of this page already handed out by flushPartial
  private prev: bigint;
  private recordLeft = 0; // bytes of the current record still to write (for xlp_rem_len)

  constructor(
    opts: WalBuilderOptions,
    private readonly onPage: (bytes: Buffer) => void,
  ) {
    this.pageSize = opts.pageSize ?? 8192;
    this.segmentSize = opts.segmentSize ?? 16 * 1024 * 1024;
    this.magic = opts.magic ?? PG17_MAGIC;
    this.sysid = opts.systemId ?? 7_300_000_000_000_000_001n;
    this.tli = opts.timeline ?? 1;
    if (opts.startLsn % BigInt(this.pageSize) !== 0n) throw new Error('WalBuilder: startLsn must be a page boundary');
    this.prev = opts.prevLsn ?? 0n;
    this.page = Buffer.alloc(this.pageSize);
    this.pageLsn = opts.startLsn;
    this.startPage();
  }

  /** LSN of the next byte written. */
  get lsn(): bigint {
    return this.pageLsn + BigInt(this.off);
  }

  /** Appends one record; returns its LSN. */
  add(spec: RecordSpec): bigint {
    const it = this.addStreaming(spec);
    for (let r = it.next(); ; r = it.next()) if (r.done) return r.value;
  }

  /**
   * add(), pausing (yielding) after every `slice` bytes of main data, so the
   * pages of a huge record can be sent as they are produced.
   */
  *addStreaming(spec: RecordSpec, slice = Infinity): Generator<void, bigint> {
    if (this.off % 8) this.pad(8 - (this.off % 8));
    if (this.off === this.pageSize) this.nextPage();
    const lsn = this.lsn;
    const chain = headerChain(spec);
    const main = spec.mainData ?? 0;
    const mainLen = typeof main === 'number' ? main : main.length;
    const totLen = 24 + chain.length + mainLen;
    // CRC: the bytes after the header, then the header up to xl_crc
    let crc = crc32cUpdate(CRC32C_INIT, chain, 0, chain.length);
    for (const p of pieces(main, spec.fillByte ?? 0)) crc = crc32cUpdate(crc, p, 0, p.length);
    const hdr = Buffer.alloc(24);
    hdr.writeUInt32LE(totLen, 0);
    hdr.writeUInt32LE(spec.xid ?? 0, 4);
    hdr.writeUInt32LE(Number(this.prev & 0xffffffffn), 8);
    hdr.writeUInt32LE(Number(this.prev >> 32n), 12);
    hdr[16] = spec.info ?? 0;
    hdr[17] = spec.rmgr ?? RM_XLOG_ID;
    hdr.writeUInt32LE(crc32cFinish(crc32cUpdate(crc, hdr, 0, 20)), 20);
    this.recordLeft = totLen;
    this.write(hdr);
    this.write(chain);
    let sinceYield = 0;
    for (const p of pieces(main, spec.fillByte ?? 0)) {
      this.write(p);
      if ((sinceYield += p.length) >= slice) {
        sinceYield = 0;
        yield;
      }
    }
    this.prev = lsn;
    return lsn;
  }

  /** The bytes written since the last flush (full pages go to onPage first). */
  flushPartial(): Buffer {
    const b = Buffer.from(this.page.subarray(this.flushedOff, this.off));
    this.flushedOff = this.off;
    return b;
  }

  private write(src: Uint8Array): void {
    let i = 0;
    while (i < src.length) {
      if (this.off === this.pageSize) this.nextPage();
      const n = Math.min(src.length - i, this.pageSize - this.off);
      this.page.set(src.subarray(i, i + n), this.off);
      this.off += n;
      i += n;
      this.recordLeft -= n;
    }
  }

  private pad(n: number): void {
    this.page.fill(0, this.off, this.off + n);
    this.off += n;
  }

  private nextPage(): void {
    this.onPage(this.flushedOff === 0 ? this.page : this.page.subarray(this.flushedOff));
    this.pageLsn += BigInt(this.pageSize);
    this.startPage();
  }

  private startPage(): void {
    const p = this.page;
    p.fill(0);
    const long = this.pageLsn % BigInt(this.segmentSize) === 0n;
    p.writeUInt16LE(this.magic, 0);
    p.writeUInt16LE((long ? XLP_LONG_HEADER : 0) | (this.recordLeft > 0 ? XLP_FIRST_IS_CONTRECORD : 0), 2);
    p.writeUInt32LE(this.tli, 4);
    p.writeUInt32LE(Number(this.pageLsn & 0xffffffffn), 8);
    p.writeUInt32LE(Number(this.pageLsn >> 32n), 12);
    p.writeUInt32LE(Math.max(0, this.recordLeft), 16);
    let hdr = 24;
    if (long) {
      p.writeUInt32LE(Number(this.sysid & 0xffffffffn), 24);
      p.writeUInt32LE(Number(this.sysid >> 32n), 28);
      p.writeUInt32LE(this.segmentSize, 32);
      p.writeUInt32LE(this.pageSize, 36);
      hdr = 40;
    }
    this.off = hdr;
    this.flushedOff = 0;
  }
}

/** Block headers and the main-data header: everything between XLogRecord and the data. */
function headerChain(spec: RecordSpec): Buffer {
  const parts: Buffer[] = [];
  (spec.blocks ?? []).forEach((b, id) => {
    const h = Buffer.alloc(1 + 1 + 2 + 12 + 4);
    h[0] = id;
    h[1] = 0; // main fork, no data, no image, rel given
    h.writeUInt16LE(0, 2);
    h.writeUInt32LE(b.spcOid, 4);
    h.writeUInt32LE(b.dbOid, 8);
    h.writeUInt32LE(b.relNumber, 12);
    h.writeUInt32LE(b.block, 16);
    parts.push(h);
  });
  const main = spec.mainData ?? 0;
  const mainLen = typeof main === 'number' ? main : main.length;
  if (mainLen > 0 && mainLen < 256) parts.push(Buffer.from([255, mainLen]));
  else if (mainLen > 0) {
    const h = Buffer.alloc(5);
    h[0] = 254;
    h.writeUInt32LE(mainLen, 1);
    parts.push(h);
  }
  return Buffer.concat(parts);
}

const FILL_PIECE = 1024 * 1024;
function* pieces(main: Buffer | number, fill: number): Generator<Buffer> {
  if (typeof main !== 'number') {
    if (main.length) yield main;
    return;
  }
  const piece = Buffer.alloc(Math.min(main, FILL_PIECE), fill);
  for (let left = main; left > 0; left -= piece.length) yield left >= piece.length ? piece : piece.subarray(0, left);
}

/** Whole WAL for a list of records, as one Buffer (small inputs only). */
export function buildWal(opts: WalBuilderOptions, records: RecordSpec[]): { bytes: Buffer; lsns: bigint[]; end: bigint } {
  const out: Buffer[] = [];
  const b = new WalBuilder(opts, (p) => out.push(Buffer.from(p)));
  const lsns = records.map((r) => b.add(r));
  const end = b.lsn;
  out.push(b.flushPartial());
  return { bytes: Buffer.concat(out), lsns, end };
}
