// Per-block decisions for a record the window admitted: skip what replay
// will not read from disk (full-page images it applies, pages it initialises,
// relations created/truncated/dropped ahead of it) and what is still in
// memory when replay gets there; hand the rest to the reader. Then apply the
// record's relation events, which concern blocks of later records only.
//
// "Still in memory" is measured in replay distance: the planner numbers the
// distinct pages as it meets them, and a page counts as resident while fewer
// distinct pages than the follower's shared_buffers (for pages replay wrote
// itself) or than the page cache we may count on (for pages we hinted) came
// after its last reference. Half of each, since neither the clock sweep nor
// the kernel's LRU lists keep exactly the most recent pages.
import type { WalRecord } from '../wal/types.ts';
import { KEPT_BY_HINT, KEPT_BY_REPLAY, RecentBlocks } from './recent.ts';
import { RelationEvents, type DropListener } from './relation-events.ts';
import type { SkipCounts } from './skip.ts';

/** What the follower and this process can keep in memory, in pages. */
export interface ResidentPages {
  /** The follower's shared_buffers. */
  sharedBuffers: number;
  /** Page cache the pages we hint may occupy (our cgroup's room, or the machine's). */
  pageCache: number;
}

/** PostgreSQL's default shared_buffers (128 MB), until the follower tells. */
export const DEFAULT_RESIDENT: ResidentPages = { sharedBuffers: 16384, pageCache: 16384 };

export interface PlannerOptions {
  /** Slots of the recent set (rounded up to a power of two). */
  recentSlots: number;
  resident: ResidentPages;
}

/** Called for each block to read. */
export type ReadBlock = (spcOid: number, dbOid: number, relNumber: number, fork: number, block: number) => void;

export class BlockPlanner {
  readonly recent: RecentBlocks;
  readonly events: RelationEvents;
  private readonly skipped: SkipCounts;
  private readonly read: ReadBlock;
  /** Distinct pages met so far: replay's clock. */
  private seq = 0;

  constructor(opts: PlannerOptions, skipped: SkipCounts, read: ReadBlock, drops: DropListener) {
    const reach = reachOf(opts.resident);
    this.recent = new RecentBlocks(opts.recentSlots, reach.byReplay, reach.byHint);
    this.events = new RelationEvents(drops);
    this.skipped = skipped;
    this.read = read;
  }

  /** New memory figures (the follower's shared_buffers became known, our cgroup changed). */
  setResident(r: ResidentPages): void {
    const reach = reachOf(r);
    this.recent.setReach(reach.byReplay, reach.byHint);
  }

  /** Decide every block of rec; returns how many reads were requested. */
  plan(rec: WalRecord): number {
    let reads = 0;
    const blocks = rec.blocks;
    const skipped = this.skipped;
    const recent = this.recent;
    const checkEvents = !this.events.empty;
    let seq = this.seq;
    for (let i = 0; i < blocks.length; i++) {
      const b = blocks[i]!;
      const slot = recent.find(b.spcOid, b.dbOid, b.relNumber, b.fork, b.block);
      const fresh = slot >= 0 && recent.fresh(slot, seq);
      if (!fresh) seq++;
      if (b.applyImage || b.willInit) {
        // Replay writes this page from the record; later references find it in shared_buffers.
        if (b.applyImage) skipped.image++;
        else skipped.will_init++;
        if (slot >= 0) recent.touch(slot, seq, KEPT_BY_REPLAY);
        else recent.insert(b.spcOid, b.dbOid, b.relNumber, b.fork, b.block, seq, KEPT_BY_REPLAY);
        continue;
      }
      if (checkEvents) {
        const why = this.events.skipReason(b.spcOid, b.dbOid, b.relNumber, b.fork, b.block);
        if (why !== null) {
          skipped[why]++;
          continue;
        }
      }
      if (fresh) {
        skipped.recent++;
        recent.touch(slot, seq);
        continue;
      }
      // A page replay wrote itself (image, init) sits in the follower's page cache, charged to
      // the follower's memory limit, not ours: our hint finds it resident and keeps nothing,
      // so count it as replay's again (short reach) and hint it again once that has passed.
      if (slot >= 0) recent.touch(slot, seq, recent.keptBy(slot) === KEPT_BY_REPLAY ? KEPT_BY_REPLAY : KEPT_BY_HINT);
      else recent.insert(b.spcOid, b.dbOid, b.relNumber, b.fork, b.block, seq, KEPT_BY_HINT);
      this.read(b.spcOid, b.dbOid, b.relNumber, b.fork, b.block);
      reads++;
    }
    this.seq = seq;
    const events = rec.events;
    for (let i = 0; i < events.length; i++) this.events.apply(events[i]!, rec.lsn);
    return reads;
  }

  retire(replayLsn: bigint): void {
    this.events.retire(replayLsn);
  }

  clear(): void {
    this.recent.clear();
    this.events.clear();
  }
}

function reachOf(r: ResidentPages): { byReplay: number; byHint: number } {
  const byReplay = Math.floor(r.sharedBuffers / 2);
  return { byReplay, byHint: Math.max(byReplay, Math.floor(r.pageCache / 2)) };
}
