// The `run` agent end to end, as an operator runs it: the real CLI against a
// real standby, observed through its HTTP endpoint, /proc and the page cache.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { selectedVersions, withCluster, type Cluster } from './harness/index.ts';
import { startAgent, metricValue } from './helpers/agent-process.ts';
import { assertNothingHeld } from './helpers/fault-checks.ts';
import { evict, residentBytes, residentBytesSettled } from './helpers/pagecache.ts';
import { METRIC_NAMES } from '../src/metrics/registry.ts';
import { metricNamesUsed } from './k8s-helpers.ts';

const versions = selectedVersions();
const version = versions[versions.length - 1]!;

function agentArgs(c: Cluster, extra: string[] = []): string[] {
  return ['-D', c.standby.dataDir, '-H', c.standby.socketDir, '-p', String(c.standby.port), '-U', 'postgres', '--log-level', 'info', ...extra];
}

// A table of `pages` heap pages; returns one id per every other block, so the
// burst touches known, distinct, non-adjacent blocks.
async function makeTable(c: Cluster, pages: number): Promise<{ ids: number[]; file: string }> {
  await c.primary.exec(`
    create table prefault_t (id int primary key, v int not null, filler text) with (fillfactor = 100);
    insert into prefault_t select g, 0, repeat('x', 400) from generate_series(1, ${pages * 16}) g;
    checkpoint;`);
  const rows = await c.primary.query<{ id: number }>(
    `select min(id) as id from prefault_t group by (ctid::text::point)[0] having (ctid::text::point)[0]::int % 2 = 0 order by 1`,
  );
  await c.standby.waitForReplay(await c.primary.currentLsn());
  // A restartpoint writes the standby's dirty buffers now, so no later write-back refills the page cache.
  await c.standby.exec('checkpoint');
  const rel = await c.standby.scalar<string>(`select pg_relation_filepath('prefault_t')`);
  return { ids: rows.map((r) => Number(r.id)), file: join(c.standby.dataDir, rel) };
}

for (const method of ['willneed', 'pread'] as const) {
test(`PG ${version}: run (io_method ${method}) prefaults the blocks pending WAL references, exports every metric, stops on SIGTERM`, async () => {
  await withCluster(version, { name: `agent-run-${method}`, primaryConf: { full_page_writes: 'off' } }, async (c) => {
    const { ids, file } = await makeTable(c, 400);
    assert.ok(ids.length >= 150, `expected >= 150 sample blocks, got ${ids.length}`);
    await c.standby.pauseReplay();
    await c.primary.query(`update prefault_t set v = v + 1 where id = any($1::int[])`, [ids]);
    await c.standby.waitForReceive(await c.primary.currentLsn());
    evict(file);
    assert.equal(residentBytes(file), 0, 'the table file is cold before the agent runs');
    const agent = await startAgent(agentArgs(c, ['--io-method', method]));
    try {
      const st = await agent.waitFor((s) => s.state === 'streaming' && (s.prefault?.completed ?? 0) >= ids.length, 'prefaults of the updated blocks');
      const resident = await residentBytesSettled(file, ids.length * 8192);
      // Every updated block was read; untouched (odd) blocks mostly were not.
      assert.ok(resident >= ids.length * 8192, `resident ${resident} < ${ids.length} blocks`);
      const size = 400 * 8192;
      assert.ok(resident < size * 0.9, `resident ${resident} of ${size}: reads were not limited to referenced blocks`);
      assert.equal(st.role, 'standby');
      assert.equal(st.settings.ioMethod, method);
      const scrape = await agent.scrape();
      for (const name of METRIC_NAMES) assert.match(scrape, new RegExp(`^${name}(_bucket|_sum|_count)?[ {]`, 'm'), `metric ${name} missing`);
      // Every metric the Grafana dashboard and the alert rules use is one this running binary exports.
      const sampleNames = new Set([...scrape.matchAll(/^([a-zA-Z_:][a-zA-Z0-9_:]*)[ {]/gm)].map((m) => m[1]!));
      // (`up` is the one Prometheus itself records per scrape target; container_* and
      // kube_* come from cAdvisor and kube-state-metrics, not from us.)
      for (const used of metricNamesUsed()) {
        if (used !== 'up' && !/^(container_|kube_)/.test(used)) assert.ok(sampleNames.has(used), `${used} (dashboard/alerts) is not in a live scrape`);
      }
      assert.ok((metricValue(scrape, 'pg_prefaulter_prefaults_completed_total') ?? 0) >= ids.length);
      assert.equal(metricValue(scrape, 'pg_prefaulter_state', { state: 'streaming' }), 1);
      assert.equal(metricValue(scrape, 'pg_prefaulter_io_method', { method }), 1);
      // Hints never wait on the threadpool, so no pread is timed; reads are.
      assert.equal((metricValue(scrape, 'pg_prefaulter_pread_duration_seconds_count') ?? 0) > 0, method === 'pread');
      assert.ok((metricValue(scrape, 'pg_prefaulter_wal_records_total', { rmgr: 'Heap' }) ?? 0) > 0);
      const { code, ms } = await agent.stop('SIGTERM');
      assert.equal(code, 0, agent.output().slice(-2000));
      assert.ok(ms < 2000, `SIGTERM took ${ms} ms`);
    } finally {
      await agent.stop('SIGKILL');
      await c.standby.resumeReplay().catch(() => {});
    }
  });
});
}

test(`PG ${version}: block images applied at replay are not read`, async () => {
  await withCluster(version, { name: 'agent-fpi', primaryConf: { full_page_writes: 'on' } }, async (c) => {
    const { ids, file } = await makeTable(c, 200);
    await c.standby.pauseReplay();
    await c.primary.exec('checkpoint'); // the next change of each page logs a full-page image
    await c.primary.query(`update prefault_t set v = v + 1 where id = any($1::int[])`, [ids]);
    await c.standby.waitForReceive(await c.primary.currentLsn());
    evict(file);
    const agent = await startAgent(agentArgs(c));
    try {
      const st = await agent.waitFor((s) => (s.prefault?.skipped?.image ?? 0) >= ids.length, 'image skips');
      // Heap pages with images are not read; only tiny other reads (e.g. the vm) may be.
      assert.ok(residentBytes(file) <= 8 * 8192, `heap file has ${residentBytes(file)} bytes resident`);
      assert.ok(st.prefault.skipped.image >= ids.length);
    } finally {
      await agent.stop('SIGKILL');
      await c.standby.resumeReplay().catch(() => {});
    }
  });
});

test(`PG ${version}: agent waits for PostgreSQL, goes idle on promotion with every handle closed`, async () => {
  await withCluster(version, { name: 'agent-roles' }, async (c) => {
    await c.standby.stop('fast');
    const agent = await startAgent(agentArgs(c, ['--reconnect-max', '1s']));
    try {
      await agent.waitFor((s) => s.state === 'waiting_for_postgres', 'waiting_for_postgres');
      await c.standby.start();
      await agent.waitFor((s) => s.state === 'streaming', 'streaming after PostgreSQL came up');
      await c.primary.exec(`create table r (id int); insert into r select generate_series(1, 10000);`);
      await agent.waitFor((s) => (s.prefault?.completed ?? 0) > 0 || (s.walRecords ?? 0) > 0, 'some WAL decoded');
      await c.standby.promote();
      await agent.waitFor((s) => s.state === 'primary_idle' && s.role === 'primary', 'primary_idle after promotion');
      await assertNothingHeld(agent, c.standby.dataDir, 'primary');
      await c.standby.stop('fast');
      await agent.waitFor((s) => s.state === 'waiting_for_postgres', 'waiting_for_postgres after stop', 10_000);
      await assertNothingHeld(agent, c.standby.dataDir, 'PostgreSQL down');
      const { code } = await agent.stop('SIGTERM');
      assert.equal(code, 0);
    } finally {
      await agent.stop('SIGKILL');
    }
  });
});

test(`PG ${version}: run --io-method pread started without UV_THREADPOOL_SIZE relaunches itself with a pool as large as io_concurrency`, async () => {
  await withCluster(version, { name: 'agent-pool' }, async (c) => {
    const agent = await startAgent(agentArgs(c, ['--io-concurrency', '48', '--io-method=pread']), { UV_THREADPOOL_SIZE: '' });
    try {
      const st = await agent.waitFor((s) => s.state === 'streaming' && s.prefault !== null, 'streaming');
      assert.equal(st.prefault.ioConcurrency, 48);
      const children = readFileSync(`/proc/${agent.proc.pid}/task/${agent.proc.pid}/children`, 'utf8').trim().split(/\s+/);
      assert.equal(children.length, 1, 'one relaunched agent process');
      const threads = readdirSync(`/proc/${children[0]}/task`).length;
      assert.ok(threads >= 48, `the relaunched agent has ${threads} threads; its pool should have 48`);
      const { code, ms } = await agent.stop('SIGTERM');
      assert.equal(code, 0, agent.output().slice(-2000));
      assert.ok(ms < 2000, `SIGTERM through the relaunching parent took ${ms} ms`);
    } finally {
      await agent.stop('SIGKILL');
    }
  });
});

test(`PG ${version}: run with the default io_method (willneed here) needs no threadpool and stays one process`, async () => {
  await withCluster(version, { name: 'agent-one-process' }, async (c) => {
    const agent = await startAgent(agentArgs(c), { UV_THREADPOOL_SIZE: '' });
    try {
      const st = await agent.waitFor((s) => s.state === 'streaming' && s.prefault !== null, 'streaming');
      assert.equal(st.settings.ioMethod, 'willneed');
      assert.equal(st.prefault.ioMethod, 'willneed');
      const children = readFileSync(`/proc/${agent.proc.pid}/task/${agent.proc.pid}/children`, 'utf8').trim();
      assert.equal(children, '', 'no relaunched child process');
      const threads = readdirSync(`/proc/${agent.proc.pid}/task`).length;
      assert.ok(threads < 48, `the agent runs ${threads} threads: libuv's pool was not sized up`);
      const { code } = await agent.stop('SIGTERM');
      assert.equal(code, 0, agent.output().slice(-2000));
    } finally {
      await agent.stop('SIGKILL');
    }
  });
});

test(`PG ${version}: the upstream password comes from the follower's primary_conninfo (pg_stat_wal_receiver masks it)`, async () => {
  const password = 'Upstream-Pw-5e1b';
  await withCluster(
    version,
    { name: 'agent-upstream-pw', hba: ['host replication repl 127.0.0.1/32 scram-sha-256'] },
    async (c) => {
      // Point the standby at a password-protected replication user, as Patroni/Spilo do.
      await c.primary.exec(`set password_encryption = 'scram-sha-256'; create role repl replication login password '${password}'`);
      await c.standby.query(`alter system set primary_conninfo = 'host=127.0.0.1 port=${c.primary.port} user=repl password=${password} application_name=standby'`);
      await c.standby.query('select pg_reload_conf()');
      await c.primary.exec(`create table pw_t as select generate_series(1, 1000) as id`);
      await c.standby.waitForReplay(await c.primary.currentLsn());
      let masked = '';
      for (let i = 0; i < 200 && !/user=repl/.test(masked); i++) {
        if (i) await new Promise((r) => setTimeout(r, 100));
        masked = String((await c.standby.query<{ c: string }>('select conninfo as c from pg_stat_wal_receiver'))[0]?.c ?? '');
      }
      assert.match(masked, /user=repl/, 'the standby streams as repl');
      assert.doesNotMatch(masked, new RegExp(password), 'pg_stat_wal_receiver shows no password');
      const agent = await startAgent(agentArgs(c));
      try {
        await agent.waitFor((s) => s.state === 'streaming' && s.source === 'stream' && s.upstreamConnected, 'streaming from the upstream as repl');
        const users = await c.primary.query<{ usename: string }>(`select usename from pg_stat_replication where application_name = 'pg_prefaulter'`);
        assert.deepEqual(users.map((u) => u.usename), ['repl']);
        assert.doesNotMatch(agent.output(), new RegExp(password), 'the password is never logged');
        assert.doesNotMatch(JSON.stringify(await agent.status()), new RegExp(password));
      } finally {
        await agent.stop('SIGKILL');
      }
    },
  );
});

test(`PG ${version}: the agent advises turning PostgreSQL's own recovery prefetch off, and only while it is on`, { skip: version < 15 ? 'recovery_prefetch exists on PostgreSQL 15+' : false }, async () => {
  await withCluster(version, { name: 'agent-builtin-prefetch' }, async (c) => {
    const advice = /recovery prefetcher is on \(recovery_prefetch = try\).*set recovery_prefetch = off/;
    // The default is "try": on wherever posix_fadvise exists.
    assert.equal(await c.standby.scalar<string>('show recovery_prefetch'), 'try');
    const first = await startAgent(agentArgs(c));
    try {
      await first.waitFor((s) => s.state === 'streaming', 'streaming');
      await first.logged(advice, 'the advice', { timeoutMs: 2000 });
      assert.equal(first.output().match(/recovery prefetcher is on/g)?.length, 1, 'said once');
    } finally {
      await first.stop('SIGKILL');
    }
    await c.standby.query(`alter system set recovery_prefetch = off`);
    await c.standby.query('select pg_reload_conf()');
    const second = await startAgent(agentArgs(c));
    try {
      await second.waitFor((s) => s.state === 'streaming', 'streaming');
      assert.doesNotMatch(second.output(), /recovery prefetcher is on/);
    } finally {
      await second.stop('SIGKILL');
    }
  });
});
