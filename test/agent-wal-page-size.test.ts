// The agent reads WAL in the server's page size (XLOG_BLCKSZ: SHOW wal_block_size,
// or pg_control), not a built-in 8 KiB: where reading starts and how the decoder
// walks pages both follow it (src/agent/readahead.ts, src/agent/decode-loop.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { walDecoderFor } from '../src/agent/decode-loop.ts';
import { pipelineStartLsn } from '../src/agent/readahead.ts';
import type { FollowerStatus } from '../src/follower/index.ts';
import { isDecodeError, type DecodeError, type WalRecord } from '../src/wal/types.ts';
import { buildWal, heapRecord, noopRecord } from './helpers/wal-builder.ts';

const START = 0x5000000n;
const SEGMENT = 16 * 1024 * 1024;
const blocks = (n: number) => Array.from({ length: n }, (_, i) => ({ spcOid: 1663, dbOid: 5, relNumber: 16384, block: i * 3 }));

function decodeAll(bytes: Buffer, walPageSize: number): (WalRecord | DecodeError)[] {
  const d = walDecoderFor({ startLsn: START, segmentSize: SEGMENT, blockSize: 8192, walPageSize }, true);
  d.push(bytes);
  const out: (WalRecord | DecodeError)[] = [];
  for (let r = d.next(); r; r = d.next()) out.push(r);
  return out;
}

test('WAL page size: a server with 4 KiB WAL pages is decoded across its page boundaries', () => {
  // Records spanning several 4 KiB pages, each page with its header saying XLOG_BLCKSZ = 4096.
  const { bytes, lsns } = buildWal({ startLsn: START, pageSize: 4096 }, [heapRecord(blocks(2)), noopRecord(10_000), heapRecord(blocks(5)), noopRecord(5000)]);
  const out = decodeAll(bytes, 4096);
  assert.deepEqual(out.filter(isDecodeError), [], 'no decode errors');
  assert.deepEqual(
    out.map((r) => BigInt((r as WalRecord).lsn)),
    lsns,
  );
  assert.deepEqual((out[2] as WalRecord).blocks.map((b) => b.block), [0, 3, 6, 9, 12]);
  // The same bytes read as 8 KiB pages are not WAL: what a hard-coded page size would do.
  assert.ok(decodeAll(bytes, 8192).some(isDecodeError), 'read with 8 KiB pages it fails');
});

test('WAL page size: reading starts at the start of the WAL page holding the replay position', () => {
  const status = (replayLsn: bigint): FollowerStatus => ({
    inRecovery: true, replayLsn, receiveLsn: replayLsn, replayTimestamp: null, timeline: 1, replayPaused: false, upstream: null, walReceiverStatus: null,
  });
  assert.equal(pipelineStartLsn(status(START + 5000n), 4096), START + 4096n);
  assert.equal(pipelineStartLsn(status(START + 5000n), 8192), START);
  assert.equal(pipelineStartLsn(status(START + 40_000n), 32768), START + 32768n);
});
