// A second hint for each hinted page shortly before replay reaches it. A page
// that was in the page cache when we first hinted it stays charged to the
// cgroup that read it first (usually the follower's, which evicts it under its
// own limit): the first hint kept nothing, and by the time replay gets there,
// up to readahead_bytes later, it may be gone. The second hint, NEAR_BYTES of
// WAL ahead of replay, reads such a page back (charged to us this time) early
// enough for replay; for a page still cached it costs one cheap syscall.
// A page first hinted when its record was already within NEAR_BYTES of
// replay gets none: it is near already, and its second hint would follow the
// first at once (a crash recovery's whole burst: twice the posix_fadvise calls
// for nothing, while the agent's CPU is taken from replay).
import { Fifo } from '../fifo.ts';

/** How far ahead of replay the second hint goes: ~100 ms of replay applying images from memory. */
export const NEAR_BYTES = 4n * 1024n * 1024n;
const NEAR = Number(NEAR_BYTES);

export class NearHints {
  // Three queues in step (oldest first): no object per hinted page.
  private readonly lsns = new Fifo<number>(); // record LSNs: numbers, as WalRecord's
  private readonly paths = new Fifo<string>();
  private readonly offsets = new Fifo<number>();
  /** Second hints given. */
  given = 0;
  /** replay + NEAR_BYTES as of the last due(): a record before it is near already. */
  private nearUntil = 0;

  constructor(private readonly maxQueued: number) {}

  get length(): number {
    return this.lsns.length;
  }

  /**
   * A page hinted for the record at lsn (none if that record is within
   * NEAR_BYTES of replay). A full queue drops its oldest entry (hinted long
   * ago, so nearest replay).
   */
  add(lsn: number, path: string, offset: number): void {
    if (lsn < this.nearUntil) return;
    if (this.lsns.length >= this.maxQueued) this.shift();
    this.lsns.push(lsn);
    this.paths.push(path);
    this.offsets.push(offset);
  }

  /**
   * Replay is at replayLsn: hint again (hint(path, offset)) every page of a
   * record within NEAR_BYTES ahead of it; drop those replay has passed.
   */
  due(replay: bigint, hint: (path: string, offset: number) => void): void {
    const replayLsn = Number(replay);
    const until = replayLsn + NEAR;
    this.nearUntil = until;
    for (let lsn = this.lsns.peek(); lsn !== undefined && lsn < until; lsn = this.lsns.peek()) {
      const path = this.paths.peek()!;
      const offset = this.offsets.peek()!;
      this.shift();
      if (lsn < replayLsn) continue;
      this.given++;
      hint(path, offset);
    }
  }

  clear(): void {
    this.nearUntil = 0;
    this.lsns.clear();
    this.paths.clear();
    this.offsets.clear();
  }

  private shift(): void {
    this.lsns.shift();
    this.paths.shift();
    this.offsets.shift();
  }
}
