// The readahead window: which decoded records may be prefaulted now.
// A record qualifies when replay <= lsn < replay + readaheadBytes and fewer
// than maxPagesAhead pages are outstanding ahead of replay. Records that do
// not qualify yet wait (in order) until replay advances; wantsMore() tells the
// feeder to stop while any wait. Pages are retired from the ahead count once
// replay passes the record that asked for them. LSNs are numbers inside (as
// WalRecord's: no BigInt per record); the replay LSN arrives as a bigint.
import type { WalRecord } from '../wal/types.ts';
import { Fifo } from '../fifo.ts';

export interface WindowOptions {
  readaheadBytes: number;
  maxPagesAhead: number;
}

export class ReadaheadWindow {
  private readonly readahead: number;
  private readonly maxPagesAhead: number;
  private replay: number | null = null;
  /** replay + readahead */
  private limit: number | null = null;
  /** Last record let through (the head of the window). */
  private head: number | null = null;
  /** Records that arrived beyond the window, oldest first. */
  private readonly waiting = new Fifo<WalRecord>();
  /** Outstanding pages per admitted record, oldest first (two queues in step: no object per record). */
  private readonly aheadLsns = new Fifo<number>();
  private readonly aheadCounts = new Fifo<number>();
  private pages = 0;
  /** Records that were already behind replay when offered (or when their turn came). */
  behind = 0;

  constructor(opts: WindowOptions) {
    if (!(opts.readaheadBytes > 0)) throw new Error(`readaheadBytes must be positive, got ${opts.readaheadBytes}`);
    if (!(opts.maxPagesAhead > 0)) throw new Error(`maxPagesAhead must be positive, got ${opts.maxPagesAhead}`);
    this.readahead = Math.floor(opts.readaheadBytes);
    this.maxPagesAhead = opts.maxPagesAhead;
  }

  get replayLsn(): bigint | null {
    return this.replay === null ? null : BigInt(this.replay);
  }

  get aheadPages(): number {
    return this.pages;
  }

  /** Bytes from replay to the head record (0 when none is ahead). */
  get aheadBytes(): number {
    if (this.replay === null || this.head === null || this.head < this.replay) return 0;
    return this.head - this.replay;
  }

  get waitingCount(): number {
    return this.waiting.length;
  }

  wantsMore(): boolean {
    return this.waitingCount === 0 && this.pages < this.maxPagesAhead;
  }

  /**
   * Offer a record in LSN order. Returns it if it may be prefaulted now, null if it
   * is behind replay (dropped; passed(record) if it has relation events) or must
   * wait (handed out later by setReplayLsn).
   */
  admit(rec: WalRecord, passed?: (rec: WalRecord) => void): WalRecord | null {
    if (this.waitingCount > 0) {
      this.waiting.push(rec);
      return null;
    }
    const verdict = this.verdict(rec.lsn);
    if (verdict === 'now') {
      this.head = rec.lsn;
      return rec;
    }
    if (verdict === 'behind') this.dropBehind(rec, passed);
    else this.waiting.push(rec);
    return null;
  }

  // Behind replay: not prefaulted, but passed() sees a record with relation events (drops close fds).
  private dropBehind(rec: WalRecord, passed: ((rec: WalRecord) => void) | undefined): void {
    this.behind++;
    if (passed !== undefined && rec.events.length > 0) passed(rec);
  }

  /** Account pages read for the record admit() returned last. */
  addPages(lsn: number, n: number): void {
    if (n <= 0) return;
    this.aheadLsns.push(lsn);
    this.aheadCounts.push(n);
    this.pages += n;
  }

  /**
   * Replay moved: retire pages behind it and call take(record) for every
   * waiting record that now fits (take must call addPages for it), passed(record)
   * for a waiting record with relation events that replay has passed.
   */
  setReplayLsn(replayLsn: bigint, take: (rec: WalRecord) => void, passed?: (rec: WalRecord) => void): void {
    const lsn = Number(replayLsn);
    this.replay = lsn;
    this.limit = lsn + this.readahead;
    for (let first = this.aheadLsns.peek(); first !== undefined && first < lsn; first = this.aheadLsns.peek()) {
      this.aheadLsns.shift();
      this.pages -= this.aheadCounts.shift()!;
    }
    for (let rec = this.waiting.peek(); rec !== undefined; rec = this.waiting.peek()) {
      const verdict = this.verdict(rec.lsn);
      if (verdict === 'later') break;
      this.waiting.shift();
      if (verdict === 'behind') {
        this.dropBehind(rec, passed);
        continue;
      }
      this.head = rec.lsn;
      take(rec);
    }
  }

  /** Forget everything (PostgreSQL went away, or the feeder restarts elsewhere). */
  reset(): void {
    this.replay = null;
    this.limit = null;
    this.head = null;
    this.waiting.clear();
    this.aheadLsns.clear();
    this.aheadCounts.clear();
    this.pages = 0;
  }

  private verdict(lsn: number): 'now' | 'behind' | 'later' {
    const replay = this.replay;
    if (replay === null || this.limit === null) return 'later'; // replay position unknown: wait for it
    if (lsn < replay) return 'behind';
    if (lsn >= this.limit || this.pages >= this.maxPagesAhead) return 'later';
    return 'now';
  }
}
