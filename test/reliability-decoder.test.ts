// The decoder's memory is bounded whatever the WAL holds: a record above
// BIG_RECORD_BYTES is streamed past (header chain kept, CRC checked piece by
// piece), never held whole, and the window it grew shrinks back.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BIG_RECORD_BYTES, WalDecoder } from '../src/wal/decoder.ts';
import { isDecodeError, type DecodeError, type WalRecord } from '../src/wal/types.ts';
import { WalBuilder, buildWal, heapRecord, noopRecord } from './helpers/wal-builder.ts';

const START = 0x3000000n;
const blocks = (n: number) => Array.from({ length: n }, (_, i) => ({ spcOid: 1663, dbOid: 5, relNumber: 16384 + (i % 3), block: i * 7 }));

function decodeAll(bytes: Buffer, chunk: () => number): { out: (WalRecord | DecodeError)[]; maxHeld: number } {
  const d = new WalDecoder({ startLsn: START });
  const out: (WalRecord | DecodeError)[] = [];
  let maxHeld = 0;
  for (let pos = 0; pos < bytes.length; ) {
    const n = Math.min(chunk(), bytes.length - pos);
    d.push(bytes.subarray(pos, pos + n));
    pos += n;
    for (let r = d.next(); r; r = d.next()) out.push(r);
    maxHeld = Math.max(maxHeld, d.bufferedBytes);
  }
  return { out, maxHeld };
}

test('a record above the bound is streamed past: its block references decoded, nothing held whole', () => {
  const big = { ...noopRecord(3 * BIG_RECORD_BYTES), blocks: blocks(5), rmgr: 10, info: 0 };
  const { bytes, lsns } = buildWal({ startLsn: START }, [heapRecord(blocks(2)), big, heapRecord(blocks(3)), noopRecord(100), heapRecord(blocks(1))]);
  let seed = 7;
  const sizes = [1, 13, 8192, 128 * 1024, 700, 65536];
  const { out, maxHeld } = decodeAll(bytes, () => sizes[seed++ % sizes.length]!);
  assert.deepEqual(out.filter(isDecodeError), [], 'no decode errors');
  const recs = out as WalRecord[];
  assert.deepEqual(recs.map((r) => BigInt(r.lsn)), lsns);
  assert.equal(recs[1]!.totalLength, 24 + 5 * 20 + 5 + 3 * BIG_RECORD_BYTES);
  assert.deepEqual(recs[1]!.blocks.map((b) => b.block), [0, 7, 14, 21, 28]);
  assert.deepEqual(recs[2]!.blocks.map((b) => b.relNumber), [16384, 16385, 16386]);
  // chunks of at most 128 KiB: the decoder never holds much more than one chunk plus a page
  assert.ok(maxHeld < 512 * 1024, `held ${maxHeld} bytes at most`);
});

test('a big record decodes the same whether fed in one piece or byte-scattered', () => {
  const { bytes } = buildWal({ startLsn: START }, [noopRecord(BIG_RECORD_BYTES + 1), heapRecord(blocks(4))]);
  const whole = decodeAll(bytes, () => bytes.length).out;
  let i = 0;
  const scattered = decodeAll(bytes, () => [3, 8191, 40000][i++ % 3]!).out;
  assert.equal(whole.length, 2);
  assert.deepEqual(scattered, whole);
});

test('damage inside a big record is a CRC error at its start; decoding resumes at the next page', () => {
  const { bytes, lsns } = buildWal({ startLsn: START }, [heapRecord(blocks(1)), noopRecord(2 * BIG_RECORD_BYTES), heapRecord(blocks(2))]);
  const bad = Buffer.from(bytes);
  bad[Number(lsns[1]! - START) + 1_000_000] ^= 0xff; // a payload byte, not a page header
  const { out } = decodeAll(bad, () => 65536);
  const errs = out.filter(isDecodeError);
  assert.equal(errs.length, 1);
  assert.equal(BigInt(errs[0]!.lsn), lsns[1]);
  assert.match(errs[0]!.message, /checksum/);
  assert.equal(BigInt((out[0] as WalRecord).lsn), lsns[0]);
});

test('a 1 GiB-class record streams through in bounded memory', () => {
  const d = new WalDecoder({ startLsn: START });
  const got: WalRecord[] = [];
  let maxHeld = 0;
  const feed = (p: Buffer) => {
    d.push(Buffer.from(p));
    for (let r = d.next(); r; r = d.next()) {
      assert.ok(!isDecodeError(r), isDecodeError(r) ? r.message : '');
      got.push(r as WalRecord);
    }
    maxHeld = Math.max(maxHeld, d.bufferedBytes);
  };
  const b = new WalBuilder({ startLsn: START }, feed);
  const before = process.memoryUsage().rss;
  b.add(heapRecord(blocks(1)));
  b.add(noopRecord(200 * 1024 * 1024));
  b.add(heapRecord(blocks(2)));
  feed(b.flushPartial());
  assert.equal(got.length, 3);
  assert.ok(maxHeld <= 8192, `held ${maxHeld}`);
  const grown = process.memoryUsage().rss - before;
  assert.ok(grown < 100 * 1024 * 1024, `RSS grew ${grown} bytes for a 200 MiB record`);
});

test('buffers grown for a large record shrink back once it is decoded', () => {
  const near = BIG_RECORD_BYTES - 4096; // just below the bound: held whole, reassembled
  const records = [noopRecord(near), ...Array.from({ length: 50 }, (_, i) => heapRecord(blocks(1 + (i % 3))))];
  const { bytes, lsns } = buildWal({ startLsn: START }, records);
  const d = new WalDecoder({ startLsn: START });
  let decoded = 0;
  let peak = 0;
  for (let pos = 0; pos < bytes.length; pos += 8192) {
    d.push(bytes.subarray(pos, pos + 8192));
    for (let r = d.next(); r; r = d.next()) {
      assert.ok(!isDecodeError(r));
      decoded++;
    }
    peak = Math.max(peak, d.retainedBytes);
  }
  assert.equal(decoded, lsns.length);
  assert.ok(peak >= near, `the large record was held (${peak} bytes at the peak)`);
  assert.ok(d.retainedBytes < 128 * 1024, `still holding ${d.retainedBytes} bytes after the small records`);
});
