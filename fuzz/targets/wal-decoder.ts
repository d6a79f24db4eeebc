// Fuzz target: the streaming WAL decoder, fed in arbitrary chunks.
// Input: [u64 LE start LSN][u8 log2 segment size][u32 LE chunking seed][WAL bytes].
// Properties: nothing throws; a bounded number of results per byte (no loop);
// the decoder holds no more than it was given; the same bytes give the same
// results however they are chunked; and every record of a seed that lies before
// the first changed byte is still decoded, unchanged.
import { BIG_RECORD_BYTES, WalDecoder } from '../../src/wal/decoder.ts';
import type { DecodeError, WalRecord } from '../../src/wal/types.ts';
import { formatLsn } from '../../src/lsn.ts';
import { PropertyViolation, rng, type FuzzTarget } from '../engine.ts';
import { buildWal, heapRecord, noopRecord } from '../../test/helpers/wal-builder.ts';

export const HEADER = 13;

export function walInput(startLsn: bigint, segLog2: number, chunkSeed: number, wal: Buffer): Buffer {
  const h = Buffer.alloc(HEADER);
  h.writeBigUInt64LE(startLsn, 0);
  h[8] = segLog2;
  h.writeUInt32LE(chunkSeed >>> 0, 9);
  return Buffer.concat([h, wal]);
}

type Out = WalRecord | DecodeError;
const show = (r: Out): string => JSON.stringify(r, (_k, v) => (typeof v === 'bigint' ? formatLsn(v) : v));

/** Decodes wal from start, pushing chunks of the sizes next() gives; stops where the decoder rewinds (unwritten bytes). */
function decode(start: bigint, segSize: number, wal: Buffer, next: () => number): Out[] {
  const d = new WalDecoder({ startLsn: start, segmentSize: segSize });
  const out: Out[] = [];
  const limit = wal.length / 8 + 16;
  for (let pos = 0; pos < wal.length; ) {
    const n = Math.max(1, Math.min(next(), wal.length - pos));
    d.push(wal.subarray(pos, pos + n));
    pos += n;
    for (let r = d.next(); r; r = d.next()) {
      out.push(r);
      if (out.length > limit) throw new PropertyViolation(`more than ${limit} results from ${wal.length} bytes: the decoder loops`);
    }
    if (d.bufferedBytes > pos + 16) throw new PropertyViolation(`decoder holds ${d.bufferedBytes} bytes after ${pos} were pushed`);
    if (d.inputLsn < start + BigInt(pos)) break;
  }
  return out;
}

interface Seed {
  start: bigint;
  segLog2: number;
  wal: Buffer;
  records: WalRecord[];
}
const seeds: Seed[] = [];

/** Registers a seed's decode as the reference for the prefix property (seeds must decode without errors). */
function learn(input: Buffer): void {
  const start = input.readBigUInt64LE(0);
  const segLog2 = input[8]!;
  const wal = input.subarray(HEADER);
  const out = decode(start, 2 ** segLog2, wal, () => wal.length);
  const bad = out.find((r) => 'kind' in r);
  if (bad) throw new Error(`fuzz seed at ${formatLsn(start)} does not decode cleanly: ${(bad as DecodeError).message}`);
  seeds.push({ start, segLog2, wal: Buffer.from(wal), records: out as WalRecord[] });
}

export function builtSeeds(): Buffer[] {
  const blocks = (n: number) => Array.from({ length: n }, (_, i) => ({ spcOid: 1663, dbOid: 5, relNumber: 16384 + i, block: i * 3 }));
  const start = 0x2000000n; // a segment start: long page header
  const small = buildWal({ startLsn: start }, [heapRecord(blocks(2)), noopRecord(9000), heapRecord(blocks(33)), noopRecord(10)]).bytes;
  const big = buildWal({ startLsn: start + 8192n }, [heapRecord(blocks(1)), { ...noopRecord(BIG_RECORD_BYTES + 100), blocks: blocks(3), rmgr: 10 }, heapRecord(blocks(4))]).bytes;
  return [walInput(start, 24, 1, small), walInput(start + 8192n, 24, 2, big)];
}

export const walDecoderTarget: FuzzTarget = {
  name: 'wal-decoder',
  covers: ['/src/wal/'],
  maxLen: 1200 * 1024,
  dictionary: [Buffer.from([0x16, 0xd1]), Buffer.from([0x06, 0xd1]), Buffer.from([0x18, 0xd1]), Buffer.from([0, 0, 0, 0, 0, 0, 0, 0]), Buffer.from([0xff, 0xff, 0xff, 0xff]), Buffer.from([254]), Buffer.from([255]), Buffer.from([0x01, 0x00]), Buffer.from([0x08, 0x00])],
  seeds: () => builtSeeds(),
  run(input) {
    if (input.length < HEADER) return;
    if (seeds.length === 0) for (const s of builtSeeds()) learn(s);
    const start = input.readBigUInt64LE(0) & 0xffffffffffffn; // keep LSNs sane: 48 bits
    const segLog2 = Math.min(30, Math.max(20, input[8]!));
    const wal = input.subarray(HEADER);
    const rand = rng(input.readUInt32LE(9));
    const sizes = [1, 7, 8, 23, 24, 40, 8192, 8193, 65536, 131072];
    const whole = decode(start, 2 ** segLog2, wal, () => wal.length);
    const chunked = decode(start, 2 ** segLog2, wal, () => (rand() < 0.5 ? sizes[Math.floor(rand() * sizes.length)]! : 1 + Math.floor(rand() * 20000)));
    if (whole.length !== chunked.length || whole.some((r, i) => show(r) !== show(chunked[i]!))) {
      const i = whole.findIndex((r, k) => !chunked[k] || show(r) !== show(chunked[k]!));
      throw new PropertyViolation(`chunking changed the results at #${i}: whole ${whole[i] ? show(whole[i]!) : 'none'} vs chunked ${chunked[i] ? show(chunked[i]!) : 'none'}`);
    }
    for (const s of seeds) {
      if (s.start !== start || s.segLog2 !== segLog2) continue;
      let diff = 0;
      const n = Math.min(s.wal.length, wal.length);
      while (diff < n && s.wal[diff] === wal[diff]) diff++;
      const end = start + BigInt(diff);
      // a record ending before the first changed byte (its page header included) must come out unchanged
      const expected = s.records.filter((r) => r.endLsn <= end);
      for (let i = 0; i < expected.length; i++) {
        if (!whole[i] || show(whole[i]!) !== show(expected[i]!)) {
          throw new PropertyViolation(`seed record ${formatLsn(expected[i]!.lsn)} (before the first changed byte at ${formatLsn(end)}) decoded as ${whole[i] ? show(whole[i]!) : 'nothing'}`);
        }
      }
    }
  },
};

/** Adds real-WAL seeds (from fuzz/corpus) to the prefix-property references. */
export function learnSeed(input: Buffer): void {
  try {
    learn(input);
  } catch {
    // a mutated corpus entry, not a clean seed: it still runs as an input
  }
}
