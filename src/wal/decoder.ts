// Streaming decoder of PostgreSQL 13-18 physical WAL. Bytes arrive in arbitrary
// chunks; next() yields one record (or one DecodeError) at a time, the way
// xlogreader.c's XLogDecodeNextRecord walks pages: page headers checked, records
// reassembled across pages, CRC-32C verified, then the header chain decoded.
//
// Positions inside the input window are plain numbers (offsets from `base`, the
// LSN of window[0]) so the hot path does little BigInt work.
import { u16, u32 } from './bytes.ts';
import { CRC32C_INIT, crc32cFinish, crc32cUpdate } from './crc32c.ts';
import {
  DEFAULT_BLCKSZ,
  PAGE_MAGIC_BY_VERSION,
  SIZE_OF_LONG_PHD,
  SIZE_OF_SHORT_PHD,
  SIZE_OF_XLOG_RECORD,
  XL_CRC_OFFSET,
  XLOG_RECORD_MAX_SIZE,
  XLOG_SWITCH,
  XLP_ALL_FLAGS,
  XLP_FIRST_IS_CONTRECORD,
  XLP_FIRST_IS_OVERWRITE_CONTRECORD,
  XLP_LONG_HEADER,
  maxAlign,
} from './format.ts';
import { formatLsn } from '../lsn.ts';
import { decodeRecord } from './record.ts';
import { RM_XLOG_ID, validRmgr } from './rmgr.ts';
import type { DecodeError, WalRecord } from './types.ts';

export interface WalDecoderOptions {
  startLsn: bigint;
  /** wal_segment_size; default 16 MiB */
  segmentSize?: number;
  /** XLOG_BLCKSZ (WAL page size); default 8192 */
  pageSize?: number;
  /** BLCKSZ (data page size, SHOW block_size), which full-page images are checked against; default 8192 */
  blockSize?: number;
  /**
   * Check each record's CRC-32C; default true. Needed for WAL read from files: a page
   * being written can end in a torn record, a recycled segment in stale ones, and the CRC
   * is what tells them apart. A replication stream carries only WAL the primary has
   * flushed, over TCP (or TLS, which authenticates every byte); the standby checks every
   * CRC again at replay, so a reader that only hints may pass false (half the decode CPU).
   */
  verifyCrc?: boolean;
}

const enum Mode {
  /** cur is a record start, or a page start followed by one */
  Record,
  /** cur is a page start reached by reset(): skip the tail of a record begun on earlier pages */
  SkipContrec,
  /** after damage: look for the next page with a valid header, silently */
  Resync,
}

const enum Page {
  Ok,
  /** not written yet: zeros, or a recycled segment's older page */
  Unwritten,
  Bad,
}

const MIN_OWNED_CAPACITY = 64 * 1024;
/** A reassembly buffer grown past this for one record is dropped after it. */
const LARGE_ASM = 512 * 1024;
/** An owned window this large is reallocated smaller once what it holds fits in a quarter. */
const SHRINK_WINDOW_ABOVE = 256 * 1024;
/**
 * Records larger than this are not held whole: their header chain (every block
 * reference sits there, before any block or main data) is kept, the rest is
 * checksummed as it streams past and dropped. Real records with block references
 * stay far below it (33 blocks of at most 8 KiB); what exceeds it is main data
 * (logical messages, huge commit records), which prefaulting does not need.
 */
export const BIG_RECORD_BYTES = 1024 * 1024;
/** How much of a big record is kept: the header chain is at most ~1 KiB (33 block headers). */
const BIG_HEAD_BYTES = 4096;
const SAFE_BASE = BigInt(Number.MAX_SAFE_INTEGER) - (1n << 40n);
/** locateSpan: the cursor moved (aborted record skipped); decode from there. */
const RESTART = 1;

/**
 * Push WAL bytes, pull records:
 *
 *   const d = new WalDecoder({ startLsn });
 *   d.push(bytes);                       // contiguous from d.inputLsn
 *   for (let r = d.next(); r; r = d.next()) isDecodeError(r) ? report(r) : use(r);
 *
 * - null from next() means "push more bytes".
 * - Bytes not written yet (a zero record length or page header, or a recycled segment's
 *   older page) also give null, and inputLsn moves back to them: push them again from
 *   inputLsn once they are written (a reader of pg_wal files re-reads from there; a
 *   replication stream never sends them).
 * - Damage (bad page header, CRC mismatch, inconsistent record) gives one DecodeError with
 *   its LSN; decoding then resumes at the next page with a valid header.
 * - A record PostgreSQL abandoned after a crash (next page flagged
 *   XLP_FIRST_IS_OVERWRITE_CONTRECORD) is skipped silently, as replay does.
 */
export class WalDecoder {
  private readonly segSize: number;
  private readonly pageSize: number;
  private readonly blockSize: number;
  /** The page header readPageHeader read last (reused: nothing allocated per page). */
  private readonly hdr: { info: number; len: number; problem: string | null } = { info: 0, len: 0, problem: null };
  private readonly verifyCrc: boolean;
  private readonly pageSizeBig: bigint;
  private readonly segSizeBig: bigint;

  // Input window: data[0, end) holds bytes from LSN `base`; bytes before `cur` are no longer needed.
  private data: Uint8Array = new Uint8Array(0);
  private owned = false;
  /** pushed chunks not yet in the window, in order */
  private pending: Uint8Array[] = [];
  private pendingBytes = 0;
  private end = 0;
  private base = 0n;
  private basePageOff = 0;
  private baseSegOff = 0;

  private cur = 0;
  private mode: Mode = Mode.Record;
  private prevLsn: bigint | null = null;
  private prevLo = 0;
  private prevHi = 0;
  /** Number(base) when base + any window offset stays exact as a double, else -1 */
  private baseNum = 0;
  private sysid: bigint | null = null;
  private latestPageLsn = -1n;
  private latestPageTli = 0;
  private pendingError: DecodeError | null = null;

  // A record spanning pages, located incrementally as its pages arrive (offsets relative to cur).
  private spanActive = false;
  private spanTotLen = 0;
  private spanNextPage = 0;
  private spanGot = 0;
  private spanEnd = -1;

  private asm: Uint8Array = new Uint8Array(0);
  private major: number | null = null;
  /** A record over BIG_RECORD_BYTES being streamed past (cur is inside it), or null. */
  private big: BigRecord | null = null;

  constructor(opts: WalDecoderOptions) {
    this.segSize = opts.segmentSize ?? 16 * 1024 * 1024;
    this.pageSize = opts.pageSize ?? 8192;
    this.blockSize = opts.blockSize ?? DEFAULT_BLCKSZ;
    this.verifyCrc = opts.verifyCrc ?? true;
    if (!isPowerOfTwo(this.pageSize) || this.pageSize < 1024) throw new Error(`WAL page size ${this.pageSize} is not a power of two >= 1024`);
    if (!isPowerOfTwo(this.blockSize) || this.blockSize < 1024) throw new Error(`block size ${this.blockSize} is not a power of two >= 1024`);
    if (!isPowerOfTwo(this.segSize) || this.segSize < this.pageSize) throw new Error(`WAL segment size ${this.segSize} is not a power of two >= the page size`);
    this.pageSizeBig = BigInt(this.pageSize);
    this.segSizeBig = BigInt(this.segSize);
    this.reset(opts.startLsn);
  }

  /** LSN of the next byte push() expects. */
  get inputLsn(): bigint {
    return this.base + BigInt(this.end + this.pendingBytes);
  }

  /** Where the next record starts (or, after damage, where the search for one continues). */
  get nextRecordLsn(): bigint {
    return this.base + BigInt(this.cur);
  }

  /** Timeline id (xlp_tli) of the latest page read, 0 before any. */
  get pageTimeline(): number {
    return this.latestPageTli;
  }

  /** Major version told by the pages' xlp_magic, once a page header has been read. */
  get majorVersion(): number | null {
    return this.major;
  }

  /** Bytes held for a record not yet complete (0 when the input ended between records). */
  get bufferedBytes(): number {
    return Math.max(0, this.end - this.cur) + this.pendingBytes;
  }

  /** Memory the decoder's own buffers hold (window it allocated, reassembly buffer), not counting pushed chunks. */
  get retainedBytes(): number {
    return (this.owned ? this.data.length : 0) + this.asm.length;
  }

  /**
   * Drops buffered input and restarts at startLsn: a page start (a record tail there is
   * skipped using xlp_rem_len) or a record start inside a page.
   */
  reset(startLsn: bigint): void {
    if (startLsn < 0n) throw new Error(`start LSN ${startLsn} is negative`);
    this.data = new Uint8Array(0);
    this.owned = false;
    this.end = 0;
    this.cur = 0;
    this.pending = [];
    this.pendingBytes = 0;
    this.latestPageLsn = -1n;
    this.latestPageTli = 0;
    this.rebase(startLsn);
    this.prevLsn = null;
    this.spanActive = false;
    this.big = null;
    this.pendingError = null;
    const pageOff = Number(startLsn % this.pageSizeBig);
    this.mode = pageOff === 0 ? Mode.SkipContrec : Mode.Record;
    if (pageOff !== 0 && (pageOff % 8 !== 0 || pageOff < SIZE_OF_SHORT_PHD)) {
      this.pendingError = { kind: 'error', lsn: startLsn, message: `start LSN ${formatLsn(startLsn)} cannot be a record start (records are 8-byte aligned after the page header); searching from the next page` };
      this.resyncAfter(0);
    }
  }

  /**
   * The next bytes of WAL, contiguous with what came before (inputLsn). The chunk is
   * not modified, but it is kept and read in place until decoded: do not reuse its memory.
   */
  push(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    if (this.pending.length === 0) {
      if (this.cur >= this.end) {
        this.adopt(chunk);
        return;
      }
      if (this.roomFor(chunk.length)) {
        this.data.set(chunk, this.end);
        this.end += chunk.length;
        return;
      }
    }
    // Queued, not copied: next() bridges a record across the boundary by copying only what it needs.
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
  }

  /** Makes the next queued bytes part of the window. */
  private pull(): void {
    const c = this.pending[0]!;
    if (this.cur >= this.end) {
      this.pending.shift();
      this.pendingBytes -= c.length;
      this.adopt(c);
      return;
    }
    // Copy a piece at least as large as what is held, so repeated bridging of one big record stays linear.
    const piece = Math.min(c.length, Math.max(MIN_OWNED_CAPACITY, this.end - this.cur));
    if (piece === c.length) this.pending.shift();
    else this.pending[0] = c.subarray(piece);
    this.pendingBytes -= piece;
    this.append(c.subarray(0, piece));
  }

  /** The owned window takes n more bytes in place, and is not one a big record left far too large. */
  private roomFor(n: number): boolean {
    return this.owned && this.end + n <= this.data.length && !(this.data.length > SHRINK_WINDOW_ABOVE && (this.end - this.cur + n) * 4 <= this.data.length);
  }

  /** Nothing held: take the chunk as the window without copying, skipping bytes the cursor has passed (after XLOG_SWITCH). */
  private adopt(chunk: Uint8Array): void {
    const skip = this.cur - this.end;
    const start = this.base + BigInt(this.end);
    if (skip >= chunk.length) {
      this.data = new Uint8Array(0);
      this.owned = false;
      this.cur = skip - chunk.length;
      this.end = 0;
      this.rebase(start + BigInt(chunk.length));
      return;
    }
    this.data = chunk.subarray(skip);
    this.owned = false;
    this.end = this.data.length;
    this.cur = 0;
    this.rebase(start + BigInt(skip));
  }

  /** Appends to the held bytes [cur, end), compacting or growing an owned window. */
  private append(chunk: Uint8Array): void {
    if (this.roomFor(chunk.length)) {
      this.data.set(chunk, this.end);
      this.end += chunk.length;
      return;
    }
    const keep = this.end - this.cur;
    const need = keep + chunk.length;
    let target = this.data;
    if (!this.owned || need > this.data.length) {
      target = new Uint8Array(Math.max(MIN_OWNED_CAPACITY, need, this.owned ? this.data.length * 2 : 0));
    } else if (this.data.length > SHRINK_WINDOW_ABOVE && need * 4 <= this.data.length) {
      target = new Uint8Array(Math.max(MIN_OWNED_CAPACITY, need * 2)); // the big record that grew it is gone
    }
    if (target === this.data) this.data.copyWithin(0, this.cur, this.end);
    else target.set(this.data.subarray(this.cur, this.end), 0);
    target.set(chunk, keep);
    const newBase = this.base + BigInt(this.cur);
    this.data = target;
    this.owned = true;
    this.end = need;
    this.cur = 0;
    this.rebase(newBase);
  }

  /** The next record, a DecodeError (decoding then goes on after the damage), or null when more bytes are needed. */
  next(): WalRecord | DecodeError | null {
    if (this.pendingError) {
      const e = this.pendingError;
      this.pendingError = null;
      return e;
    }
    for (;;) {
      const r = this.step();
      if (r !== null || this.pending.length === 0) return r;
      this.pull();
    }
  }

  private step(): WalRecord | DecodeError | null {
    const ps = this.pageSize;
    for (;;) {
      if (this.big !== null) {
        const r = this.stepBig(this.big);
        if (r === RESTART) continue;
        return r;
      }
      const cur = this.cur;
      const pageOff = (this.basePageOff + cur) & (ps - 1);
      if (pageOff === 0) {
        const r = this.atPageStart();
        if (r === undefined) continue;
        return r;
      }
      // A record starts at cur.
      if (this.end - cur < 4) return null;
      const totLen = u32(this.data, cur);
      if (totLen === 0) {
        // Zeros where the next record would be: the end of written WAL, not damage.
        this.unwritten(cur);
        return null;
      }
      if (totLen < SIZE_OF_XLOG_RECORD || totLen > XLOG_RECORD_MAX_SIZE) {
        return this.fail(cur, `invalid record length at ${this.lsnText(cur)}: wanted ${SIZE_OF_XLOG_RECORD} to ${XLOG_RECORD_MAX_SIZE}, got ${totLen}`);
      }
      if (totLen > BIG_RECORD_BYTES) {
        this.big = { lsn: this.lsnAt(cur), totLen, got: 0, crc: CRC32C_INIT, head: new Uint8Array(BIG_HEAD_BYTES) };
        continue;
      }
      const space = ps - pageOff;
      if (totLen <= space) {
        if (this.end - cur < totLen) return null;
        return this.finishRecord(this.data, cur, totLen, cur + totLen);
      }
      const r = this.locateSpan(totLen, space);
      if (r === RESTART) continue;
      if (r !== undefined) return r;
      // whole record available: reassemble
      return this.finishRecord(this.assemble(totLen, space), 0, totLen, cur + this.spanEnd);
    }
  }

  // ---- page headers ----

  /** At a page start: check its header and move past it. undefined = go on decoding. */
  private atPageStart(): DecodeError | null | undefined {
    const cur = this.cur;
    if (!this.readPageHeader(cur)) return null;
    const { info, len: hdrLen, problem: check } = this.hdr;
    if (check !== null) {
      if (this.mode === Mode.Resync) {
        this.setCur(cur + this.pageSize);
        return undefined;
      }
      return this.fail(cur, check);
    }
    if (this.mode === Mode.Record) {
      if (info & XLP_FIRST_IS_CONTRECORD) {
        return this.fail(cur, `page ${this.lsnText(cur)} continues a record (XLP_FIRST_IS_CONTRECORD) where a new record was expected`);
      }
      this.setCur(cur + hdrLen);
      return undefined;
    }
    // SkipContrec / Resync: step over the tail of a record that began before this page.
    this.mode = Mode.SkipContrec;
    this.prevLsn = null;
    if (info & XLP_FIRST_IS_CONTRECORD) {
      const rem = maxAlign(u32(this.data, cur + 16));
      if (rem >= this.pageSize - hdrLen) {
        this.setCur(cur + this.pageSize);
        return undefined;
      }
      this.mode = Mode.Record;
      this.setCur(cur + hdrLen + rem);
      return undefined;
    }
    this.mode = Mode.Record;
    this.setCur(cur + hdrLen);
    return undefined;
  }

  /** XLogReaderValidatePageHeader: Ok, Unwritten, or what is wrong. */
  /**
   * Reads and checks the header of the page at pos into this.hdr. False while the header is
   * not whole in the buffer, or when the page was never written (the end of WAL, noted).
   */
  private readPageHeader(pos: number): boolean {
    if (this.end - pos < SIZE_OF_SHORT_PHD) return false;
    const info = u16(this.data, pos + 2);
    const len = info & XLP_LONG_HEADER ? SIZE_OF_LONG_PHD : SIZE_OF_SHORT_PHD;
    if (this.end - pos < len) return false;
    const check = this.checkPageHeader(pos);
    if (check === Page.Unwritten) {
      this.unwritten(pos);
      return false;
    }
    this.hdr.info = info;
    this.hdr.len = len;
    this.hdr.problem = check === Page.Ok ? null : check;
    return true;
  }

  private checkPageHeader(pos: number): Page.Ok | Page.Unwritten | string {
    const d = this.data;
    const magic = u16(d, pos);
    const info = u16(d, pos + 2);
    const pageLsn = this.base + BigInt(pos);
    const pageAddr = (BigInt(u32(d, pos + 12)) << 32n) | BigInt(u32(d, pos + 8));
    if (magic === 0 && pageAddr === 0n && info === 0) return Page.Unwritten;
    const version = PAGE_MAGIC_BY_VERSION.get(magic);
    if (version === undefined) {
      return `invalid magic number 0x${magic.toString(16).toUpperCase().padStart(4, '0')} in WAL page ${formatLsn(pageLsn)} (PostgreSQL 13-18 are supported)`;
    }
    if (this.major !== null && version !== this.major) {
      return `WAL page ${formatLsn(pageLsn)} has the magic number of PostgreSQL ${version}, earlier pages were ${this.major}`;
    }
    if (info & ~XLP_ALL_FLAGS) return `invalid info bits 0x${info.toString(16)} in WAL page ${formatLsn(pageLsn)}`;
    if (pageAddr !== pageLsn) {
      // A recycled segment still holds pages of an older segment at the same offset: not written yet.
      if (pageAddr < pageLsn && pageAddr % this.segSizeBig === pageLsn % this.segSizeBig) return Page.Unwritten;
      return `unexpected pageaddr ${formatLsn(pageAddr)} in WAL page ${formatLsn(pageLsn)}`;
    }
    const segOff = (this.baseSegOff + pos) % this.segSize;
    if (info & XLP_LONG_HEADER) {
      const sysid = (BigInt(u32(d, pos + 28)) << 32n) | BigInt(u32(d, pos + 24));
      const segSize = u32(d, pos + 32);
      const blcksz = u32(d, pos + 36);
      if (segSize !== this.segSize) {
        return `WAL page ${formatLsn(pageLsn)} says the segment size is ${segSize} bytes, the decoder was set up for ${this.segSize}: pass segmentSize`;
      }
      if (blcksz !== this.pageSize) return `WAL page ${formatLsn(pageLsn)} says XLOG_BLCKSZ is ${blcksz}, the decoder was set up for ${this.pageSize}: pass pageSize`;
      if (this.sysid !== null && sysid !== this.sysid) return `WAL page ${formatLsn(pageLsn)} belongs to system ${sysid}, earlier pages to ${this.sysid}`;
      this.sysid = sysid;
    } else if (segOff === 0) {
      return `WAL page ${formatLsn(pageLsn)} starts a segment but has no long header`;
    }
    // Child timelines have higher ids, so the id never goes down along consistent WAL.
    const tli = u32(d, pos + 4);
    if (pageLsn > this.latestPageLsn) {
      // After damage the id is taken afresh: a corrupt higher id must not condemn all later pages.
      if (tli < this.latestPageTli && this.mode !== Mode.Resync) return `out-of-sequence timeline ID ${tli} (after ${this.latestPageTli}) in WAL page ${formatLsn(pageLsn)}`;
      this.latestPageLsn = pageLsn;
      this.latestPageTli = tli;
    }
    this.major = version;
    return Page.Ok;
  }

  // ---- records spanning pages ----

  /**
   * Finds where a record longer than its first page ends, checking each continuation
   * page header as soon as it has arrived. undefined = all bytes are here.
   */
  private locateSpan(totLen: number, space: number): DecodeError | null | typeof RESTART | undefined {
    if (!this.spanActive || this.spanTotLen !== totLen) {
      this.spanActive = true;
      this.spanTotLen = totLen;
      this.spanNextPage = space;
      this.spanGot = space;
      this.spanEnd = -1;
    }
    const cur = this.cur;
    while (this.spanEnd < 0) {
      const page = cur + this.spanNextPage;
      if (!this.readPageHeader(page)) return null;
      const { info, len: hdrLen, problem: check } = this.hdr;
      if (check !== null) return this.fail(cur, `record at ${this.lsnText(cur)} continues into a bad page: ${check}`);
      if (!(info & XLP_FIRST_IS_CONTRECORD)) {
        if (info & XLP_FIRST_IS_OVERWRITE_CONTRECORD) {
          // The record was never completed; after a crash PostgreSQL wrote new WAL from this page on.
          this.spanActive = false;
          this.mode = Mode.Record;
          this.setCur(page);
          return RESTART;
        }
        return this.fail(cur, `there is no contrecord flag at ${this.lsnText(page)} (record at ${this.lsnText(cur)} is ${totLen} bytes)`);
      }
      const rem = u32(this.data, page + 16);
      const left = totLen - this.spanGot;
      if (rem !== left) return this.fail(cur, `invalid contrecord length ${rem} (expected ${left}) at ${this.lsnText(page)}`);
      const cap = this.pageSize - hdrLen;
      if (left <= cap) {
        this.spanEnd = this.spanNextPage + hdrLen + left;
      } else {
        this.spanGot += cap;
        this.spanNextPage += this.pageSize;
      }
    }
    if (this.end - cur < this.spanEnd) return null;
    return undefined;
  }

  /** Copies a spanning record's pieces (skipping page headers) into the reusable reassembly buffer. */
  private assemble(totLen: number, space: number): Uint8Array {
    if (this.asm.length < totLen) this.asm = new Uint8Array(Math.max(totLen, this.asm.length * 2, 32 * 1024));
    const asm = this.asm;
    const d = this.data;
    const cur = this.cur;
    asm.set(d.subarray(cur, cur + space), 0);
    let got = space;
    let page = cur + space;
    while (got < totLen) {
      const hdrLen = u16(d, page + 2) & XLP_LONG_HEADER ? SIZE_OF_LONG_PHD : SIZE_OF_SHORT_PHD;
      const n = Math.min(totLen - got, this.pageSize - hdrLen);
      asm.set(d.subarray(page + hdrLen, page + hdrLen + n), got);
      got += n;
      page += this.pageSize;
    }
    return asm;
  }

  // ---- records too large to hold ----

  /** Streams a big record's bytes past, page by page, keeping its head and a running CRC. */
  private stepBig(b: BigRecord): WalRecord | DecodeError | null | typeof RESTART {
    const ps = this.pageSize;
    for (;;) {
      if (b.got === b.totLen) return this.finishBig(b);
      const cur = this.cur;
      const pageOff = (this.basePageOff + cur) & (ps - 1);
      if (pageOff === 0) {
        if (!this.readPageHeader(cur)) return null;
        const { info, len: hdrLen, problem: check } = this.hdr;
        const at = formatLsn(b.lsn);
        if (check !== null) return this.failBig(`record at ${at} continues into a bad page: ${check}`);
        if (!(info & XLP_FIRST_IS_CONTRECORD)) {
          if (info & XLP_FIRST_IS_OVERWRITE_CONTRECORD) {
            // Never completed; after a crash PostgreSQL wrote new WAL from this page on.
            this.big = null;
            this.mode = Mode.Record;
            return RESTART;
          }
          return this.failBig(`there is no contrecord flag at ${this.lsnText(cur)} (record at ${at} is ${b.totLen} bytes)`);
        }
        const rem = u32(this.data, cur + 16);
        if (rem !== b.totLen - b.got) return this.failBig(`invalid contrecord length ${rem} (expected ${b.totLen - b.got}) at ${this.lsnText(cur)}`);
        this.setCur(cur + hdrLen);
        continue;
      }
      const n = Math.min(this.end - cur, ps - pageOff, b.totLen - b.got);
      if (n <= 0) return null;
      const d = this.data;
      if (b.got < BIG_HEAD_BYTES) b.head.set(d.subarray(cur, cur + Math.min(n, BIG_HEAD_BYTES - b.got)), b.got);
      // The CRC covers the bytes after the 24-byte header, then the header up to xl_crc.
      const from = Math.max(b.got, SIZE_OF_XLOG_RECORD) - b.got;
      if (this.verifyCrc && from < n) b.crc = crc32cUpdate(b.crc, d, cur + from, cur + n);
      b.got += n;
      this.setCur(cur + n);
    }
  }

  /** All of a big record has streamed past (cur is its end): check it like finishRecord. */
  private finishBig(b: BigRecord): WalRecord | DecodeError {
    const head = b.head;
    const lsn = b.lsn;
    const rmid = head[17]!;
    if (!validRmgr(rmid, this.major)) return this.failBig(`invalid resource manager ID ${rmid} at ${formatLsn(lsn)}`);
    const prev = (BigInt(u32(head, 12)) << 32n) | BigInt(u32(head, 8));
    if ((this.prevLsn !== null && prev !== this.prevLsn) || (this.prevLsn === null && prev >= lsn)) {
      return this.failBig(`record with incorrect prev-link ${formatLsn(prev)} at ${formatLsn(lsn)}`);
    }
    if (this.verifyCrc && crc32cFinish(crc32cUpdate(b.crc, head, 0, XL_CRC_OFFSET)) !== u32(head, XL_CRC_OFFSET)) {
      return this.failBig(`incorrect resource manager data checksum in record at ${formatLsn(lsn)}`);
    }
    const rec = decodeRecord(head, 0, b.totLen, lsn, this.lsnAt(this.cur), prev, this.major ?? 18, this.blockSize, BIG_HEAD_BYTES);
    if (typeof rec === 'string') return this.failBig(`${rec} in record at ${formatLsn(lsn)}`);
    this.big = null;
    this.prevLsn = lsn;
    this.prevLo = Number(lsn & 0xffffffffn);
    this.prevHi = Number(lsn >> 32n);
    this.setCur(this.cur + ((8 - ((this.basePageOff + this.cur) & 7)) & 7));
    return rec;
  }

  /** Damage in a big record: reported at its start; decoding resumes at the next page with a valid header. */
  private failBig(message: string): DecodeError {
    const err: DecodeError = { kind: 'error', lsn: this.big!.lsn, message };
    this.big = null;
    this.resyncAfter(this.cur);
    return err;
  }

  // ---- one complete record ----

  private finishRecord(buf: Uint8Array, off: number, totLen: number, physEnd: number): WalRecord | DecodeError {
    const cur = this.cur;
    const lsn = this.lsnAt(cur);
    const rmid = buf[off + 17]!;
    if (!validRmgr(rmid, this.major)) return this.fail(cur, `invalid resource manager ID ${rmid} at ${formatLsn(lsn)}`);
    // xl_prev: compared as two 32-bit halves; the previous record's LSN object is reused.
    const prevLo = u32(buf, off + 8);
    const prevHi = u32(buf, off + 12);
    let prev: bigint;
    if (this.prevLsn !== null && prevLo === this.prevLo && prevHi === this.prevHi) {
      prev = this.prevLsn;
    } else {
      prev = (BigInt(prevHi) << 32n) | BigInt(prevLo);
      if (this.prevLsn !== null || prev >= lsn) return this.fail(cur, `record with incorrect prev-link ${formatLsn(prev)} at ${formatLsn(lsn)}`);
    }
    if (this.verifyCrc) {
      let crc = crc32cUpdate(CRC32C_INIT, buf, off + SIZE_OF_XLOG_RECORD, off + totLen);
      crc = crc32cFinish(crc32cUpdate(crc, buf, off, off + XL_CRC_OFFSET));
      if (crc !== u32(buf, off + XL_CRC_OFFSET)) return this.fail(cur, `incorrect resource manager data checksum in record at ${formatLsn(lsn)}`);
    }
    const endLsn = this.lsnAt(physEnd);
    const rec = decodeRecord(buf, off, totLen, lsn, endLsn, prev, this.major ?? 18, this.blockSize);
    if (typeof rec === 'string') return this.fail(cur, `${rec} in record at ${formatLsn(lsn)}`);
    if (buf === this.asm && buf.length > LARGE_ASM) this.asm = new Uint8Array(0); // do not keep a huge record's buffer
    this.prevLsn = lsn;
    this.prevLo = this.lsnLo(cur);
    this.prevHi = this.lsnHi(cur);
    this.spanActive = false;
    let next = physEnd + ((8 - ((this.basePageOff + physEnd) & 7)) & 7);
    if (rmid === RM_XLOG_ID && (rec.info & 0xf0) === XLOG_SWITCH) {
      // The rest of the segment is unused; the next record is in the next segment.
      const segOff = (this.baseSegOff + next) % this.segSize;
      if (segOff !== 0) next += this.segSize - segOff;
    }
    this.setCur(next);
    return rec;
  }

  // ---- state changes ----

  private setCur(pos: number): void {
    this.cur = pos;
    this.spanActive = false;
  }

  /** Bytes from pos on are not written yet: forget them, so the caller pushes them again from inputLsn. */
  private unwritten(pos: number): void {
    if (pos < this.end) this.end = pos;
    this.pending = [];
    this.pendingBytes = 0;
  }

  /** Reports damage at pos and resumes at the next page with a valid header. */
  private fail(pos: number, message: string): DecodeError {
    const err: DecodeError = { kind: 'error', lsn: this.base + BigInt(pos), message };
    this.resyncAfter(pos);
    return err;
  }

  private resyncAfter(pos: number): void {
    const pageOff = (this.basePageOff + pos) & (this.pageSize - 1);
    this.mode = Mode.Resync;
    this.prevLsn = null;
    this.setCur(pos - pageOff + this.pageSize);
  }

  /** LSN of a window position: one BigInt allocation while LSNs fit in a double (below 8 PiB). */
  private lsnAt(pos: number): bigint {
    return this.baseNum >= 0 ? BigInt(this.baseNum + pos) : this.base + BigInt(pos);
  }

  private lsnLo(pos: number): number {
    // >>> 0 takes an exact integer double modulo 2^32 (% on doubles is a slow fmod)
    return this.baseNum >= 0 ? (this.baseNum + pos) >>> 0 : Number((this.base + BigInt(pos)) & 0xffffffffn);
  }

  private lsnHi(pos: number): number {
    return this.baseNum >= 0 ? Math.floor((this.baseNum + pos) / 0x100000000) : Number((this.base + BigInt(pos)) >> 32n);
  }

  private rebase(lsn: bigint): void {
    this.base = lsn;
    this.baseNum = lsn < SAFE_BASE ? Number(lsn) : -1;
    this.basePageOff = Number(lsn % this.pageSizeBig);
    this.baseSegOff = Number(lsn % this.segSizeBig);
  }

  private lsnText(pos: number): string {
    return formatLsn(this.base + BigInt(pos));
  }
}

interface BigRecord {
  lsn: bigint;
  totLen: number;
  /** record bytes streamed past so far (page headers not counted) */
  got: number;
  crc: number;
  /** the record's first BIG_HEAD_BYTES bytes */
  head: Uint8Array;
}

function isPowerOfTwo(n: number): boolean {
  return Number.isInteger(n) && n > 0 && (n & (n - 1)) === 0;
}
