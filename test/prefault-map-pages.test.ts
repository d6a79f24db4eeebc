// Replay of a heap record reads the visibility map page and the free space
// map leaf of the heap blocks it changes, pages no block reference names:
// the planner hints them too (a crash recovery's 42 remaining misses went to
// 0 with every page hinted ahead, docs/benchmarks.md session 7).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BlockPlanner, FSM_FORK, MapPages, VM_FORK } from '../src/prefault/planner.ts';
import { emptySkipCounts } from '../src/prefault/skip.ts';
import type { BlockRef, WalRecord } from '../src/wal/types.ts';

test('map pages: VM page and FSM leaf of a heap block, as visibilitymap.c and freespace.c place them', () => {
  const m = new MapPages(8192);
  // HEAPBLOCKS_PER_PAGE = (8192 - 24) * 4
  assert.equal(m.vmBlock(0), 0);
  assert.equal(m.vmBlock(32671), 0);
  assert.equal(m.vmBlock(32672), 1);
  // SlotsPerFSMPage = 4069; blocks 0 and 1 are the root and the first level-1 page, leaves from 2
  assert.equal(m.fsmLeafBlock(0), 2);
  assert.equal(m.fsmLeafBlock(4068), 2);
  assert.equal(m.fsmLeafBlock(4069), 3);
  assert.equal(m.fsmLeafBlock(4069 * 4068), 4070, 'the last leaf under the first level-1 page');
  assert.equal(m.fsmLeafBlock(4069 * 4069), 4072, 'after it, the second level-1 page (4071), then its first leaf');
  // 4 KiB pages: (4096 - 24) * 4 heap blocks per VM page, 4096 - 28 - 2047 = 2021 FSM slots (still 3 levels)
  const small = new MapPages(4096);
  assert.equal(small.vmBlock(16288), 1);
  assert.equal(small.fsmLeafBlock(2021), 3);
});

let lsn = 0;
function record(rmgr: number, ...blocks: Partial<BlockRef>[]): WalRecord {
  lsn += 100;
  return {
    lsn, endLsn: lsn + 100, prevLsn: lsn - 100, xid: 1, rmgr, rmgrName: rmgr === 10 ? 'Heap' : 'Btree', info: 0, totalLength: 100, events: [],
    blocks: blocks.map((b, id) => ({ id, spcOid: 1663, dbOid: 5, relNumber: 16384, fork: 0, block: 0, hasImage: false, applyImage: false, willInit: false, dataLength: 10, ...b })),
  };
}

test('planner: heap records bring their heap blocks\' map pages, once while recent, without counting skips', () => {
  const reads: string[] = [];
  const skipped = emptySkipCounts();
  const p = new BlockPlanner({ recentSlots: 1 << 16, resident: { sharedBuffers: 1000, pageCache: 1000 } }, skipped, (_s, _d, rel, fork, block) => reads.push(`${rel}/${fork}/${block}`), { relationDropped: () => {}, databaseDropped: () => {} });
  assert.equal(p.plan(record(10, { block: 7 })), 3);
  assert.deepEqual(reads, [`16384/${VM_FORK}/0`, `16384/${FSM_FORK}/2`, '16384/0/7']);
  reads.length = 0;
  assert.equal(p.plan(record(10, { block: 8 })), 1, 'the same map pages are recent');
  assert.deepEqual(reads, ['16384/0/8']);
  assert.equal(skipped.recent, 0, 'recent map pages are not counted as skipped blocks');
  reads.length = 0;
  p.plan(record(10, { block: 5000, hasImage: true, applyImage: true }));
  assert.deepEqual(reads, [`16384/${FSM_FORK}/3`], 'an image is not read, but its FSM leaf (another one) still is');
  reads.length = 0;
  p.plan(record(11, { block: 40000 }));
  assert.deepEqual(reads, ['16384/0/40000'], 'an index record brings no map pages');
  reads.length = 0;
  p.plan(record(10, { block: 40000, fork: FSM_FORK }));
  assert.deepEqual(reads, [`16384/${FSM_FORK}/40000`], 'only main-fork blocks have map pages');
});
