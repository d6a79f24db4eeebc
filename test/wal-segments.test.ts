// LSN text, CRC-32C, segment names, and reading an LSN range from a real pg_wal.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { selectedVersions, withPrimary } from './harness/index.ts';
import { WalDecoder, crc32c, formatLsn, isDecodeError, listSegments, parseLsn, parseSegmentName, readWalRange, rmgrName, segmentName, segmentSizeOf } from '../src/wal/index.ts';

test('LSN text as PostgreSQL prints it', () => {
  assert.equal(parseLsn('16/B374D848'), 0x16b374d848n);
  assert.equal(parseLsn('0/0'), 0n);
  assert.equal(parseLsn('ffffffff/ffffffff'), 0xffffffffffffffffn);
  assert.equal(formatLsn(0x16b374d848n), '16/B374D848');
  assert.equal(formatLsn(0n), '0/0');
  assert.equal(formatLsn(0xffffffffffffffffn), 'FFFFFFFF/FFFFFFFF');
  for (const bad of ['', '16', '16/', '/1', '1/2/3', 'G/0', '123456789/0', '0x1/0', ' 1 /2']) {
    assert.throws(() => parseLsn(bad), /invalid LSN/, bad);
  }
});

test('CRC-32C known answers, any alignment and length', () => {
  assert.equal(crc32c(Buffer.from('123456789')), 0xe3069283);
  assert.equal(crc32c(Buffer.alloc(32)), 0x8a9136aa);
  assert.equal(crc32c(Buffer.alloc(32, 0xff)), 0x62a8ab43);
  const data = Buffer.alloc(300);
  for (let i = 0; i < data.length; i++) data[i] = (i * 31 + 7) & 0xff;
  const bitwise = (b: Uint8Array): number => {
    let c = 0xffffffff;
    for (const x of b) {
      c ^= x;
      for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    }
    return (c ^ 0xffffffff) >>> 0;
  };
  for (let start = 0; start < 9; start++) {
    for (const len of [0, 1, 7, 8, 63, 64, 65, 200]) {
      const view = data.subarray(start, start + len);
      assert.equal(crc32c(view), bitwise(view), `offset ${start} length ${len}`);
    }
  }
});

test('segment names', () => {
  assert.equal(segmentName(1, 0x123n), '000000010000000100000023');
  assert.deepEqual(parseSegmentName('000000010000000100000023'), { timeline: 1, segNo: 0x123n });
  // 1 GiB segments: 4 per 4 GiB "log id"
  assert.equal(segmentName(3, 9n, 1 << 30), '000000030000000200000001');
  assert.deepEqual(parseSegmentName('000000030000000200000001', 1 << 30), { timeline: 3, segNo: 9n });
  assert.equal(parseSegmentName('000000030000000200000004', 1 << 30), null, 'segment number out of range for the size');
  for (const bad of ['00000001000000010000002', '000000010000000100000023.partial', '00000002.history', 'x00000010000000100000023']) {
    assert.equal(parseSegmentName(bad), null, bad);
  }
  assert.equal(rmgrName(10), 'Heap');
  assert.equal(rmgrName(21), 'LogicalMessage');
  assert.equal(rmgrName(130), 'custom130');
});

const version = selectedVersions().at(-1)!;

test(`PG ${version}: listSegments and readWalRange over a live pg_wal`, async () => {
  await withPrimary(version, { name: 'wal-segments' }, async ({ primary: p }) => {
    await p.exec(`create table r (id int, pad text); insert into r select g, repeat('r', 100) from generate_series(1, 2000) g;`);
    const from = parseLsn(await p.scalar<string>('select pg_current_wal_insert_lsn()::text'));
    for (let i = 0; i < 3; i++) {
      await p.exec(`insert into r select g, 'more' from generate_series(1, 500) g`);
      await p.exec('select pg_switch_wal()');
    }
    await p.exec(`insert into r values (0, 'last')`);
    const to = parseLsn(await p.scalar<string>('select pg_current_wal_flush_lsn()::text'));
    const dir = join(p.dataDir, 'pg_wal');
    const segs = await listSegments(dir);
    assert.ok(segs.length >= 4);
    assert.deepEqual(segs.map((s) => s.segNo), [...segs.map((s) => s.segNo)].sort((a, b) => (a < b ? -1 : 1)));
    assert.equal(await segmentSizeOf(segs[0]!.path), 16 * 1024 * 1024);

    // Chunks are contiguous, start where asked, hold the files' bytes, and stop at `end`.
    const chunks: { lsn: bigint; data: Buffer }[] = [];
    for await (const c of readWalRange({ dir, timeline: 1, start: from, end: to, chunkSize: 3 * 1024 * 1024 + 5 })) chunks.push(c);
    assert.equal(chunks[0]!.lsn, from);
    let at = from;
    for (const c of chunks) {
      assert.equal(c.lsn, at);
      const seg = c.lsn / (16n << 20n);
      const file = readFileSync(join(dir, segmentName(1, seg)));
      const off = Number(c.lsn % (16n << 20n));
      assert.ok(file.subarray(off, off + c.data.length).equals(c.data), `bytes at ${formatLsn(c.lsn)}`);
      at += BigInt(c.data.length);
    }
    assert.equal(at, to);

    // Fed to a decoder from a record start, the range decodes to the flushed end without errors.
    const d = new WalDecoder({ startLsn: from });
    let n = 0;
    for (const c of chunks) {
      d.push(c.data);
      for (let r = d.next(); r; r = d.next()) {
        assert.ok(!isDecodeError(r), isDecodeError(r) ? r.message : '');
        n++;
      }
    }
    assert.ok(n > 1000);
    assert.ok(d.nextRecordLsn <= to && to - d.nextRecordLsn < 8192n, 'decoded up to the end of the range');

    // Without an end, reading goes on to the last segment on disk (its unwritten tail included).
    let last = 0n;
    for await (const c of readWalRange({ dir, timeline: 1, start: from })) last = c.lsn + BigInt(c.data.length);
    assert.equal(last, (segs.at(-1)!.segNo + 1n) * (16n << 20n));
    // A missing timeline's segments end the range at once.
    const none: unknown[] = [];
    for await (const c of readWalRange({ dir, timeline: 7, start: from })) none.push(c);
    assert.equal(none.length, 0);
  });
});
