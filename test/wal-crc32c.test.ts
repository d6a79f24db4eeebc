// CRC-32C: the byte loop, the word loop and the native one (@node-rs/crc32, when it
// loads) give PostgreSQL's answers for every length, alignment and split.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CRC32C_INIT, crc32c, crc32cImplementation, crc32cFinish, CrcWordViews, crc32cRecord, crc32cUpdate, crc32cUpdateJs } from '../src/wal/crc32c.ts';

function bitwise(b: Uint8Array): number {
  let c = 0xffffffff;
  for (const x of b) {
    c ^= x;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
  }
  return (c ^ 0xffffffff) >>> 0;
}

const data = new Uint8Array(70_000);
let seed = 12345;
for (let i = 0; i < data.length; i++) {
  seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
  data[i] = seed >>> 24;
}

test(`CRC-32C (${crc32cImplementation()} for long inputs) matches the bitwise definition around every threshold`, () => {
  assert.equal(crc32c(new TextEncoder().encode('123456789')), 0xe3069283);
  for (const len of [0, 1, 3, 4, 7, 8, 15, 16, 17, 20, 31, 63, 64, 65, 511, 512, 513, 1023, 1024, 8192, 65536]) {
    for (const start of [0, 1, 2, 5, 8]) {
      const want = bitwise(data.subarray(start, start + len));
      assert.equal(crc32c(data, start, start + len), want, `length ${len} at offset ${start}`);
      assert.equal(crc32cFinish(crc32cUpdateJs(CRC32C_INIT, data, start, start + len)), want, `JS, length ${len} at offset ${start}`);
    }
  }
});

test('CRC-32C continued across pieces, as a record is checked (payload, then header)', () => {
  for (const [a, b] of [[0, 20], [5, 600], [700, 8200], [24, 65000], [100, 101]] as const) {
    const whole = bitwise(data.subarray(a, b + 300));
    let c = crc32cUpdate(CRC32C_INIT, data, a, b);
    c = crc32cUpdate(c, data, b, b + 300);
    assert.equal(crc32cFinish(c), whole, `split at ${b}`);
  }
  // a Buffer and a Uint8Array over another buffer, a view at an odd offset
  const copy = Buffer.from(data.subarray(3, 9003));
  const view = new Uint8Array(data.buffer, 3, 9000);
  assert.equal(crc32c(copy), crc32c(view));
  assert.equal(crc32c(view), bitwise(view));
});

test('CRC-32C of short inputs in views at aligned and unaligned offsets', () => {
  const views = [new Uint8Array(data.buffer, 4, 4000), new Uint8Array(data.buffer, 6, 4000), Buffer.from(data.subarray(0, 4000)), new Uint8Array(data.buffer, 1024, 4000)];
  for (const len of [0, 3, 4, 7, 8, 12, 20, 24, 33, 100, 257, 511]) {
    for (const start of [0, 4, 8, 13]) {
      for (const v of views) {
        const want = bitwise(v.subarray(start, start + len));
        assert.equal(crc32c(v, start, start + len), want, `length ${len} at ${start} of a view at ${v.byteOffset}`);
      }
    }
  }
});

test('crc32cRecord: the payload after the 24-byte header, then the header up to xl_crc, read as words or bytes', () => {
  const views = new CrcWordViews();
  for (const byteOffset of [0, 4, 8, 3, 6, 0]) {
    const v = new Uint8Array(data.buffer, byteOffset, 20_000);
    if (byteOffset % 4 === 0) assert.notEqual(views.of(v), null, 'an aligned buffer is read as words');
    for (const totLen of [24, 25, 40, 64, 300, 535, 536, 8192 + 100]) {
      for (const off of [0, 8, 4096]) {
        const joined = new Uint8Array(totLen - 4);
        joined.set(v.subarray(off + 24, off + totLen), 0);
        joined.set(v.subarray(off, off + 20), totLen - 24);
        const want = bitwise(joined);
        assert.equal(crc32cRecord(v, views.of(v), off, totLen), want, `record of ${totLen} at ${off}, view at ${byteOffset}`);
        assert.equal(crc32cRecord(v, null, off, totLen), want, `record of ${totLen} at ${off}, view at ${byteOffset}, bytes`);
      }
    }
  }
});
