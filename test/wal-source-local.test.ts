// The local pg_wal source: which file it reads a segment from, and how often
// it lists pg_wal to find it (once per segment, again at the end of written
// WAL and when the file went away, not at every read).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalSource } from '../src/wal-source/local.ts';
import { segmentName } from '../src/wal/segments.ts';

const SEG = 1 << 20; // 1 MiB segments: initdb --wal-segsize's smallest
const CHUNK = 64 * 1024;

function segment(fill: number): Buffer {
  return Buffer.alloc(SEG, fill);
}

/** A source over dir whose read limit moves CHUNK at a time, counting pg_wal listings. */
function source(dir: string, startLsn: bigint) {
  let limit = startLsn + BigInt(CHUNK);
  const controller = new AbortController();
  const listings = { count: 0 };
  const src = new LocalSource({
    pgWalDir: dir,
    startLsn,
    timeline: 1,
    segmentSize: SEG,
    pollIntervalMs: 1,
    limit: () => limit,
    signal: controller.signal,
    listDir: async (d) => {
      listings.count++;
      return readdir(d);
    },
  });
  const it = src[Symbol.asyncIterator]();
  return {
    src,
    listings,
    /** The next chunk, after moving the limit one chunk on. */
    async next(): Promise<{ lsn: bigint; data: Buffer }> {
      const r = await it.next();
      assert.ok(!r.done);
      limit += BigInt(CHUNK);
      return r.value;
    },
    stop: () => controller.abort(),
  };
}

test('local source: reads in one segment list pg_wal once; the next segment lists it again', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pg-prefaulter-localwal-'));
  try {
    writeFileSync(join(dir, segmentName(1, 0n, SEG)), segment(0xa1));
    writeFileSync(join(dir, segmentName(1, 1n, SEG)), segment(0xb2));
    for (let i = 0; i < 200; i++) writeFileSync(join(dir, `archive_status_${i}`), ''); // a busy pg_wal
    const s = source(dir, 0n);
    let lsn = 0n;
    for (let i = 0; i < SEG / CHUNK; i++) {
      const c = await s.next();
      assert.equal(c.lsn, lsn);
      assert.equal(c.data[0], 0xa1);
      lsn += BigInt(c.data.length);
    }
    assert.equal(s.listings.count, 1, 'one listing for 16 reads of segment 0');
    const c = await s.next();
    assert.equal(c.lsn, BigInt(SEG));
    assert.equal(c.data[0], 0xb2, 'segment 1');
    assert.equal(s.listings.count, 2);
    s.stop();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('local source: at the end of written WAL a newer timeline\'s copy of the segment is taken; a file renamed away (recycled) is looked for again', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pg-prefaulter-localwal-'));
  try {
    writeFileSync(join(dir, segmentName(1, 0n, SEG)), segment(0x11));
    const s = source(dir, 0n);
    assert.equal((await s.next()).data[0], 0x11);
    assert.equal(s.listings.count, 1);

    // Timeline 2's copy appears: reads go on in the file found until the end of written WAL.
    writeFileSync(join(dir, segmentName(2, 0n, SEG)), segment(0x22));
    assert.equal((await s.next()).data[0], 0x11);
    assert.equal(s.listings.count, 1);
    // The decoder meets unwritten bytes and rewinds: pg_wal is listed again and timeline 2 taken.
    const again = BigInt(CHUNK);
    s.src.rewind(again);
    const c = await s.next();
    assert.equal(c.lsn, again);
    assert.equal(c.data[0], 0x22, 'the newer timeline\'s file after a rewind');
    assert.equal(s.listings.count, 2);

    // Renamed to a later segment's name (as PostgreSQL recycles), timeline 3's copy there: found again.
    renameSync(join(dir, segmentName(2, 0n, SEG)), join(dir, segmentName(2, 7n, SEG)));
    writeFileSync(join(dir, segmentName(3, 0n, SEG)), segment(0x33));
    assert.equal((await s.next()).data[0], 0x33);
    assert.equal(s.listings.count, 3, 'listed again once the file was gone');
    s.stop();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
