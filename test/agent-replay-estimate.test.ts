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
const rec = (lsn: bigint, blocks: BlockRef[]): WalRecord => ({
  lsn, endLsn: lsn + 100n, prevLsn: 0n, xid: 1, rmgr: 10, rmgrName: 'Heap', info: 0, totalLength: 100, blocks, events: [],
});

test('replay estimate: reads since the segment opened map to the record replay is on; images and WILL_INIT cost nothing', () => {
  const e = new ReplayEstimate(8192);
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
  // Past what we decoded: stays at the last known position.
  assert.equal(e.observe(seg, 42, 1_000_000 + 500 * 8192), seg + 2400n);
  // The next segment: its start; a new startup process (PostgreSQL restarted): its segment, even if earlier.
  assert.equal(e.observe(seg + SEG, 42, 2_000_000), seg + SEG);
  assert.equal(e.observe(seg, 77, 5), seg);
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
