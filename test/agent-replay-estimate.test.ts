// The replay position inside the startup process's segment, from its read
// count against what the decoded records cost in reads (src/agent/replay-estimate.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ReplayEstimate, readBytesOf } from '../src/agent/replay-estimate.ts';
import type { BlockRef, WalRecord } from '../src/wal/types.ts';

const SEG = 16n * 1024n * 1024n;
const block = (n: number, over: Partial<BlockRef> = {}): BlockRef => ({
  id: 0, spcOid: 1663, dbOid: 5, relNumber: 16384, fork: 0, block: n, hasImage: false, applyImage: false, willInit: false, dataLength: 10, ...over,
});
const rec = (at: bigint, blocks: BlockRef[]): WalRecord => ({
  lsn: Number(at), endLsn: Number(at) + 100, prevLsn: 0, xid: 1, rmgr: 10, rmgrName: 'Heap', info: 0, totalLength: 100, blocks, events: [],
});

test('replay estimate: reads since the segment opened map to the record replay is on; images and WILL_INIT cost nothing', () => {
  const e = new ReplayEstimate(8192, 8192);
  const seg = 5n * SEG;
  // 10 records of one block read each, 100 bytes apart on one WAL page; one with an applied image, one WILL_INIT.
  for (let i = 0; i < 10; i++) e.record(rec(seg + 40n + BigInt(i) * 128n, [block(i)]));
  e.record(rec(seg + 2000n, [block(99, { hasImage: true, applyImage: true })]));
  e.record(rec(seg + 2200n, [block(98, { willInit: true })]));
  e.record(rec(seg + 2400n, [block(97)]));
  // The title just named the segment: replay is at its start.
  assert.equal(e.observe(seg, 42, 1_000_000), seg);
  // 4 reads of 8 KiB since: 4 records done, replay on the 5th.
  assert.equal(e.observe(seg, 42, 1_000_000 + 4 * 8192), seg + 40n + 4n * 128n);
  // 10 reads: the image and WILL_INIT records cost none, so replay is on the 13th record.
  assert.equal(e.observe(seg, 42, 1_000_000 + 10 * 8192), seg + 2400n);
  // Never backwards within a segment, whatever the counter does.
  assert.equal(e.observe(seg, 42, 1_000_000), seg + 2400n);
  // Read more than everything decoded costs: replay is past the last decoded record (its end), so the
  // window can retire what it holds and the decoder go on (held back, the two waited on each other).
  assert.equal(e.observe(seg, 42, 1_000_000 + 500 * 8192), seg + 2500n);
  // The next segment: its start; a new startup process (PostgreSQL restarted): its segment, even if earlier.
  assert.equal(e.observe(seg + SEG, 42, 2_000_000), seg + SEG);
  assert.equal(e.observe(seg, 77, 5), seg);
});

test('replay estimate: counts in the server\'s page sizes (BLCKSZ per block read, XLOG_BLCKSZ per WAL page), not 8 KiB', () => {
  // A server built with 4 KiB data pages and 16 KiB WAL pages (pg_control's blcksz and xlog_blcksz).
  const e = new ReplayEstimate(16384, 4096);
  const seg = 3n * SEG;
  for (let i = 0; i < 8; i++) e.record(rec(seg + 40n + BigInt(i) * 128n, [block(i)]));
  // The next record ends on the next WAL page: one WAL page read (16 KiB) and its block (4 KiB).
  e.record(rec(seg + 16384n + 40n, [block(50)]));
  e.record(rec(seg + 16384n + 200n, [block(51)]));
  assert.equal(e.observe(seg, 7, 0), seg);
  // 3 reads of 4 KiB: 3 records done, replay on the 4th (counted in 8 KiB reads it would be on the 2nd).
  assert.equal(e.observe(seg, 7, 3 * 4096), seg + 40n + 3n * 128n);
  // All 8 blocks and the WAL page (8 * 4 + 16 KiB): the record after the page boundary is done too.
  assert.equal(e.observe(seg, 7, 8 * 4096 + 16384 + 4096), seg + 16384n + 200n);
});

test('replay estimate: a read count from /proc/<pid>/io, null when unreadable', async () => {
  const proc = mkdtempSync(join(tmpdir(), 'pg-prefaulter-proc-'));
  try {
    mkdirSync(join(proc, '123'));
    writeFileSync(join(proc, '123', 'io'), 'rchar: 98304\nwchar: 0\nsyscr: 12\n');
    assert.equal(await readBytesOf(123, proc), 98304);
    assert.equal(await readBytesOf(124, proc), null);
    assert.equal(typeof (await readBytesOf(process.pid)), 'number', 'our own /proc/<pid>/io');
  } finally {
    rmSync(proc, { recursive: true, force: true });
  }
});

test('replay estimate: a block still in shared_buffers is not read again (an update and the prune of its page cost one read)', () => {
  const e = new ReplayEstimate(8192, 8192, 4);
  const seg = 7n * SEG;
  // Heap update then prune of the same page, for pages 0..3: one read each (the second reference finds the page in shared_buffers).
  for (let i = 0; i < 4; i++) {
    e.record(rec(seg + 40n + BigInt(i) * 256n, [block(i)]));
    e.record(rec(seg + 168n + BigInt(i) * 256n, [block(i)]));
  }
  assert.equal(e.observe(seg, 9, 0), seg);
  // 3 reads: pages 0..2 done with both of their records, replay on page 3's update.
  assert.equal(e.observe(seg, 9, 3 * 8192), seg + 40n + 3n * 256n);
  // Page 0 again after 4 more distinct pages (shared_buffers of 4 pages): evicted, read again; page 3 again at once: not read.
  e.record(rec(seg + 2000n, [block(10)]));
  e.record(rec(seg + 2100n, [block(0)]));
  e.record(rec(seg + 2200n, [block(3)]));
  e.record(rec(seg + 2300n, [block(11)]));
  // 4 reads of pages 0..3, then page 10 and page 0 again: 6 reads put replay on the record after page 0's second read, which costs nothing (page 3), so on page 11's.
  assert.equal(e.observe(seg, 9, 6 * 8192), seg + 2300n);
  // An image restores the page into shared_buffers: a later reference is not read.
  e.record(rec(seg + 3000n, [block(20, { hasImage: true, applyImage: true })]));
  e.record(rec(seg + 3100n, [block(20)]));
  e.record(rec(seg + 3200n, [block(21)]));
  assert.equal(e.observe(seg, 9, 7 * 8192), seg + 3200n);
});

test('replay estimate: shared_buffers learnt late (off the server\'s shared memory) stops counting re-reads replay never does', () => {
  // Pages 0..5 read, then page 0 again after 5 other pages: with shared_buffers of 4 pages it was evicted
  // (read again), with 64 it is still there (not read).
  const feed = (e: ReplayEstimate, seg: bigint): void => {
    for (let i = 0; i < 6; i++) e.record(rec(seg + 40n + BigInt(i) * 128n, [block(i)]));
    e.record(rec(seg + 1000n, [block(0)]));
    e.record(rec(seg + 1100n, [block(50)]));
  };
  const small = new ReplayEstimate(8192, 8192, 4);
  const seg = 9n * SEG;
  feed(small, seg);
  small.observe(seg, 3, 0);
  // 7 reads: with 4 pages the re-read of page 0 is the 7th, so replay is on page 50's record only after 7.
  assert.equal(small.observe(seg, 3, 6 * 8192), seg + 1000n);
  const learnt = new ReplayEstimate(8192, 8192, 4);
  learnt.setSharedBufferPages(64);
  feed(learnt, seg);
  learnt.observe(seg, 3, 0);
  // 6 reads: page 0 is still in shared_buffers, so 6 reads already put replay on page 50's record.
  assert.equal(learnt.observe(seg, 3, 6 * 8192), seg + 1100n);
  // A larger table than the first one (past 2 slots a page): the reach grows with it.
  const grown = new ReplayEstimate(8192, 8192, 4);
  grown.setSharedBufferPages(100_000);
  feed(grown, seg);
  grown.observe(seg, 3, 0);
  assert.equal(grown.observe(seg, 3, 6 * 8192), seg + 1100n);
});

test('replay estimate: a title move seen late keeps the reads replay did meanwhile; the title bounds the estimate to its segment', () => {
  const e = new ReplayEstimate(8192, 8192);
  const seg = 20n * SEG;
  // 8 records of one block read each at the end of segment 20, 8 at the start of segment 21.
  for (let i = 0; i < 8; i++) e.record(rec(seg + SEG - 4096n + BigInt(i) * 128n, [block(i)]));
  for (let i = 0; i < 8; i++) e.record(rec(seg + SEG + 40n + BigInt(i) * 128n, [block(100 + i)]));
  assert.equal(e.observe(seg, 5, 1000), seg);
  // Replay read 2 blocks of segment 20 when we looked: on its 3rd record.
  assert.equal(e.observe(seg, 5, 1000 + 2 * 8192), seg + SEG - 4096n + 2n * 128n);
  // Next look: the title names segment 21 and replay has read 6 more blocks (the 6 left in segment 20, no
  // more): it is on segment 21's first record.
  assert.equal(e.observe(seg + SEG, 5, 1000 + 8 * 8192), seg + SEG + 40n);
  // Or 11 more: the 6 blocks, segment 21's first WAL page and 4 of its blocks: on its 5th record, not at its
  // start (re-based at the new title, those reads were lost and the estimate stayed at the start until segment 22).
  const late = new ReplayEstimate(8192, 8192);
  for (let i = 0; i < 8; i++) late.record(rec(seg + SEG - 4096n + BigInt(i) * 128n, [block(i)]));
  for (let i = 0; i < 8; i++) late.record(rec(seg + SEG + 40n + BigInt(i) * 128n, [block(100 + i)]));
  late.observe(seg, 5, 1000);
  late.observe(seg, 5, 1000 + 2 * 8192);
  assert.equal(late.observe(seg + SEG, 5, 1000 + 13 * 8192), seg + SEG + 40n + 4n * 128n);
  // The model counting fewer reads than replay did (pages it does not know of): never past the title's
  // segment while records past it are decoded.
  const ahead = new ReplayEstimate(8192, 8192);
  for (let i = 0; i < 8; i++) ahead.record(rec(seg + SEG - 4096n + BigInt(i) * 128n, [block(i)]));
  for (let i = 0; i < 8; i++) ahead.record(rec(seg + SEG + 40n + BigInt(i) * 128n, [block(100 + i)]));
  ahead.observe(seg, 5, 0);
  assert.equal(ahead.observe(seg, 5, 12 * 8192), seg + SEG, 'held at the segment\'s end while the title names it');
  // Replay moves on into segment 21: counted from the end of segment 20 (one read more: on its first
  // record), not from where the 12 reads would put it (its 4th).
  assert.equal(ahead.observe(seg + SEG, 5, 13 * 8192), seg + SEG + 40n);
});
