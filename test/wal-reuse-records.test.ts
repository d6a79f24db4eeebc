// reuseRecords: the decoder hands out one WalRecord (and its BlockRefs), overwritten by
// each next(); what a reader sees of each record is what a fresh object would hold,
// however many blocks the record before it had and wherever the chunks are cut.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BIG_RECORD_BYTES, WalDecoder } from '../src/wal/decoder.ts';
import { formatLsn } from '../src/lsn.ts';
import { isDecodeError, type WalRecord } from '../src/wal/types.ts';
import { buildWal, heapRecord, noopRecord } from './helpers/wal-builder.ts';

const START = 0x5000000n;
const blocks = (n: number) => Array.from({ length: n }, (_, i) => ({ spcOid: 1663, dbOid: 5, relNumber: 16384 + (i % 4), block: i * 11 + n }));

function decode(bytes: Buffer, reuseRecords: boolean, chunk: number): { seen: string[]; objects: Set<WalRecord> } {
  const d = new WalDecoder({ startLsn: START, reuseRecords });
  const seen: string[] = [];
  const objects = new Set<WalRecord>();
  for (let pos = 0; pos < bytes.length; pos += chunk) {
    d.push(bytes.subarray(pos, Math.min(bytes.length, pos + chunk)));
    for (let r = d.next(); r; r = d.next()) {
      if (isDecodeError(r)) throw new Error(`decode error at ${formatLsn(r.lsn)}: ${r.message}`);
      objects.add(r);
      seen.push(JSON.stringify(r)); // what the reader sees now, before the next call
    }
  }
  return { seen, objects };
}

test('reuseRecords: every record reads as a fresh one would, block counts up and down, across pages and chunks', () => {
  const specs = [heapRecord(blocks(2)), heapRecord(blocks(33)), heapRecord(blocks(1)), noopRecord(9000), heapRecord(blocks(5)), noopRecord(10), heapRecord(blocks(3))];
  for (let i = 0; i < 200; i++) specs.push(i % 3 === 0 ? noopRecord(40 + i) : heapRecord(blocks(1 + (i % 7))));
  specs.push({ ...noopRecord(BIG_RECORD_BYTES + 100), blocks: blocks(3), rmgr: 10 }, heapRecord(blocks(4)));
  const { bytes, lsns } = buildWal({ startLsn: START }, specs);
  for (const chunk of [bytes.length, 8192, 777]) {
    const fresh = decode(bytes, false, chunk);
    const reused = decode(bytes, true, chunk);
    assert.equal(fresh.seen.length, lsns.length, 'every record decoded');
    assert.deepEqual(reused.seen, fresh.seen, `chunks of ${chunk} bytes`);
    // one object for all records held whole; the big record streamed past has its own
    assert.ok(reused.objects.size <= 2, `${reused.objects.size} record objects with reuse`);
    assert.equal(fresh.objects.size, lsns.length, 'without reuse, one object per record');
  }
});
