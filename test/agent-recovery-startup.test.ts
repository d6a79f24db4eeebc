// StartupSettle: the agent loads its SQL client, prom-client and the HTTP
// endpoint only once the recovery it prefaults is over (PostgreSQL accepts
// connections, or the pipeline is gone), or after 2 s at most: loading
// beside replay takes CPU from it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { StartupSettle } from '../src/agent/recovery-startup.ts';
import { sleep } from '../src/sleep.ts';

// StartupSettle's timers are unref'd (the agent's other handles keep it alive): hold the loop open for each test.
function keepAlive(t: { after: (fn: () => void) => void }): void {
  const handle = setInterval(() => {}, 1000);
  t.after(() => clearInterval(handle));
}

function settledYet(s: StartupSettle): Promise<boolean> {
  return Promise.race([s.settled.then(() => true), sleep(0).then(() => false)]);
}

test('settleWhen: not settled while the recovery runs, settled soon after it is over', async (t) => {
  keepAlive(t);
  const s = new StartupSettle();
  let over = false;
  s.settleWhen(() => over);
  await sleep(80);
  assert.equal(await settledYet(s), false, 'settled while PostgreSQL still refused connections');
  over = true;
  const t0 = performance.now();
  await s.settled;
  const waited = performance.now() - t0;
  assert.ok(waited < 500, `settled ${waited.toFixed(0)} ms after the recovery was over`);
});

test('settleWhen: a second call does not start a second watch; settle() settles at once', async (t) => {
  keepAlive(t);
  const s = new StartupSettle();
  let calls = 0;
  s.settleWhen(() => (calls++, false));
  s.settleWhen(() => {
    throw new Error('a second watcher ran');
  });
  await sleep(50);
  assert.ok(calls >= 2, `the first watcher checked (${calls} times)`);
  s.settle();
  assert.equal(await settledYet(s), true);
});

test('settled after STARTUP_SETTLE_MAX_MS even if the recovery never ends', async (t) => {
  keepAlive(t);
  const s = new StartupSettle();
  s.settleWhen(() => false);
  const t0 = performance.now();
  await s.settled;
  const waited = performance.now() - t0;
  assert.ok(waited >= 1900 && waited < 4000, `settled after ${waited.toFixed(0)} ms (bound 2000)`);
});
