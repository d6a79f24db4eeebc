// Streaming decoder of PostgreSQL 13-18 physical WAL. Bytes arrive in arbitrary
// chunks; next() yields one record (or one DecodeError) at a time, the way
// xlogreader.c's XLogDecodeNextRecord walks pages: page headers checked, records
// reassembled across pages, CRC-32C verified, then the header chain decoded.
// Layers: input-window.ts (the bytes, LSN arithmetic) <- page-reader.ts (page headers,
// records spanning pages) <- this file (records); big-record.ts streams huge ones past.
import { u32, u64 } from './bytes.ts';
import { BIG_RECORD_BYTES, BigRecord } from './big-record.ts';
import { CrcWordViews, crc32cRecord } from './crc32c.ts';
import { DEFAULT_BLCKSZ, SIZE_OF_SHORT_PHD, SIZE_OF_XLOG_RECORD, XL_CRC_OFFSET, XLOG_RECORD_MAX_SIZE, XLOG_SWITCH } from './format.ts';
import { formatLsn } from '../lsn.ts';
import { RESTART, WalPageReader } from './page-reader.ts';
import { RecordSlot, decodeRecord } from './record.ts';
import { RM_XLOG_ID, validRmgr } from './rmgr.ts';
import type { DecodeError, WalRecord } from './types.ts';

export { BIG_RECORD_BYTES };

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
  /**
   * next() reuses one WalRecord object (and its BlockRefs), overwriting it on the next
   * call: nothing allocated per record (records over BIG_RECORD_BYTES excepted), for a
   * reader done with each record before it asks for the next (the decode command). Default false: a reader that keeps records
   * (the prefetch window) needs its own.
   */
  reuseRecords?: boolean;
}

/** A reassembly buffer grown past this for one record is dropped after it. */
const LARGE_ASM = 512 * 1024;

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
export class WalDecoder extends WalPageReader {
  private readonly blockSize: number;
  private readonly verifyCrc: boolean;
  private pendingError: DecodeError | null = null;
  /** A record over BIG_RECORD_BYTES being streamed past (cur is inside it), or null. */
  private big: BigRecord | null = null;
  private readonly crcWords = new CrcWordViews();
  private readonly slot: RecordSlot | null;

  constructor(opts: WalDecoderOptions) {
    const pageSize = opts.pageSize ?? 8192;
    const segSize = opts.segmentSize ?? 16 * 1024 * 1024;
    if (!isPowerOfTwo(pageSize) || pageSize < 1024) throw new Error(`WAL page size ${pageSize} is not a power of two >= 1024`);
    if (!isPowerOfTwo(segSize) || segSize < pageSize) throw new Error(`WAL segment size ${segSize} is not a power of two >= the page size`);
    super(pageSize, segSize);
    this.blockSize = opts.blockSize ?? DEFAULT_BLCKSZ;
    this.verifyCrc = opts.verifyCrc ?? true;
    this.slot = opts.reuseRecords ? new RecordSlot() : null;
    if (!isPowerOfTwo(this.blockSize) || this.blockSize < 1024) throw new Error(`block size ${this.blockSize} is not a power of two >= 1024`);
    this.reset(opts.startLsn);
  }

  /** Major version told by the pages' xlp_magic, once a page header has been read. */
  get majorVersion(): number | null {
    return this.major;
  }

  /** Memory the decoder's own buffers hold (window it allocated, reassembly buffer), not counting pushed chunks. */
  get retainedBytes(): number {
    return this.ownedBytes + this.asm.length;
  }

  /**
   * Drops buffered input and restarts at startLsn: a page start (a record tail there is
   * skipped using xlp_rem_len) or a record start inside a page.
   */
  reset(startLsn: bigint): void {
    if (startLsn < 0n) throw new Error(`start LSN ${startLsn} is negative`);
    this.clearInput(startLsn);
    const pageOff = this.basePageOff;
    this.restartPages(pageOff === 0);
    this.big = null;
    this.pendingError = null;
    this.crcWords.clear();
    if (pageOff !== 0 && (pageOff % 8 !== 0 || pageOff < SIZE_OF_SHORT_PHD)) {
      this.pendingError = { kind: 'error', lsn: Number(startLsn), message: `start LSN ${formatLsn(startLsn)} cannot be a record start (records are 8-byte aligned after the page header); searching from the next page` };
      this.resyncAfter(0);
    }
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
        this.big = new BigRecord(this.lsnAt(cur), totLen);
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

  private finishRecord(buf: Uint8Array, off: number, totLen: number, physEnd: number): WalRecord | DecodeError {
    const cur = this.cur;
    const lsn = this.lsnAt(cur);
    const rmid = buf[off + 17]!;
    if (!validRmgr(rmid, this.major)) return this.fail(cur, `invalid resource manager ID ${rmid} at ${formatLsn(lsn)}`);
    // xl_prev as a number: exact for any real LSN; a garbage one above 2^53 cannot equal prevLsn or be below lsn.
    const prev = u32(buf, off + 12) * 0x100000000 + u32(buf, off + 8);
    if (this.prevLsn !== null ? prev !== this.prevLsn : prev >= lsn) {
      return this.fail(cur, `record with incorrect prev-link ${formatLsn(u64(buf, off + 8))} at ${formatLsn(lsn)}`);
    }
    if (this.verifyCrc && crc32cRecord(buf, this.crcWords.of(buf), off, totLen) !== u32(buf, off + XL_CRC_OFFSET)) {
      return this.fail(cur, `incorrect resource manager data checksum in record at ${formatLsn(lsn)}`);
    }
    const endLsn = this.lsnAt(physEnd);
    const rec = decodeRecord(buf, off, totLen, lsn, endLsn, prev, this.major ?? 18, this.blockSize, totLen, this.slot);
    if (typeof rec === 'string') return this.fail(cur, `${rec} in record at ${formatLsn(lsn)}`);
    if (buf === this.asm && buf.length > LARGE_ASM) {
      this.asm = new Uint8Array(0); // do not keep a huge record's buffer
      this.crcWords.clear();
    }
    this.prevLsn = lsn;
    let next = physEnd + ((8 - ((this.basePageOff + physEnd) & 7)) & 7);
    if (rmid === RM_XLOG_ID && (rec.info & 0xf0) === XLOG_SWITCH) {
      // The rest of the segment is unused; the next record is in the next segment.
      const segOff = (this.baseSegOff + next) % this.segSize;
      if (segOff !== 0) next += this.segSize - segOff;
    }
    this.setCur(next);
    return rec;
  }

  /** Streams a big record's bytes past, page by page, keeping its head and a running CRC. */
  private stepBig(b: BigRecord): WalRecord | DecodeError | null | typeof RESTART {
    const ps = this.pageSize;
    for (;;) {
      if (b.complete) return this.finishBig(b);
      const cur = this.cur;
      const pageOff = (this.basePageOff + cur) & (ps - 1);
      if (pageOff === 0) {
        if (!this.readPageHeader(cur)) return null;
        const problem = this.continuation(cur, b.totLen - b.got, b.lsn, b.totLen);
        if (problem === RESTART) {
          this.big = null;
          return RESTART;
        }
        if (problem !== null) return this.failBig(problem);
        this.setCur(cur + this.hdr.len);
        continue;
      }
      const n = Math.min(this.end - cur, ps - pageOff, b.totLen - b.got);
      if (n <= 0) return null;
      b.take(this.data, cur, n, this.verifyCrc);
      this.setCur(cur + n);
    }
  }

  /** All of a big record has streamed past (cur is its end). */
  private finishBig(b: BigRecord): WalRecord | DecodeError {
    const rec = b.finish(this.prevLsn, this.lsnAt(this.cur), this.major, this.blockSize, this.verifyCrc);
    if (typeof rec === 'string') return this.failBig(rec);
    this.big = null;
    this.prevLsn = b.lsn;
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
}

function isPowerOfTwo(n: number): boolean {
  return Number.isInteger(n) && n > 0 && (n & (n - 1)) === 0;
}
