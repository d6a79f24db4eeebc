// Record LSNs are numbers (exact below 2^53): they equal the LSNs the WAL was written
// at, a garbage xl_prev far above 2^53 is still reported exactly and never taken for the
// previous record, and a start beyond what numbers hold is refused with a message.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WalDecoder } from '../src/wal/decoder.ts';
import { formatLsn } from '../src/lsn.ts';
import { isDecodeError, type DecodeError, type WalRecord } from '../src/wal/types.ts';
import { buildWal, heapRecord, noopRecord } from './helpers/wal-builder.ts';

const START = 0x7_0000_0000n; // above 2^32: both halves of each LSN matter
const blocks = (n: number) => Array.from({ length: n }, (_, i) => ({ spcOid: 1663, dbOid: 5, relNumber: 16384, block: i }));

function decodeAll(bytes: Buffer, startLsn: bigint): (WalRecord | DecodeError)[] {
  const d = new WalDecoder({ startLsn });
  d.push(bytes);
  const out: (WalRecord | DecodeError)[] = [];
  for (let r = d.next(); r; r = d.next()) out.push(r);
  return out;
}

test('record LSNs are numbers equal to where the records were written, prev and end included', () => {
  const { bytes, lsns } = buildWal({ startLsn: START }, [heapRecord(blocks(2)), noopRecord(9000), heapRecord(blocks(1)), noopRecord(30)]);
  const out = decodeAll(bytes, START);
  assert.deepEqual(out.filter(isDecodeError), []);
  const recs = out as WalRecord[];
  assert.deepEqual(recs.map((r) => typeof r.lsn), ['number', 'number', 'number', 'number']);
  assert.deepEqual(recs.map((r) => BigInt(r.lsn)), lsns);
  for (let i = 1; i < recs.length; i++) {
    assert.equal(recs[i]!.prevLsn, recs[i - 1]!.lsn, `xl_prev of record ${i}`);
    assert.ok(recs[i - 1]!.endLsn <= recs[i]!.lsn && recs[i]!.lsn - recs[i - 1]!.endLsn < 8 + 40, `record ${i} starts after the end of the one before`);
  }
  assert.equal(formatLsn(recs[0]!.lsn), formatLsn(lsns[0]!));
});

test('an xl_prev far above 2^53 is a prev-link error, reported exactly', () => {
  const { bytes, lsns } = buildWal({ startLsn: START }, [heapRecord(blocks(1)), heapRecord(blocks(2)), heapRecord(blocks(3))]);
  const bad = Buffer.from(bytes);
  bad.writeBigUInt64LE(0xfffffffffffffff8n, Number(lsns[1]! - START) + 8); // xl_prev of the second record
  const out = decodeAll(bad, START);
  const errs = out.filter(isDecodeError);
  assert.equal(errs.length, 1);
  assert.equal(errs[0]!.lsn, Number(lsns[1]!));
  assert.match(errs[0]!.message, /incorrect prev-link FFFFFFFF\/FFFFFFF8 at 7\//);
  assert.equal((out[0] as WalRecord).lsn, Number(lsns[0]!), 'the record before is intact');
});

test('a start LSN beyond what a number holds exactly is refused with a message', () => {
  assert.throws(() => new WalDecoder({ startLsn: 0xffff_ffff_0000_0000n }), /beyond what the decoder supports/);
});
