// Waiting for the local PostgreSQL: the wait ends when its socket appears, and
// a refused connection says why, so the agent can retry at the right pace.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, watch, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { waitForFollower } from '../src/agent/follower-wait.ts';
import { Follower, FollowerConnectError } from '../src/follower/index.ts';

const HOUR = 3_600_000;

test('the wait ends when the server socket appears, not when other files do', { timeout: 20_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'pgpf-wait-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  let done = false;
  // An hour-long backoff: only the socket's creation can end it within the test's timeout.
  // (The wait's watch is in place when waitForFollower returns.)
  const waiting = waitForFollower(dir, 5999, HOUR, new AbortController().signal).then(() => {
    done = true;
  });
  // A second watch on the same directory: once it has seen both files, so has the wait's
  // (libuv hands one inotify event to every watch of that directory in the same turn).
  const others = ['.s.PGSQL.6000', 'postmaster.log']; // another port's socket, a log
  const seen = new Set<string>();
  const othersSeen = new Promise<void>((resolve) => {
    const w = watch(dir, { persistent: false }, (_event, name) => {
      if (name) seen.add(name);
      if (others.every((n) => seen.has(n))) {
        w.close();
        resolve();
      }
    });
  });
  for (const name of others) writeFileSync(join(dir, name), '');
  await othersSeen;
  await new Promise((r) => setImmediate(r));
  assert.equal(done, false, 'woken by a file that is not our socket');
  writeFileSync(join(dir, '.s.PGSQL.5999'), '');
  await waiting;
  assert.equal(done, true);
});

test('the wait ends on abort, and falls back to the timer without a socket directory', { timeout: 20_000 }, async () => {
  const stop = new AbortController();
  let done = false;
  const waiting = waitForFollower('/nonexistent/socket/dir', 5432, HOUR, stop.signal).then(() => {
    done = true;
  });
  await new Promise((r) => setImmediate(r));
  assert.equal(done, false, 'an hour-long wait ended by itself');
  stop.abort();
  await waiting; // an hour-long wait: only the abort can end it within the test's timeout
  assert.equal(done, true);
  // Nothing appears (a socket directory that does not exist, or a TCP host): the timer ends the wait, no sooner.
  for (const host of ['/nonexistent/socket/dir', '127.0.0.1']) {
    const started = performance.now();
    await waitForFollower(host, 5432, 30, new AbortController().signal);
    assert.ok(performance.now() - started >= 25, `${host}: the wait ended after ${performance.now() - started} ms, before its 30 ms`);
  }
});

test('connecting to a socket directory without a server fails with a FollowerConnectError naming the errno', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'pgpf-nosrv-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  await assert.rejects(Follower.connect({ host: dir, port: 5999, user: 'postgres', database: 'postgres', connectTimeoutMs: 2000 }), (e: unknown) => {
    assert.ok(e instanceof FollowerConnectError, String(e));
    assert.equal(e.code, 'ENOENT');
    assert.equal(e.startingUp, false);
    assert.match(e.message, /cannot connect to the follower at socket .*\.s\.PGSQL\.5999/);
    return true;
  });
});

test('the wait also ends when the socket directory was removed and is made again with the socket in it', { timeout: 20_000 }, async (t) => {
  const base = mkdtempSync(join(tmpdir(), 'pgpf-wait-gone-'));
  t.after(() => rmSync(base, { recursive: true, force: true }));
  const dir = join(base, 'run', 'postgresql');
  mkdirSync(dir, { recursive: true });
  for (const recreate of ['removed while waiting', 'missing from the start']) {
    let done = false;
    const waiting = waitForFollower(dir, 5999, HOUR, new AbortController().signal).then(() => {
      done = true;
    });
    if (recreate === 'removed while waiting') rmSync(join(base, 'run'), { recursive: true });
    // The directory (and a parent) come back, and then the socket; nothing else may end the wait.
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'postmaster.log'), '');
    await new Promise((r) => setImmediate(r));
    assert.equal(done, false, `${recreate}: woken before the socket appeared`);
    writeFileSync(join(dir, '.s.PGSQL.5999'), '');
    await waiting;
    rmSync(join(base, 'run'), { recursive: true });
  }
});
