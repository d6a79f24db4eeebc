import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Fifo } from '../src/fifo.ts';

test('Fifo hands items out in order, across compactions and refills', () => {
  const q = new Fifo<number>();
  assert.equal(q.shift(), undefined);
  assert.equal(q.peek(), undefined);
  let next = 0;
  let expect = 0;
  // Interleave pushes and shifts so the head passes the compaction threshold many times with items left.
  for (let round = 0; round < 50; round++) {
    for (let i = 0; i < 700; i++) q.push(next++);
    for (let i = 0; i < 500; i++) {
      assert.equal(q.peek(), expect);
      assert.equal(q.shift(), expect++);
    }
    assert.equal(q.length, next - expect);
  }
  while (q.length > 0) assert.equal(q.shift(), expect++);
  assert.equal(expect, next);
  q.push(1);
  q.clear();
  assert.equal(q.length, 0);
  assert.equal(q.shift(), undefined);
});
