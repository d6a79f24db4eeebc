// Recency in replay's terms: the recent set is exact and bounded, and the
// planner skips a later reference to a page only while fewer distinct pages
// than the follower (or our page cache) can hold came in between, whatever
// the time on the agent's clock.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { KEPT_BY_HINT, KEPT_BY_REPLAY, RecentBlocks } from '../src/prefault/recent.ts';
import { BlockPlanner, type ResidentPages } from '../src/prefault/planner.ts';
import { emptySkipCounts } from '../src/prefault/skip.ts';
import type { BlockRef, WalRecord } from '../src/wal/types.ts';

test('recent blocks: exact hits, no false positives, expiry by distance per kind', () => {
  const r = new RecentBlocks(1024, 100, 1000);
  assert.equal(r.slots, 1024);
  r.add(1663, 5, 16384, 0, 7, 1000, KEPT_BY_REPLAY);
  assert.equal(r.has(1663, 5, 16384, 0, 7, 1050), true);
  for (const [spc, db, rel, fork, block] of [[1664, 5, 16384, 0, 7], [1663, 6, 16384, 0, 7], [1663, 5, 16385, 0, 7], [1663, 5, 16384, 1, 7], [1663, 5, 16384, 0, 8]]) {
    assert.equal(r.has(spc!, db!, rel!, fork!, block!, 1050), false, `${spc}/${db}/${rel}/${fork}/${block}`);
  }
  assert.equal(r.has(1663, 5, 16384, 0, 7, 1100), false, 'a page replay kept is gone 100 distinct pages later');
  r.add(1663, 5, 16384, 0, 9, 1000, KEPT_BY_HINT);
  assert.equal(r.has(1663, 5, 16384, 0, 9, 1999), true, 'a hinted page lasts the page-cache reach');
  assert.equal(r.has(1663, 5, 16384, 0, 9, 2000), false);
  r.setReach(100, 100);
  assert.equal(r.has(1663, 5, 16384, 0, 9, 1200), false, 'a smaller reach applies to entries already there');
  // uint32 values above 2^31 round-trip
  r.add(4294967295, 4294967294, 4294967293, 3, 4294967292, 2000, KEPT_BY_HINT);
  assert.equal(r.has(4294967295, 4294967294, 4294967293, 3, 4294967292, 2000), true);
  r.clear();
  assert.equal(r.has(4294967295, 4294967294, 4294967293, 3, 4294967292, 2000), false);
});

test('recent blocks: at a quarter load ~97% of keys stay, and memory is fixed', () => {
  const r = new RecentBlocks(65536, 1e9, 1e9);
  const keys = 16384;
  for (let i = 0; i < keys; i++) r.add(1663, 5, 16384 + (i % 97), 0, i, i, KEPT_BY_HINT);
  let kept = 0;
  for (let i = 0; i < keys; i++) if (r.has(1663, 5, 16384 + (i % 97), 0, i, keys)) kept++;
  assert.ok(kept > keys * 0.95, `kept ${kept} of ${keys}`);
  let falsePositives = 0;
  for (let i = keys; i < 4 * keys; i++) if (r.has(1663, 5, 16384 + (i % 97), 0, i, keys)) falsePositives++;
  assert.equal(falsePositives, 0);
  // Far more keys than slots: still bounded, still exact for the newest.
  for (let i = 0; i < 1_000_000; i++) r.add(1663, 5, 1, 0, i, keys + i, KEPT_BY_HINT);
  assert.equal(r.slots, 65536);
  assert.equal(r.has(1663, 5, 1, 0, 999_999, keys + 1_000_000), true);
});

let lsn = 0x1000000;
function record(...blocks: Partial<BlockRef>[]): WalRecord {
  lsn += 100;
  return {
    lsn, endLsn: lsn + 100, prevLsn: lsn - 100, xid: 1, rmgr: 10, rmgrName: 'Heap', info: 0, totalLength: 100, events: [],
    blocks: blocks.map((b, id) => ({ id, spcOid: 1663, dbOid: 5, relNumber: 16384, fork: 0, block: 0, hasImage: false, applyImage: false, willInit: false, dataLength: 10, ...b })),
  };
}

function planner(resident: ResidentPages): { p: BlockPlanner; reads: number[]; skipped: ReturnType<typeof emptySkipCounts> } {
  const reads: number[] = [];
  const skipped = emptySkipCounts();
  const p = new BlockPlanner({ recentSlots: 1 << 16, resident }, skipped, (_s, _d, _r, _f, block) => reads.push(block), { relationDropped: () => {}, databaseDropped: () => {} });
  return { p, reads, skipped };
}

test('planner: a page whose image replay applied is skipped only while shared_buffers can still hold it', () => {
  // shared_buffers 200 pages: reach 100 distinct pages.
  const { p, reads, skipped } = planner({ sharedBuffers: 200, pageCache: 0 });
  p.plan(record({ block: 1, hasImage: true, applyImage: true }));
  for (let b = 1000; b < 1050; b++) p.plan(record({ block: b })); // 50 distinct pages later
  p.plan(record({ block: 1 }));
  assert.equal(skipped.image, 1);
  assert.equal(skipped.recent, 1, 'still in shared_buffers 50 pages later');
  assert.ok(!reads.includes(1));
  for (let b = 2000; b < 2150; b++) p.plan(record({ block: b })); // 150 more: gone from a 200-page shared_buffers
  p.plan(record({ block: 1 }));
  assert.equal(skipped.recent, 1);
  assert.ok(reads.includes(1), 'read again once replay has touched more pages than shared_buffers holds');
});

test('planner: repeated touches of the same pages do not age each other (distinct pages, not references)', () => {
  const { p, reads, skipped } = planner({ sharedBuffers: 20, pageCache: 0 }); // reach 10
  p.plan(record({ block: 1, applyImage: true, hasImage: true }));
  // 1000 references to 5 pages: 5 distinct pages, far below the reach.
  for (let i = 0; i < 1000; i++) p.plan(record({ block: 100 + (i % 5) }));
  p.plan(record({ block: 1 }));
  assert.ok(!reads.includes(1));
  assert.equal(reads.filter((b) => b >= 100).length, 5, 'each of the 5 pages read once');
  assert.equal(skipped.recent, 996);
});

test('planner: a page we hinted lasts as long as our page cache holds it, then is hinted again', () => {
  const { p, reads } = planner({ sharedBuffers: 20, pageCache: 400 }); // reach 10 by replay, 200 by hint
  p.plan(record({ block: 1 }));
  for (let b = 1000; b < 1150; b++) p.plan(record({ block: b }));
  p.plan(record({ block: 1 }));
  assert.equal(reads.filter((b) => b === 1).length, 1, '150 pages later: still in the page cache');
  for (let b = 2000; b < 2300; b++) p.plan(record({ block: b }));
  p.plan(record({ block: 1 }));
  assert.equal(reads.filter((b) => b === 1).length, 2, '300 more pages: hinted again');
  // No clock is involved: the same sequence planned twice decides the same way.
  p.setResident({ sharedBuffers: 0, pageCache: 0 });
  p.plan(record({ block: 1 }));
  assert.equal(reads.filter((b) => b === 1).length, 3, 'reach 0 disables skipping');
});

test('planner: a page replay wrote itself stays replay\'s after we hint it (the follower\'s cache holds it, not ours)', () => {
  const { p, reads } = planner({ sharedBuffers: 20, pageCache: 4000 }); // reach 10 by replay, 2000 by hint
  p.plan(record({ block: 1, hasImage: true, applyImage: true }));
  for (let b = 1000; b < 1050; b++) p.plan(record({ block: b }));
  p.plan(record({ block: 1 }));
  assert.equal(reads.filter((b) => b === 1).length, 1, 'past shared_buffers: hinted');
  for (let b = 2000; b < 2050; b++) p.plan(record({ block: b }));
  p.plan(record({ block: 1 }));
  assert.equal(reads.filter((b) => b === 1).length, 2, 'and hinted again past shared_buffers, though far within our page cache');
  // A page we fetched ourselves lasts our page cache's reach.
  p.plan(record({ block: 7 }));
  for (let b = 3000; b < 3050; b++) p.plan(record({ block: b }));
  p.plan(record({ block: 7 }));
  assert.equal(reads.filter((b) => b === 7).length, 1);
});

test('planner: shared_buffers learned later (a recovery, no SQL yet) keeps the page cache reach', () => {
  const { p, reads } = planner({ sharedBuffers: 0, pageCache: 1000 }); // reach 0 by replay, 500 by hint
  p.plan(record({ block: 1, hasImage: true, applyImage: true }));
  for (let b = 1000; b < 1050; b++) p.plan(record({ block: b }));
  p.plan(record({ block: 1 }));
  assert.equal(reads.filter((b) => b === 1).length, 1, 'shared_buffers unknown: a page restored from its image is hinted at its next reference');
  p.setSharedBuffers(400); // reach 200 by replay
  p.plan(record({ block: 5, hasImage: true, applyImage: true }));
  for (let b = 2000; b < 2050; b++) p.plan(record({ block: b }));
  p.plan(record({ block: 5 }));
  assert.ok(!reads.includes(5), 'within shared_buffers now: not hinted');
  p.plan(record({ block: 7 }));
  for (let b = 3000; b < 3300; b++) p.plan(record({ block: b }));
  p.plan(record({ block: 7 }));
  assert.equal(reads.filter((b) => b === 7).length, 1, 'a hinted page still lasts the page cache reach (300 pages later; shared_buffers alone would give 200)');
  for (let b = 4000; b < 4600; b++) p.plan(record({ block: b }));
  p.plan(record({ block: 7 }));
  assert.equal(reads.filter((b) => b === 7).length, 2, '600 pages after its last reference: hinted again');
});
