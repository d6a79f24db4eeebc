// Pages under the decoder: each page header checked as XLogReaderValidatePageHeader does,
// the tails of records begun before a start point or damage skipped, and records that span
// pages located (each continuation page checked as it arrives) and reassembled.
import { u16, u32 } from './bytes.ts';
import {
  PAGE_MAGIC_BY_VERSION,
  SIZE_OF_LONG_PHD,
  SIZE_OF_SHORT_PHD,
  XLP_ALL_FLAGS,
  XLP_FIRST_IS_CONTRECORD,
  XLP_FIRST_IS_OVERWRITE_CONTRECORD,
  XLP_LONG_HEADER,
  maxAlign,
} from './format.ts';
import { WalInputWindow } from './input-window.ts';
import { formatLsn } from '../lsn.ts';
import type { DecodeError } from './types.ts';

const enum Mode {
  /** cur is a record start, or a page start followed by one */
  Record,
  /** cur is a page start reached by reset(): skip the tail of a record begun on earlier pages */
  SkipContrec,
  /** after damage: look for the next page with a valid header, silently */
  Resync,
}

/** checkPageHeader: the page was never written (zeros, or a recycled segment's older page). */
const UNWRITTEN = 1;
/** checkPageHeader: the page header is sound. */
const OK = 0;

/** The cursor moved (a record PostgreSQL abandoned was skipped): decode from there. */
export const RESTART = 1;

/** Base of WalDecoder: page headers and records spanning pages. */
export abstract class WalPageReader extends WalInputWindow {
  /** The page header readPageHeader read last (reused: nothing allocated per page). */
  protected readonly hdr: { info: number; len: number; problem: string | null } = { info: 0, len: 0, problem: null };
  private mode: Mode = Mode.Record;
  /** LSN of the previous record (what the next one's xl_prev must be), null after a jump. */
  protected prevLsn: number | null = null;
  protected major: number | null = null;
  private sysid: bigint | null = null;
  private latestPageLsn = -1n;
  private latestPageTli = 0;

  // A record spanning pages, located incrementally as its pages arrive (offsets relative to cur).
  private spanActive = false;
  private spanTotLen = 0;
  private spanNextPage = 0;
  private spanGot = 0;
  protected spanEnd = -1;
  /** reassembly buffer of records that span pages */
  protected asm: Uint8Array = new Uint8Array(0);

  /** Timeline id (xlp_tli) of the latest page read, 0 before any. */
  get pageTimeline(): number {
    return this.latestPageTli;
  }

  /** Forgets everything read: the next page (pageStart) or record starts afresh. */
  protected restartPages(pageStart: boolean): void {
    this.latestPageLsn = -1n;
    this.latestPageTli = 0;
    this.prevLsn = null;
    this.spanActive = false;
    this.mode = pageStart ? Mode.SkipContrec : Mode.Record;
  }

  /** At a page start: check its header and move past it. undefined = go on decoding. */
  protected atPageStart(): DecodeError | null | undefined {
    const cur = this.cur;
    if (!this.readPageHeader(cur)) return null;
    const { info, len: hdrLen, problem } = this.hdr;
    if (problem !== null) {
      if (this.mode === Mode.Resync) {
        this.setCur(cur + this.pageSize);
        return undefined;
      }
      return this.fail(cur, problem);
    }
    if (this.mode === Mode.Record) {
      if (info & XLP_FIRST_IS_CONTRECORD) {
        return this.fail(cur, `page ${this.lsnText(cur)} continues a record (XLP_FIRST_IS_CONTRECORD) where a new record was expected`);
      }
      this.setCur(cur + hdrLen);
      return undefined;
    }
    // SkipContrec / Resync: step over the tail of a record that began before this page.
    this.mode = Mode.Record;
    this.prevLsn = null;
    let next = cur + hdrLen;
    if (info & XLP_FIRST_IS_CONTRECORD) {
      const rem = maxAlign(u32(this.data, cur + 16));
      if (rem >= this.pageSize - hdrLen) {
        this.mode = Mode.SkipContrec;
        next = cur + this.pageSize;
      } else next += rem;
    }
    this.setCur(next);
    return undefined;
  }

  /**
   * Reads and checks the header of the page at pos into this.hdr. False while the header is
   * not whole in the buffer, or when the page was never written (the end of WAL, noted).
   */
  protected readPageHeader(pos: number): boolean {
    if (this.end - pos < SIZE_OF_SHORT_PHD) return false;
    const info = u16(this.data, pos + 2);
    const len = info & XLP_LONG_HEADER ? SIZE_OF_LONG_PHD : SIZE_OF_SHORT_PHD;
    if (this.end - pos < len) return false;
    const check = this.checkPageHeader(pos);
    if (check === UNWRITTEN) {
      this.unwritten(pos);
      return false;
    }
    this.hdr.info = info;
    this.hdr.len = len;
    this.hdr.problem = check === OK ? null : check;
    return true;
  }

  /** XLogReaderValidatePageHeader: OK, UNWRITTEN, or what is wrong. */
  private checkPageHeader(pos: number): typeof OK | typeof UNWRITTEN | string {
    const d = this.data;
    const magic = u16(d, pos);
    const info = u16(d, pos + 2);
    const pageLsn = this.base + BigInt(pos);
    const pageAddr = (BigInt(u32(d, pos + 12)) << 32n) | BigInt(u32(d, pos + 8));
    if (magic === 0 && pageAddr === 0n && info === 0) return UNWRITTEN;
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
      const segSize = BigInt(this.segSize);
      if (pageAddr < pageLsn && pageAddr % segSize === pageLsn % segSize) return UNWRITTEN;
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
    return OK;
  }

  /**
   * The page at `page` (its header just read into hdr) must continue the record that
   * started at recLsn with `left` bytes to go. null when it does; RESTART when PostgreSQL
   * abandoned the record there after a crash (the cursor is moved to that page); else
   * what is wrong.
   */
  protected continuation(page: number, left: number, recLsn: number, totLen: number): string | null | typeof RESTART {
    const { info, problem } = this.hdr;
    if (problem !== null) return `record at ${formatLsn(recLsn)} continues into a bad page: ${problem}`;
    if (!(info & XLP_FIRST_IS_CONTRECORD)) {
      if (info & XLP_FIRST_IS_OVERWRITE_CONTRECORD) {
        // The record was never completed; after a crash PostgreSQL wrote new WAL from this page on.
        this.mode = Mode.Record;
        this.setCur(page);
        return RESTART;
      }
      return `there is no contrecord flag at ${this.lsnText(page)} (record at ${formatLsn(recLsn)} is ${totLen} bytes)`;
    }
    const rem = u32(this.data, page + 16);
    if (rem !== left) return `invalid contrecord length ${rem} (expected ${left}) at ${this.lsnText(page)}`;
    return null;
  }

  /**
   * Finds where a record longer than its first page ends (into spanEnd, relative to cur),
   * checking each continuation page header as soon as it has arrived. undefined = all
   * bytes are here.
   */
  protected locateSpan(totLen: number, space: number): DecodeError | null | typeof RESTART | undefined {
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
      const left = totLen - this.spanGot;
      const problem = this.continuation(page, left, this.lsnAt(cur), totLen);
      if (problem === RESTART) return RESTART;
      if (problem !== null) return this.fail(cur, problem);
      const cap = this.pageSize - this.hdr.len;
      if (left <= cap) {
        this.spanEnd = this.spanNextPage + this.hdr.len + left;
      } else {
        this.spanGot += cap;
        this.spanNextPage += this.pageSize;
      }
    }
    if (this.end - cur < this.spanEnd) return null;
    return undefined;
  }

  /** Copies a spanning record's pieces (skipping page headers) into the reusable reassembly buffer. */
  protected assemble(totLen: number, space: number): Uint8Array {
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

  protected setCur(pos: number): void {
    this.cur = pos;
    this.spanActive = false;
  }

  /** Reports damage at pos and resumes at the next page with a valid header. */
  protected fail(pos: number, message: string): DecodeError {
    const err: DecodeError = { kind: 'error', lsn: this.lsnAt(pos), message };
    this.resyncAfter(pos);
    return err;
  }

  protected resyncAfter(pos: number): void {
    const pageOff = (this.basePageOff + pos) & (this.pageSize - 1);
    this.mode = Mode.Resync;
    this.prevLsn = null;
    this.setCur(pos - pageOff + this.pageSize);
  }
}
