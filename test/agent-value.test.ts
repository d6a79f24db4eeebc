// What prefaulting is worth, as the running binary reports it: a real
// standby with full_page_writes on and a tiny shared_buffers, a burst that
// touches every page of a cold table twice (first with its full-page image,
// then, far later in replay's terms, without), and the agent in a memory
// cgroup when this machine has a writable one. Its /metrics and /status must
// show the pages it fetched for replay, the wait that saved, the window it
// sized to its limit, the limit itself and a catch-up ETA.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { selectedVersions, withCluster } from './harness/index.ts';
import { startAgent, metricValue } from './helpers/agent-process.ts';
import { evict } from './helpers/pagecache.ts';
import { createMemoryCgroup } from './helpers/memory-cgroup.ts';
import { readMemoryCgroup } from '../src/prefault/memory-cgroup.ts';
import { CatchUpEstimate } from '../src/follower/catch-up.ts';

const version = selectedVersions().at(-1)!;
const MiB = 1024 * 1024;
const PAGES = 600;

test('catch-up estimate: rate over the recent polls, lag / rate, 0 caught up, Infinity when replay stands still', () => {
  const c = new CatchUpEstimate();
  assert.equal(c.etaSeconds, null);
  c.observe(1000n, 0, 0);
  assert.equal(c.etaSeconds, 0, 'no lag: caught up');
  for (let t = 100; t <= 2000; t += 100) c.observe(BigInt(1000 + t * 1000), 4_000_000, t); // 1 MB/s
  assert.equal(Math.round(c.rateBytesPerSecond!), 1_000_000);
  assert.equal(Math.round(c.etaSeconds!), 4);
  for (let t = 2100; t <= 14000; t += 100) c.observe(2_001_000n, 4_000_000, t); // stuck for 12 s
  assert.equal(c.rateBytesPerSecond, 0);
  assert.equal(c.etaSeconds, Infinity);
  c.observe(null, 0, 15000);
  assert.equal(c.etaSeconds, null, 'a primary: unknown');
});

test(`PG ${version}: the running agent reports pages fetched for replay, the wait saved, its window, memory limit and catch-up ETA`, async (t) => {
  const cg = createMemoryCgroup('pgpf-agent-value', 256 * MiB);
  if (cg) t.after(() => cg.remove());
  await withCluster(version, { name: 'agent-value', primaryConf: { full_page_writes: 'on' }, standbyConf: { shared_buffers: '128kB' } }, async (c) => {
    await c.primary.exec(`
      create table value_t (id int primary key, v int not null, filler text) with (fillfactor = 100);
      insert into value_t select g, 0, repeat('x', 400) from generate_series(1, ${PAGES * 16}) g;`);
    await c.primary.exec('checkpoint');
    await c.standby.waitForReplay(await c.primary.currentLsn());
    await c.standby.exec('checkpoint');
    const rel = await c.standby.scalar<string>(`select pg_relation_filepath('value_t')`);
    const file = join(c.standby.dataDir, rel);
    await c.standby.pauseReplay();
    // Two passes over every page: the first carries each page's image; the second comes
    // ${PAGES} distinct pages later, far past a 16-page shared_buffers, and must be fetched.
    for (let pass = 0; pass < 2; pass++) await c.primary.exec(`update value_t set v = v + 1 where id % 16 = ${pass}`);
    await c.standby.waitForReceive(await c.primary.currentLsn());
    evict(file);
    const agent = await startAgent(
      ['-D', c.standby.dataDir, '-H', c.standby.socketDir, '-p', String(c.standby.port), '-U', 'postgres', '--source', 'local'],
      {},
      { cgroupProcs: cg?.procs },
    );
    try {
      const st = await agent.waitFor((s) => (s.prefault?.issued ?? 0) >= PAGES * 0.9, 'hints for the second pass');
      assert.ok(st.prefault.skipped.image >= PAGES * 0.9, `images skipped ${st.prefault.skipped.image}`);
      await c.standby.resumeReplay();
      const done = await agent.waitFor((s) => s.lagBytes === 0 && s.catchUpSeconds === 0, 'replay caught up', 60_000);
      const scrape = await agent.scrape();
      const issued = metricValue(scrape, 'pg_prefaulter_prefaults_issued_total')!;
      const fetched = metricValue(scrape, 'pg_prefaulter_pages_fetched_for_replay_total')!;
      const resident = metricValue(scrape, 'pg_prefaulter_prefaults_already_resident_total')!;
      // The table was evicted: (almost) every hint fetched a page replay would have read from storage.
      assert.ok(fetched >= issued * 0.7 && fetched <= issued + 4, `fetched ${fetched} of ${issued} hinted (resident ${resident})`);
      assert.ok(Math.abs(metricValue(scrape, 'pg_prefaulter_replay_wait_saved_seconds_total')! - fetched * 0.001) < 1e-6);
      assert.equal(done.pagesFetchedForReplay, fetched);
      assert.equal(metricValue(scrape, 'pg_prefaulter_catch_up_seconds'), 0);
      const window = metricValue(scrape, 'pg_prefaulter_max_pages_ahead')!;
      assert.equal(done.settings.maxPagesAhead, window);
      assert.equal(done.settings.maxPagesAheadSetting, 'auto');
      const limit = metricValue(scrape, 'pg_prefaulter_memory_limit_bytes')!;
      if (cg) {
        assert.equal(limit, 256 * MiB);
        assert.equal(done.memory.source, `cgroup v${cg.version}`);
        // "auto": half of what 256 MiB leaves after the process itself, in 8 KiB pages.
        assert.ok(window >= 256 && window < 16384, `window ${window} pages under a 256 MiB limit`);
        const cache = metricValue(scrape, 'pg_prefaulter_memory_page_cache_bytes')!;
        assert.ok(cache >= fetched * 8192 * 0.5, `page cache charged to the agent ${cache} after fetching ${fetched} pages`);
      } else {
        assert.equal(limit, (readMemoryCgroup()?.limitBytes ?? 0));
      }
      assert.ok(metricValue(scrape, 'pg_prefaulter_memory_usage_bytes')! > 10 * MiB);
    } finally {
      await agent.stop('SIGKILL');
      await c.standby.resumeReplay().catch(() => {});
    }
  });
});
