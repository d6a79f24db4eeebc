// Per-block decisions for a record the window admitted: skip what replay
// will not read from disk (full-page images it applies, pages it initialises,
// relations created/truncated/dropped ahead of it) and what we read recently;
// hand the rest to the reader. Then apply the record's relation events, which
// concern blocks of later records only.
import type { WalRecord } from '../wal/types.ts';
import { RecentBlocks } from './recent.ts';
import { RelationEvents, type DropListener } from './relation-events.ts';
import type { SkipCounts } from './skip.ts';

export interface PlannerOptions {
  /** Slots of the recently-read set (rounded up to a power of two). */
  recentSlots: number;
  /** How long a read (or image/init) block counts as recent. */
  recentTtlMs: number;
}

/** Called for each block to read. */
export type ReadBlock = (spcOid: number, dbOid: number, relNumber: number, fork: number, block: number) => void;

export class BlockPlanner {
  readonly recent: RecentBlocks;
  readonly events: RelationEvents;
  private readonly skipped: SkipCounts;
  private readonly read: ReadBlock;

  constructor(opts: PlannerOptions, skipped: SkipCounts, read: ReadBlock, drops: DropListener) {
    this.recent = new RecentBlocks(opts.recentSlots, opts.recentTtlMs);
    this.events = new RelationEvents(drops);
    this.skipped = skipped;
    this.read = read;
  }

  /** Decide every block of rec; returns how many reads were requested. */
  plan(rec: WalRecord, now: number): number {
    let reads = 0;
    const blocks = rec.blocks;
    const skipped = this.skipped;
    const recent = this.recent;
    const checkEvents = !this.events.empty;
    for (let i = 0; i < blocks.length; i++) {
      const b = blocks[i]!;
      if (b.applyImage || b.willInit) {
        // Replay writes this page from the record; later references find it in shared_buffers.
        if (b.applyImage) skipped.image++;
        else skipped.will_init++;
        recent.add(b.spcOid, b.dbOid, b.relNumber, b.fork, b.block, now);
        continue;
      }
      if (checkEvents) {
        const why = this.events.skipReason(b.spcOid, b.dbOid, b.relNumber, b.fork, b.block);
        if (why !== null) {
          skipped[why]++;
          continue;
        }
      }
      if (recent.has(b.spcOid, b.dbOid, b.relNumber, b.fork, b.block, now)) {
        skipped.recent++;
        continue;
      }
      recent.add(b.spcOid, b.dbOid, b.relNumber, b.fork, b.block, now);
      this.read(b.spcOid, b.dbOid, b.relNumber, b.fork, b.block);
      reads++;
    }
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
