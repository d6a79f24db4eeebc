// The session's pause between follower polls is cut short while a decode loop
// waits for replay to move (its window is full), and only then.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FAST_POLL_MS, ReplayTicks } from '../src/agent/replay-ticks.ts';

const POLL_MS = 2000;

async function timed(p: Promise<void>): Promise<number> {
  const t = performance.now();
  await p;
  return performance.now() - t;
}

test('no decode loop waiting: the pause lasts poll_interval', async () => {
  const ticks = new ReplayTicks();
  ticks.tick();
  const ms = await timed(ticks.pause(300, new AbortController().signal));
  assert.ok(ms >= 290, `paused ${ms} ms`);
});

test('a decode loop already waiting: the next poll comes FAST_POLL_MS after the last one, and the loop gets its tick', async () => {
  const ticks = new ReplayTicks();
  const ac = new AbortController();
  const polled = performance.now();
  ticks.tick();
  let woke = false;
  void ticks.next(ac.signal).then(() => (woke = true));
  await ticks.pause(POLL_MS, ac.signal);
  const ms = performance.now() - polled;
  assert.ok(ms >= FAST_POLL_MS - 1 && ms < POLL_MS / 2, `next poll ${ms} ms after the last`);
  assert.equal(woke, false, 'pausing is not a tick');
  ticks.tick(); // the poll the session makes next
  await Promise.resolve();
  assert.equal(woke, true);
});

test('a decode loop that starts waiting during the pause cuts it short', async () => {
  const ticks = new ReplayTicks();
  const ac = new AbortController();
  ticks.tick();
  const t0 = performance.now();
  let waitingAt = Infinity;
  const pause = ticks.pause(POLL_MS, ac.signal).then(() => performance.now());
  // (timers fire up to 1 ms early against performance.now(): time the wait's start itself)
  setTimeout(() => {
    waitingAt = performance.now();
    void ticks.next(ac.signal);
  }, 50);
  const ended = await pause;
  assert.ok(ended >= waitingAt, 'the pause ends once a loop waits, not before');
  assert.ok(ended - t0 < POLL_MS / 2, `paused ${ended - t0} ms`);
  ac.abort();
});

test('abort ends the pause and the wait at once', async () => {
  const ticks = new ReplayTicks();
  const ac = new AbortController();
  const pause = timed(ticks.pause(POLL_MS, ac.signal));
  const wait = ticks.next(ac.signal);
  ac.abort();
  assert.ok((await pause) < POLL_MS / 2);
  await wait;
});
