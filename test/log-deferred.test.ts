// DeferredLogger: pino loads after start-up settled; what was logged before is written
// then, in order, with the time of each call; warnings and worse, flush() and the
// process's exit do not wait; nothing kept is lost.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { DeferredLogger } from '../src/log.ts';
import { captureLog } from './helpers/log-capture.ts';

const sleepMs = (ms: number): void => {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
};

test('info and below wait for start(), keep their order, their time and the level filter; secrets are still scrubbed', () => {
  const out = captureLog();
  const log = new DeferredLogger('info', { stream: out.stream });
  log.info({ password: 'hunter2' }, 'first');
  const firstAt = Date.now();
  log.debug('below the level: not kept');
  sleepMs(30);
  log.info('second');
  assert.equal(out.lines().length, 0, 'nothing written before start()');
  sleepMs(30);
  const startedAt = Date.now();
  log.start();
  const lines = out.lines();
  assert.deepEqual(lines.map((l) => l.msg), ['first', 'second']);
  assert.equal(lines[0]!.password, '***');
  const t0 = Date.parse(String(lines[0]!.time));
  const t1 = Date.parse(String(lines[1]!.time));
  assert.ok(Math.abs(t0 - firstAt) <= 5, `the first line carries its call's time (${t0} vs ${firstAt})`);
  assert.ok(t1 - t0 >= 25 && t1 < startedAt, `each line its own time, not the write's (${t0}, ${t1}, started ${startedAt})`);
  log.info('after start: written at once');
  assert.equal(out.lines().length, 3);
});

test('an object is written as it was when logged, not as it is when pino loads', () => {
  const out = captureLog();
  const log = new DeferredLogger('info', { stream: out.stream });
  const stats = { issued: 1, nested: { state: 'recovering' } };
  log.info({ stats }, 'then');
  stats.issued = 2;
  stats.nested.state = 'streaming';
  log.start();
  assert.deepEqual(out.lines()[0]!.stats, { issued: 1, nested: { state: 'recovering' } });
});

test('a warning is written at once, after what was kept; the level can change before start', () => {
  const out = captureLog();
  const log = new DeferredLogger('info', { stream: out.stream });
  log.info('kept');
  log.level = 'debug';
  log.debug('kept at the new level');
  log.warn({ n: 1 }, 'at once');
  assert.deepEqual(out.lines().map((l) => [l.level, l.msg]), [[30, 'kept'], [20, 'kept at the new level'], [40, 'at once']]);
  assert.equal(log.level, 'debug');
});

test('past 1 000 kept lines the rest are counted, and the count is said', () => {
  const out = captureLog();
  const log = new DeferredLogger('info', { stream: out.stream });
  for (let i = 0; i < 1005; i++) log.info({ i }, 'line');
  log.start();
  const lines = out.lines();
  assert.equal(lines.length, 1001);
  assert.equal(lines[999]!.i, 999);
  assert.equal(lines[1000]!.dropped, 5);
});

test('lines kept when the process exits without start() are written', () => {
  const log = fileURLToPath(new URL('../src/log.ts', import.meta.url));
  const script = `import { DeferredLogger } from ${JSON.stringify(log)}; const l = new DeferredLogger('info'); l.info('kept until exit'); process.exitCode = 3;`;
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8' });
  assert.equal(r.status, 3, r.stderr);
  const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.deepEqual(lines.map((l) => l.msg), ['kept until exit']);
});
