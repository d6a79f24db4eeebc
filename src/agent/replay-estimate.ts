// Where replay is inside the segment the startup process's title names. The
// title moves once per WAL segment (16 MiB: a whole burst may sit in one), so
// alone it would hold the window at the segment's start and the pages budget
// (max_pages_ahead) would run out long before replay does. The startup
// process reads WAL a page at a time (XLOG_BLCKSZ) and each block replay needs
// from outside shared_buffers with one read of BLCKSZ: its bytes read since it
// opened the segment (/proc/<pid>/io rchar) set against what the decoded
// records cost in bytes read gives a position. Reads we count that PostgreSQL
// does not do (blocks already in shared_buffers; reads done by I/O workers on PG 18) make the
// estimate lag, which only keeps the window further back: never past replay
// by more than the WAL it reads ahead (wal_decode_buffer_size, 512 kB).
import { readFile } from 'node:fs/promises';
import type { WalRecord } from '../wal/types.ts';

/** Compact the record list once this many entries are behind the estimate. */
const COMPACT_AT = 4096;

export class ReplayEstimate {
  private lsns: bigint[] = [];
  /** Bytes replay reads up to and including each record (cumulative). */
  private costs: number[] = [];
  private head = 0;
  private total = 0;
  private lastWalPage = -1n;
  /** Where the WAL page after lastWalPage starts: records ending before it cost no WAL read (no BigInt division per record). */
  private nextWalPageAt = 0n;
  private readonly walPageSize: bigint;
  private readonly blockSize: number;
  private segStart: bigint | null = null;
  private pid = 0;
  private baseRead = 0;
  private baseCost = 0;
  private estimate: bigint | null = null;
  /** Cumulative cost of the last record compacted away. */
  private droppedCost = 0;

  /** walPageSize: XLOG_BLCKSZ; blockSize: BLCKSZ (both from pg_control). */
  constructor(walPageSize: number, blockSize: number) {
    this.walPageSize = BigInt(walPageSize);
    this.blockSize = blockSize;
  }

  /** Every decoded record, in LSN order. */
  record(rec: WalRecord): void {
    let bytes = 0;
    for (const b of rec.blocks) if (!(b.hasImage && b.applyImage) && !b.willInit) bytes += this.blockSize;
    if (rec.endLsn >= this.nextWalPageAt) {
      const endPage = rec.endLsn / this.walPageSize;
      if (this.lastWalPage >= 0n && endPage > this.lastWalPage) bytes += Number((endPage - this.lastWalPage) * this.walPageSize);
      this.lastWalPage = endPage;
      this.nextWalPageAt = (endPage + 1n) * this.walPageSize;
    }
    this.total += bytes;
    this.lsns.push(rec.lsn);
    this.costs.push(this.total);
  }

  /**
   * The startup process `pid` has segment `segStart` open and has read
   * `readBytes` in all: replay's estimated position (at least segStart).
   */
  observe(segStart: bigint, pid: number, readBytes: number): bigint {
    if (segStart !== this.segStart || pid !== this.pid) {
      // The title just moved (or replay restarted): replay is near this segment's start.
      const restarted = pid !== this.pid || (this.segStart !== null && segStart < this.segStart);
      this.segStart = segStart;
      this.pid = pid;
      this.baseRead = readBytes;
      this.baseCost = this.costBefore(segStart);
      if (restarted || this.estimate === null || segStart > this.estimate) this.estimate = segStart;
      return this.estimate;
    }
    const target = this.baseCost + (readBytes - this.baseRead);
    const i = this.firstCostAbove(target);
    const at = i < this.lsns.length ? this.lsns[i]! : null;
    if (at !== null && at > this.estimate!) this.estimate = at;
    this.compact();
    return this.estimate!;
  }

  private costBefore(lsn: bigint): number {
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
