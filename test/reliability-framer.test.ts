// Framer.nextParts: a message that arrived in several socket reads is handed
// out as views of them (no copy of the whole), headers in the first part.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Framer, PREFIX } from '../src/replication/framer.ts';

function message(type: string, n: number, fill: number): Buffer {
  const b = Buffer.alloc(5 + n, fill);
  b.write(type, 0, 'latin1');
  b.writeUInt32BE(n + 4, 1);
  return b;
}

test('nextParts returns every message whole, however the bytes were split', () => {
  const msgs = [message('d', 128 * 1024, 1), message('k', 13, 2), message('d', 3, 3), message('E', 70_000, 4), message('d', 40, 5)];
  const all = Buffer.concat(msgs);
  let seed = 1;
  for (const cut of [1, 7, 30, 64, 65, 1000, 65536, all.length]) {
    const f = new Framer();
    const got: Buffer[][] = [];
    for (let pos = 0; pos < all.length; ) {
      const n = Math.min(all.length - pos, cut === 1 ? 1 + (seed++ % 5) : cut);
      f.push(all.subarray(pos, pos + n));
      pos += n;
      for (let p = f.nextParts(); p; p = f.nextParts()) got.push(p);
    }
    assert.equal(got.length, msgs.length, `cut ${cut}`);
    got.forEach((parts, i) => {
      assert.deepEqual(Buffer.concat(parts), msgs[i], `cut ${cut}: message ${i}`);
      assert.ok(parts[0]!.length >= Math.min(PREFIX, msgs[i]!.length), `cut ${cut}: message ${i}: first part ${parts[0]!.length} bytes`);
    });
    assert.equal(f.pendingBytes, 0);
  }
});

test('a 128 KiB message read in 64 KiB pieces is not copied whole', () => {
  const m = message('d', 128 * 1024, 9);
  const f = new Framer();
  const reads = [m.subarray(0, 65536), m.subarray(65536, 131072), m.subarray(131072)];
  for (const r of reads) f.push(r);
  const parts = f.nextParts()!;
  assert.equal(parts.length, 3);
  parts.forEach((p, i) => assert.equal(p.buffer, reads[i]!.buffer, `part ${i} is a view of read ${i}`));
});

test('a header claiming more than 16 MiB is refused at once, before any of it is buffered', () => {
  const f = new Framer();
  const h = Buffer.alloc(6);
  h.write('d', 0, 'latin1');
  h.writeUInt32BE(60 * 1024 * 1024, 1); // the trickling upstream's claim
  f.push(h);
  assert.throws(() => f.nextParts(), /protocol: message length 62914560 is invalid/);
});
