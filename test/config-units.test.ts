// Size, duration and listen-address parsing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatDuration, formatSize, parseDuration, parseListen, parseSize } from '../src/config/index.ts';

const ok = (value: number) => ({ ok: true, value });

test('sizes: PostgreSQL units are 1024-based; binary spellings and plain numbers accepted', () => {
  assert.deepEqual(parseSize('8kB'), ok(8192));
  assert.deepEqual(parseSize('32MiB'), ok(32 * 1024 ** 2));
  assert.deepEqual(parseSize('32MB'), ok(32 * 1024 ** 2));
  assert.deepEqual(parseSize('1GB'), ok(1024 ** 3));
  assert.deepEqual(parseSize('1.5GB'), ok(1.5 * 1024 ** 3));
  assert.deepEqual(parseSize(' 4 TB '), ok(4 * 1024 ** 4));
  assert.deepEqual(parseSize('100B'), ok(100));
  assert.deepEqual(parseSize('4096'), ok(4096));
  assert.deepEqual(parseSize(65536), ok(65536));
  for (const bad of ['', 'MB', '-1MB', '1 XB', '1e3', '0x10', '1MB2'] as const) {
    const r = parseSize(bad);
    assert.equal(r.ok, false, bad);
    assert.ok(!r.ok && /kB, MB, GB/.test(r.error), bad);
  }
  assert.equal(parseSize(-5).ok, false);
  assert.equal(parseSize(true).ok, false);
});

test('durations: number = ms; us, ms, s, min, h, d', () => {
  assert.deepEqual(parseDuration(250), ok(250));
  assert.deepEqual(parseDuration('250'), ok(250));
  assert.deepEqual(parseDuration('100ms'), ok(100));
  assert.deepEqual(parseDuration('10s'), ok(10_000));
  // a bare number in seconds where the setting's base unit is seconds (libpq's connect_timeout)
  assert.deepEqual(parseDuration('5', 's'), ok(5000));
  assert.deepEqual(parseDuration(1.5, 's'), ok(1500));
  assert.deepEqual(parseDuration('250ms', 's'), ok(250));
  assert.match((parseDuration('-1', 's') as { error: string }).error, /seconds/);
  assert.deepEqual(parseDuration('1min'), ok(60_000));
  assert.deepEqual(parseDuration('2h'), ok(7_200_000));
  assert.deepEqual(parseDuration('1d'), ok(86_400_000));
  assert.deepEqual(parseDuration('1500us'), ok(2));
  for (const bad of ['10 fortnights', '1m', 's', '', '-1s']) assert.equal(parseDuration(bad).ok, false, bad);
});

test('format gives the largest exact unit, and parses back', () => {
  for (const [n, s] of [[33554432, '32MiB'], [8192, '8kB'], [1000, '1000B'], [3 * 1024 ** 3, '3GiB']] as const) {
    assert.equal(formatSize(n), s);
    assert.deepEqual(parseSize(s), ok(n));
  }
  for (const [n, s] of [[100, '100ms'], [10_000, '10s'], [1500, '1500ms'], [60_000, '1min'], [3_600_000, '1h']] as const) {
    assert.equal(formatDuration(n), s);
    assert.deepEqual(parseDuration(s), ok(n));
  }
});

test('listen addresses', () => {
  assert.deepEqual(parseListen('0.0.0.0:9441'), { host: '0.0.0.0', port: 9441 });
  assert.deepEqual(parseListen('127.0.0.1:0'), { host: '127.0.0.1', port: 0 });
  assert.deepEqual(parseListen('[::1]:9441'), { host: '::1', port: 9441 });
  assert.deepEqual(parseListen(':9441'), { host: '0.0.0.0', port: 9441 });
  assert.deepEqual(parseListen('metrics.local:80'), { host: 'metrics.local', port: 80 });
  for (const bad of ['9441', 'host:', 'host:99999', '::1:9441', 'a:b']) assert.equal(typeof parseListen(bad), 'string', bad);
});
