// Second hints near replay: each hinted page is hinted again once replay is
// within NEAR_BYTES of its record, never for a record replay has passed, once
// only, and the queue stays bounded.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { NEAR_BYTES, NearHints } from '../src/prefault/near-hints.ts';

const MiB = 1024n * 1024n;

function collect(near: NearHints, replay: bigint): string[] {
  const out: string[] = [];
  near.due(replay, (path, offset) => out.push(`${path}@${offset}`));
  return out;
}

test('a page is hinted again when replay comes within NEAR_BYTES of its record, once', () => {
  const near = new NearHints(100);
  near.add(Number(10n * MiB), 'a', 0);
  near.add(Number(10n * MiB), 'a', 8192);
  near.add(Number(20n * MiB), 'b', 0);
  assert.deepEqual(collect(near, 10n * MiB - NEAR_BYTES), [], 'still too far ahead');
  assert.deepEqual(collect(near, 10n * MiB - NEAR_BYTES + 1n), ['a@0', 'a@8192']);
  assert.deepEqual(collect(near, 11n * MiB), [], 'given once');
  assert.equal(near.length, 1);
  assert.equal(near.given, 2);
});

test('a page first hinted within NEAR_BYTES of replay gets no second hint (it would follow the first at once)', () => {
  const near = new NearHints(100);
  assert.deepEqual(collect(near, 10n * MiB), []);
  near.add(Number(10n * MiB + NEAR_BYTES - 1n), 'near', 0);
  near.add(Number(10n * MiB + NEAR_BYTES), 'far', 0);
  assert.equal(near.length, 1, 'only the page hinted NEAR_BYTES or more ahead is queued');
  assert.deepEqual(collect(near, 10n * MiB + 1n), ['far@0']);
  assert.equal(near.given, 1);
  near.clear();
  near.add(Number(1n * MiB), 'after a clear, replay unknown', 0);
  assert.equal(near.length, 1);
});

test('records replay has passed get no second hint', () => {
  const near = new NearHints(100);
  near.add(Number(1n * MiB), 'late', 0);
  near.add(Number(30n * MiB), 'far', 0);
  assert.deepEqual(collect(near, 2n * MiB), []);
  assert.equal(near.length, 1, 'the passed one is dropped');
  assert.equal(near.given, 0);
});

test('the queue is bounded: the oldest entries go first', () => {
  const near = new NearHints(3);
  for (let i = 0; i < 10; i++) near.add(Number(BigInt(i) * MiB + 100n * MiB), `p${i}`, 0);
  assert.equal(near.length, 3);
  assert.deepEqual(collect(near, 106n * MiB), ['p7@0', 'p8@0', 'p9@0']);
  near.add(Number(200n * MiB), 'x', 0);
  near.clear();
  assert.equal(near.length, 0);
});
