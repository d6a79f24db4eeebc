// The metrics HTTP endpoint over real HTTP on an ephemeral port.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AgentMetrics, METRIC_NAMES, SKIP_REASONS, startHttp } from '../src/metrics/index.ts';
import { VERSION } from '../src/version.ts';

/** Families announced in a text-format scrape (# TYPE lines). */
function families(text: string): Set<string> {
  return new Set([...text.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]!));
}

function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(series + ' '));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

test('every METRIC_NAMES family is scraped, process metrics too, and nothing pg_prefaulter_* is unlisted', async (t) => {
  const metrics = new AgentMetrics();
  const http = await startHttp({ listen: '127.0.0.1:0', metrics, status: () => ({}), health: () => true });
  t.after(() => http.close());
  assert.match(http.address, /^127\.0\.0\.1:\d+$/);
  assert.notEqual(http.port, 0);
  const res = await fetch(`http://${http.address}/metrics`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
  const text = await res.text();
  const got = families(text);
  for (const name of METRIC_NAMES) assert.ok(got.has(name), `${name} missing from the scrape`);
  assert.deepEqual([...got].filter((n) => n.startsWith('pg_prefaulter_')).sort(), [...METRIC_NAMES].sort());
  for (const name of ['process_cpu_seconds_total', 'process_resident_memory_bytes', 'nodejs_heap_size_used_bytes']) {
    assert.ok(got.has(name), name);
  }
  assert.equal(sample(text, `pg_prefaulter_info{version="${VERSION}"}`), 1);
  assert.equal(sample(text, 'pg_prefaulter_state{state="waiting_for_postgres"}'), 1);
  assert.equal(sample(text, 'pg_prefaulter_role{role="unknown"}'), 1);
  for (const reason of SKIP_REASONS) assert.equal(sample(text, `pg_prefaulter_prefaults_skipped_total{reason="${reason}"}`), 0, reason);
});

test('values set through the API appear in the scrape; onCollect hooks run before each scrape', async (t) => {
  const metrics = new AgentMetrics({ defaultMetrics: false });
  const http = await startHttp({ listen: '127.0.0.1:0', metrics, status: () => ({}), health: () => true });
  t.after(() => http.close());
  const stats = { issued: 0, hits: 0 };
  metrics.onCollect(() => {
    metrics.setCounter(metrics.prefaultsIssued, {}, stats.issued);
    metrics.setCounter(metrics.fileHandleCacheHits, {}, stats.hits);
  });
  const broken = metrics.onCollect(() => {
    throw new Error('hook failure');
  });
  metrics.setState('streaming');
  metrics.setRole('standby');
  metrics.setWalSource('stream');
  metrics.timeline.set(3);
  metrics.followerReplayLsn.set(Number(0x1_0000_0028n));
  metrics.setCounter(metrics.walRecords, { rmgr: 'Heap' }, 1234);
  metrics.setCounter(metrics.walBytes, { rmgr: 'Heap' }, 99_000);
  metrics.reconnects.inc({ target: 'upstream' });
  metrics.preadDuration.observe(0.0003);
  metrics.preadDuration.observe(0.2);
  stats.issued = 500;
  stats.hits = 7;

  const scrape = async () => (await fetch(`http://${http.address}/metrics`)).text();
  let text = await scrape();
  assert.equal(sample(text, 'pg_prefaulter_state{state="streaming"}'), 1);
  assert.equal(sample(text, 'pg_prefaulter_state{state="waiting_for_postgres"}'), 0);
  assert.equal(sample(text, 'pg_prefaulter_role{role="standby"}'), 1);
  assert.equal(sample(text, 'pg_prefaulter_role{role="primary"}'), 0);
  assert.equal(sample(text, 'pg_prefaulter_wal_source{source="stream"}'), 1);
  assert.equal(sample(text, 'pg_prefaulter_wal_source{source="local"}'), 0);
  assert.equal(sample(text, 'pg_prefaulter_timeline'), 3);
  assert.equal(sample(text, 'pg_prefaulter_follower_replay_lsn_bytes'), 0x1_0000_0028);
  assert.equal(sample(text, 'pg_prefaulter_wal_records_total{rmgr="Heap"}'), 1234);
  assert.equal(sample(text, 'pg_prefaulter_wal_bytes_total{rmgr="Heap"}'), 99_000);
  assert.equal(sample(text, 'pg_prefaulter_reconnects_total{target="upstream"}'), 1);
  assert.equal(sample(text, 'pg_prefaulter_reconnects_total{target="follower"}'), 0);
  assert.equal(sample(text, 'pg_prefaulter_prefaults_issued_total'), 500, 'copied in by the hook');
  assert.equal(sample(text, 'pg_prefaulter_file_handle_cache_hits_total'), 7);
  assert.equal(sample(text, 'pg_prefaulter_pread_duration_seconds_bucket{le="0.0005"}'), 1);
  assert.equal(sample(text, 'pg_prefaulter_pread_duration_seconds_bucket{le="0.1"}'), 1);
  assert.equal(sample(text, 'pg_prefaulter_pread_duration_seconds_bucket{le="+Inf"}'), 2);
  assert.equal(sample(text, 'pg_prefaulter_pread_duration_seconds_bucket{le="0.00005"}'), 0);
  assert.equal(sample(text, 'pg_prefaulter_metrics_collect_errors_total'), 1, 'the throwing hook is counted, the scrape still works');

  // Absolute values: growth is followed; a restarted source (smaller value) never makes the counter go back.
  broken();
  stats.issued = 800;
  text = await scrape();
  assert.equal(sample(text, 'pg_prefaulter_prefaults_issued_total'), 800);
  stats.issued = 50;
  text = await scrape();
  assert.equal(sample(text, 'pg_prefaulter_prefaults_issued_total'), 850);
  assert.equal(sample(text, 'pg_prefaulter_metrics_collect_errors_total'), 1, 'removed hook no longer runs');
  assert.throws(() => metrics.setCounter(metrics.readErrors, {}, -1), RangeError);
});

test('/healthz follows the health callback; /readyz is 200 regardless of health; /status serves the provider JSON', async (t) => {
  const metrics = new AgentMetrics({ defaultMetrics: false });
  let healthy = true;
  let calls = 0;
  const http = await startHttp({
    listen: '127.0.0.1:0', metrics, health: () => healthy,
    status: () => ({ state: 'streaming', replayLsn: 0x16b3748n, calls: ++calls }),
  });
  t.after(() => http.close());
  const get = (path: string, init?: RequestInit) => fetch(`http://${http.address}${path}`, init);

  let res = await get('/healthz');
  assert.equal(res.status, 200);
  assert.equal(await res.text(), 'ok\n');
  healthy = false;
  res = await get('/healthz');
  assert.equal(res.status, 503);
  assert.match(await res.text(), /unhealthy/);
  res = await get('/readyz');
  assert.equal(res.status, 200, 'readiness must not depend on health (or PostgreSQL)');
  await res.text();

  res = await get('/status');
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /application\/json/);
  assert.deepEqual(await res.json(), { state: 'streaming', replayLsn: String(0x16b3748), calls: 1 });
  res = await get('/status');
  assert.equal((await res.json() as { calls: number }).calls, 2, 'the provider is asked on every request');

  res = await get('/nope');
  assert.equal(res.status, 404);
  await res.text();
  res = await get('/metrics', { method: 'POST' });
  assert.equal(res.status, 405);
  await res.text();
  res = await get('/metrics', { method: 'HEAD' });
  assert.equal(res.status, 200);
});

test('readiness callback, a failing status provider, and a port already in use', async (t) => {
  const metrics = new AgentMetrics({ defaultMetrics: false });
  let ready = false;
  const http = await startHttp({
    listen: '127.0.0.1:0', metrics, health: () => true, ready: () => ready,
    status: () => {
      throw new Error('status provider broke');
    },
  });
  t.after(() => http.close());
  let res = await fetch(`http://${http.address}/readyz`);
  assert.equal(res.status, 503);
  await res.text();
  ready = true;
  res = await fetch(`http://${http.address}/readyz`);
  assert.equal(res.status, 200);
  await res.text();
  res = await fetch(`http://${http.address}/status`);
  assert.equal(res.status, 500);
  assert.match(await res.text(), /status provider broke/);
  await assert.rejects(
    startHttp({ listen: http.address, metrics, health: () => true, status: () => ({}) }),
    /cannot listen on 127\.0\.0\.1:\d+ for metrics: .*EADDRINUSE/,
  );
  await assert.rejects(startHttp({ listen: 'nonsense', metrics, health: () => true, status: () => ({}) }), /host:port/);
});

test('close() stops listening even with a keep-alive connection open', async () => {
  const metrics = new AgentMetrics({ defaultMetrics: false });
  const http = await startHttp({ listen: '127.0.0.1:0', metrics, status: () => ({}), health: () => true });
  const res = await fetch(`http://${http.address}/metrics`, { headers: { connection: 'keep-alive' } });
  await res.text();
  await http.close();
  await assert.rejects(fetch(`http://${http.address}/metrics`));
});
