// The recently-read set: exact (never reports a block it was not given),
// bounded, time-limited, and with few collisions at its intended load.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RecentBlocks } from '../src/prefault/recent.ts';

test('recent blocks: exact hits, no false positives, TTL expiry', () => {
  const r = new RecentBlocks(1024, 100);
  assert.equal(r.slots, 1024);
  r.add(1663, 5, 16384, 0, 7, 1000);
  assert.equal(r.has(1663, 5, 16384, 0, 7, 1050), true);
  for (const [spc, db, rel, fork, block] of [[1664, 5, 16384, 0, 7], [1663, 6, 16384, 0, 7], [1663, 5, 16385, 0, 7], [1663, 5, 16384, 1, 7], [1663, 5, 16384, 0, 8]]) {
    assert.equal(r.has(spc!, db!, rel!, fork!, block!, 1050), false, `${spc}/${db}/${rel}/${fork}/${block}`);
  }
  assert.equal(r.has(1663, 5, 16384, 0, 7, 1101), false, 'expired after ttl');
  // uint32 values above 2^31 round-trip
  r.add(4294967295, 4294967294, 4294967293, 3, 4294967292, 2000);
  assert.equal(r.has(4294967295, 4294967294, 4294967293, 3, 4294967292, 2000), true);
  r.clear();
  assert.equal(r.has(4294967295, 4294967294, 4294967293, 3, 4294967292, 2000), false);
});

test('recent blocks: at a quarter load (4 slots per page ahead) ~97% of keys stay, and memory is fixed', () => {
  const r = new RecentBlocks(65536, 10_000);
  const keys = 16384;
  for (let i = 0; i < keys; i++) r.add(1663, 5, 16384 + (i % 97), 0, i, 1);
  let kept = 0;
  for (let i = 0; i < keys; i++) if (r.has(1663, 5, 16384 + (i % 97), 0, i, 2)) kept++;
  assert.ok(kept > keys * 0.95, `kept ${kept} of ${keys}`);
  let falsePositives = 0;
  for (let i = keys; i < 4 * keys; i++) if (r.has(1663, 5, 16384 + (i % 97), 0, i, 2)) falsePositives++;
  assert.equal(falsePositives, 0);
  // Far more keys than slots: still bounded, still exact for the newest.
  for (let i = 0; i < 1_000_000; i++) r.add(1663, 5, 1, 0, i, 3);
  assert.equal(r.slots, 65536);
  assert.equal(r.has(1663, 5, 1, 0, 999_999, 4), true);
});
