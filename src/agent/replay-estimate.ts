// Where replay is inside the segment the startup process's title names. The
// title moves once per WAL segment (16 MiB: a whole burst may sit in one), so
// alone it would hold the window at the segment's start and the pages budget
// (max_pages_ahead) would run out long before replay does. The startup
// process reads WAL a page at a time (XLOG_BLCKSZ) and each block replay needs
// from outside shared_buffers with one read of BLCKSZ: its bytes read since it
// opened the segment (/proc/<pid>/io rchar) set against what the decoded
// records cost in bytes read gives a position. A block referenced again while
// it is still in shared_buffers is not read again (a heap update and the
// prune of its page; hot pages): it costs once per reach of shared_buffers
// (its size read off the startup process's shared memory mapping, as no SQL
// answers: a guess of 128 MB against a 512 MB server counts re-reads replay
// never does), as the planner judges residency. (Counted at every reference, the estimate
// fell behind replay by half of a random-update burst's reads, the window,
// max_pages_ahead past the estimate, with it, and once replay had passed the
// whole window every hint came too late: with max_pages_ahead = 1024 a
// PostgreSQL 15 crash recovery of 19 000 pages ran unassisted, 21.6 s against
// 0.60 s for builtin-tuned; the default 16 384 only put the same stall ~30 000
// pages into a recovery.) Reads we count that PostgreSQL does not do (a block
// still in a larger shared_buffers) make the estimate lag; reads it does that
// we do not count (the visibility and free space map pages) make it lead. On
// PG 18 too the startup process reads its buffers itself during recovery (its
// I/O workers read nothing: checked on a crash recovery, io_method = worker).
import { readFile } from 'node:fs/promises';
import { KEPT_BY_REPLAY, RecentBlocks } from '../prefault/recent.ts';
import type { WalRecord } from '../wal/types.ts';

// Record LSNs are numbers (as WalRecord's); segment starts and the estimate are bigints at the edge.

/** Compact the record list once this many entries are behind the estimate. */
const COMPACT_AT = 4096;

export class ReplayEstimate {
  private lsns: number[] = [];
  /** Bytes replay reads up to and including each record (cumulative). */
  private costs: number[] = [];
  private head = 0;
  private total = 0;
  private lastWalPage = -1;
  private readonly walPageSize: number;
  /** WAL segment size (pg_control): the title's segment ends this far past its start. */
  private readonly segmentSize: number;
  private readonly blockSize: number;
  private segStart: number | null = null;
  private pid = 0;
  private baseRead = 0;
  private baseCost = 0;
  private estimate: number | null = null;
  /** Cumulative cost of the last record compacted away. */
  private droppedCost = 0;
  /** Blocks replay has in shared_buffers, by the distinct blocks referenced since (seq). */
  private inBuffers: RecentBlocks;
  private sharedBufferPages: number;
  private seq = 0;
  /** End of the last decoded record. */
  private lastEnd = 0;

  /**
   * walPageSize: XLOG_BLCKSZ; blockSize: BLCKSZ; segmentSize (all from pg_control);
   * sharedBufferPages: the server's shared_buffers in pages (PostgreSQL's
   * default, 128 MB, until setSharedBufferPages() tells: no SQL answers
   * during a recovery).
   */
  constructor(walPageSize: number, blockSize: number, sharedBufferPages = Math.floor((128 * 1024 * 1024) / blockSize), segmentSize = 16 * 1024 * 1024) {
    this.walPageSize = walPageSize;
    this.segmentSize = segmentSize;
    this.blockSize = blockSize;
    this.sharedBufferPages = sharedBufferPages;
    this.inBuffers = ReplayEstimate.table(sharedBufferPages);
  }

  // 2 slots per page remembered keeps collisions rare; at most 2^17 (3.7 MiB): past that a
  // block replay still holds can be forgotten and counted as read again (the estimate lags).
  private static slotsFor(pages: number): number {
    return Math.min(1 << 17, Math.max(4096, pages * 2));
  }

  private static table(pages: number): RecentBlocks {
    return new RecentBlocks(ReplayEstimate.slotsFor(pages), pages, pages);
  }

  /**
   * The server's shared_buffers became known (follower/shared-memory.ts). A
   * larger table starts empty: blocks seen before count once more as read.
   */
  setSharedBufferPages(pages: number): void {
    if (pages === this.sharedBufferPages || pages <= 0) return;
    this.sharedBufferPages = pages;
    if (ReplayEstimate.slotsFor(pages) > this.inBuffers.slots) this.inBuffers = ReplayEstimate.table(pages);
    else this.inBuffers.setReach(pages, pages);
  }

  /** Every decoded record, in LSN order. */
  record(rec: WalRecord): void {
    let bytes = 0;
    const buffers = this.inBuffers;
    for (const b of rec.blocks) {
      const slot = buffers.find(b.spcOid, b.dbOid, b.relNumber, b.fork, b.block);
      const inBuffers = slot >= 0 && buffers.fresh(slot, this.seq);
      if (!inBuffers) this.seq++;
      // Read unless in shared_buffers, restored from an image or initialised; in shared_buffers after.
      if (!inBuffers && !(b.hasImage && b.applyImage) && !b.willInit) bytes += this.blockSize;
      if (slot >= 0) buffers.touch(slot, this.seq);
      else buffers.insert(b.spcOid, b.dbOid, b.relNumber, b.fork, b.block, this.seq, KEPT_BY_REPLAY);
    }
    const endPage = Math.floor(rec.endLsn / this.walPageSize);
    if (this.lastWalPage >= 0 && endPage > this.lastWalPage) bytes += (endPage - this.lastWalPage) * this.walPageSize;
    this.lastWalPage = endPage;
    this.lastEnd = rec.endLsn;
    this.total += bytes;
    this.lsns.push(rec.lsn);
    this.costs.push(this.total);
  }

  /**
   * The startup process `pid` has segment `segStart` open and has read
   * `readBytes` in all: replay's estimated position (at least segStart).
   * Reads are counted on from the last look across segments: re-based at
   * each new title, the reads replay did between its move to the segment and
   * our look were lost (a fast replay, a standby with hot_standby = off, ran
   * megabytes past the estimate, which stayed at the segment's start until the
   * next one). The title bounds the estimate to its segment, so what the model
   * gets wrong (reads it does not know of, blocks it thinks evicted) never
   * carries past one segment.
   */
  observe(segStartLsn: bigint, pid: number, readBytes: number): bigint {
    const segStart = Number(segStartLsn);
    if (pid !== this.pid || (this.segStart !== null && segStart < this.segStart)) {
      // A new startup process (PostgreSQL restarted) or replay went back: start over at its segment.
      this.pid = pid;
      this.segStart = segStart;
      this.rebase(segStart, readBytes);
      this.estimate = segStart;
      return BigInt(segStart);
    }
    this.segStart = segStart;
    const segEnd = segStart + this.segmentSize;
    const target = this.baseCost + (readBytes - this.baseRead);
    const i = this.firstCostAbove(target);
    // Read more than every decoded record costs: replay is past all of them. Holding the
    // estimate back here deadlocked: the window stays full (its pages budget spent on
    // records replay has passed), so the decoder waits, and no record comes to move the
    // estimate; replay then ran unassisted to the end.
    let at = i < this.lsns.length ? this.lsns[i]! : this.lsns.length > 0 ? this.lastEnd : segStart;
    if (at < segStart) {
      at = segStart;
      this.rebase(segStart, readBytes);
    } else if (at >= segEnd && this.lastEnd > segEnd) {
      // Ahead of the title's segment with records decoded past it: replay is not there yet.
      at = segEnd;
      this.rebase(segEnd, readBytes);
    }
    if (this.estimate === null || at > this.estimate) this.estimate = at;
    this.compact();
    return BigInt(this.estimate);
  }

  /** From here on, reads are counted from `readBytes` at `lsn`. */
  private rebase(lsn: number, readBytes: number): void {
    this.baseRead = readBytes;
    this.baseCost = this.costBefore(lsn);
  }

  private costBefore(lsn: number): number {
    let lo = this.head;
    let hi = this.lsns.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.lsns[mid]! < lsn) lo = mid + 1;
      else hi = mid;
    }
    return lo > 0 ? this.costs[lo - 1]! : this.droppedCost;
  }

  private firstCostAbove(target: number): number {
    let lo = this.head;
    let hi = this.costs.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.costs[mid]! <= target) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  // Records before the estimate are done with (kept: the one just before it, for costBefore).
  private compact(): void {
    const est = this.estimate;
    if (est === null) return;
    while (this.head + 1 < this.lsns.length && this.lsns[this.head + 1]! < est) this.head++;
    if (this.head >= COMPACT_AT) {
      this.droppedCost = this.costs[this.head - 1]!;
      this.lsns.splice(0, this.head);
      this.costs.splice(0, this.head);
      this.head = 0;
    }
  }
}

/** Bytes process `pid` has read (rchar of /proc/<pid>/io); null when not readable (another uid, hidepid). */
export async function readBytesOf(pid: number, procDir = '/proc'): Promise<number | null> {
  try {
    const m = /^rchar:\s+(\d+)$/m.exec(await readFile(`${procDir}/${pid}/io`, 'utf8'));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}
