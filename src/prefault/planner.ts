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
//
// Replay of a heap record also reads pages no block reference names: the
// visibility map page of each heap block whose all-visible bit it clears
// (visibilitymap_clear) and the free space map leaf of each heap block it
// fills (XLogRecordPageWithFreeSpace). Without a hint each is a miss:
// 42 of a PostgreSQL 15 crash recovery's ~100 misses when every block the
// WAL names was already hinted. Few pages (a VM page maps 32 672 heap
// blocks, an FSM leaf 4 069 at 8 KiB), so they are hinted for every heap
// block of a heap record, not only when the record's flags say so.
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
  /** BLCKSZ: where a heap block's FSM and VM pages are (default 8192). */
  blockSize?: number;
}

const RM_HEAP2_ID = 9;
const RM_HEAP_ID = 10;
const MAIN_FORK = 0;
export const FSM_FORK = 1;
export const VM_FORK = 2;
/** MAXALIGN(SizeOfPageHeaderData): the page header before a map's bytes. */
const PAGE_HEADER = 24;

/** Where the visibility map and free space map of heap block b are, for one BLCKSZ (storage/freespace/freespace.c, access/heap/visibilitymap.c). */
export class MapPages {
  /** Heap blocks per VM page: 2 bits each (HEAPBLOCKS_PER_PAGE). */
  private readonly heapPerVmPage: number;
  /** Leaf slots per FSM page (SlotsPerFSMPage): BLCKSZ - header - fp_next_slot, minus the inner nodes (BLCKSZ / 2 - 1). */
  private readonly slots: number;
  private readonly depth: number;

  constructor(blockSize: number) {
    this.heapPerVmPage = (blockSize - PAGE_HEADER) * 4;
    this.slots = blockSize - PAGE_HEADER - 4 - (blockSize / 2 - 1);
    this.depth = this.slots >= 1626 ? 3 : 4; // FSM_TREE_DEPTH
  }

  vmBlock(heapBlock: number): number {
    return Math.floor(heapBlock / this.heapPerVmPage);
  }

  /** The physical block of the FSM leaf page for heapBlock (fsm_logical_to_physical of fsm_get_location). */
  fsmLeafBlock(heapBlock: number): number {
    let leaf = Math.floor(heapBlock / this.slots);
    let pages = 0;
    for (let l = 0; l < this.depth; l++) {
      pages += leaf + 1;
      leaf = Math.floor(leaf / this.slots);
    }
    return pages - 1;
  }
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
  private readonly maps: MapPages;
  /** What stays in memory (the reach of a page replay wrote or we hinted). */
  private resident: ResidentPages;

  constructor(opts: PlannerOptions, skipped: SkipCounts, read: ReadBlock, drops: DropListener) {
    this.resident = opts.resident;
    const reach = reachOf(opts.resident);
    this.recent = new RecentBlocks(opts.recentSlots, reach.byReplay, reach.byHint);
    this.events = new RelationEvents(drops);
    this.skipped = skipped;
    this.read = read;
    this.maps = new MapPages(opts.blockSize ?? 8192);
  }

  /** New memory figures (the follower's shared_buffers became known, our cgroup changed). */
  setResident(r: ResidentPages): void {
    this.resident = r;
    const reach = reachOf(r);
    this.recent.setReach(reach.byReplay, reach.byHint);
  }

  /** The follower's shared_buffers became known; the page cache room stays. */
  setSharedBuffers(pages: number): void {
    this.setResident({ ...this.resident, sharedBuffers: pages });
  }

  /** Decide every block of rec; returns how many reads were requested. */
  plan(rec: WalRecord): number {
    let reads = 0;
    const blocks = rec.blocks;
    const checkEvents = !this.events.empty;
    const heap = rec.rmgr === RM_HEAP_ID || rec.rmgr === RM_HEAP2_ID;
    for (let i = 0; i < blocks.length; i++) {
      const b = blocks[i]!;
      if (heap && b.fork === MAIN_FORK) {
        // The map pages replay reads for this heap block (see the top); not counted in the skips.
        reads += this.planPage(b.spcOid, b.dbOid, b.relNumber, VM_FORK, this.maps.vmBlock(b.block), false, false, checkEvents, null);
        reads += this.planPage(b.spcOid, b.dbOid, b.relNumber, FSM_FORK, this.maps.fsmLeafBlock(b.block), false, false, checkEvents, null);
      }
      reads += this.planPage(b.spcOid, b.dbOid, b.relNumber, b.fork, b.block, b.applyImage, b.willInit, checkEvents, this.skipped);
    }
    const events = rec.events;
    for (let i = 0; i < events.length; i++) this.events.apply(events[i]!, rec.lsn);
    return reads;
  }

  /** One page replay will touch: 1 if it is to be read, else 0 (counted in skipped, unless null). */
  private planPage(spc: number, db: number, rel: number, fork: number, block: number, applyImage: boolean, willInit: boolean, checkEvents: boolean, skipped: SkipCounts | null): number {
    const recent = this.recent;
    const slot = recent.find(spc, db, rel, fork, block);
    const fresh = slot >= 0 && recent.fresh(slot, this.seq);
    if (!fresh) this.seq++;
    const seq = this.seq;
    if (applyImage || willInit) {
      // Replay writes this page from the record; later references find it in shared_buffers.
      if (skipped !== null) {
        if (applyImage) skipped.image++;
        else skipped.will_init++;
      }
      if (slot >= 0) recent.touch(slot, seq, KEPT_BY_REPLAY);
      else recent.insert(spc, db, rel, fork, block, seq, KEPT_BY_REPLAY);
      return 0;
    }
    if (checkEvents) {
      const why = this.events.skipReason(spc, db, rel, fork, block);
      if (why !== null) {
        if (skipped !== null) skipped[why]++;
        return 0;
      }
    }
    if (fresh) {
      if (skipped !== null) skipped.recent++;
      recent.touch(slot, seq);
      return 0;
    }
    // A page replay wrote itself (image, init) sits in the follower's page cache, charged to
    // the follower's memory limit, not ours: our hint finds it resident and keeps nothing,
    // so count it as replay's again (short reach) and hint it again once that has passed.
    if (slot >= 0) recent.touch(slot, seq, recent.keptBy(slot) === KEPT_BY_REPLAY ? KEPT_BY_REPLAY : KEPT_BY_HINT);
    else recent.insert(spc, db, rel, fork, block, seq, KEPT_BY_HINT);
    this.read(spc, db, rel, fork, block);
    return 1;
  }

  /** A record replay passed before it was planned: only its drops matter (relation-events.ts, passed). */
  passed(rec: WalRecord): void {
    const events = rec.events;
    for (let i = 0; i < events.length; i++) this.events.passed(events[i]!);
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
