// Fault suite, upstream side: what happens to the running sidecar when the
// primary it streams from crashes, the network cuts a message in half, the
// bytes arrive corrupted, or it is not allowed in. Each case checks the agent
// survives, holds only read-only handles under PGDATA (none twice), wrote
// nothing there, and resumes once the fault clears; and that neither the
// primary nor the follower was hurt.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import postgres from 'postgres';
import { selectedVersions, withCluster, sleep, type Cluster, type PgServer } from './harness/index.ts';
import { startAgent, metricValue, type AgentProcess } from './helpers/agent-process.ts';
import { startTcpProxy } from './helpers/tcp-proxy.ts';
import { until } from './helpers/until.ts';
import { makeCert } from './helpers/tls.ts';
import { agentArgs, lsn, openFiles, assertHandlesClean, assertCacheConsistent, assertAlive, warnLines, finish } from './helpers/fault-checks.ts';

const versions = selectedVersions();
const version = versions[versions.length - 1]!;
// Without full-page images every change makes replay read its page, so the agent reads them.
const CONF = { primaryConf: { full_page_writes: 'off' } };

// ---- shared checks (kept in this file: one concern, the fault cases) ----

/** Waits until the agent stops advancing (read everything it may read), so only held handles remain open. */
async function waitIdle(agent: AgentProcess): Promise<void> {
  let last = '';
  for (let i = 0; i < 100; i++) {
    const s = await agent.status();
    const now = `${s.streamLsn} ${s.prefault?.completed}`;
    if (now === last) return;
    last = now;
    await sleep(300);
  }
  throw new Error('the agent never went idle');
}

interface Quiet {
  file: string;
  blocks: number;
  before: { size: number; mtimeMs: number; ctimeMs: number };
}

/**
 * A table the pending WAL references but nobody writes on the standby any
 * more: its rows are replayed and flushed, then replay is paused and every
 * page is updated on the primary. Until replay resumes, only the agent
 * touches the standby's copy, so any change to it would be the agent's.
 */
async function prepareQuiet(c: Cluster): Promise<Quiet> {
  await c.primary.exec(`
    create table quiet (id int primary key, v int not null, filler text) with (fillfactor = 100);
    insert into quiet select g, 0, repeat('q', 400) from generate_series(1, 1600) g;
    create table load_t (id serial primary key, filler text);
    checkpoint;`);
  await c.standby.waitForReplay(await c.primary.currentLsn());
  await c.standby.exec('checkpoint');
  await c.standby.pauseReplay();
  await c.primary.exec('update quiet set v = v + 1');
  await c.standby.waitForReceive(await c.primary.currentLsn());
  const file = join(c.standby.dataDir, await c.standby.scalar<string>(`select pg_relation_filepath('quiet')`));
  const st = statSync(file);
  return { file, blocks: st.size / 8192, before: { size: st.size, mtimeMs: st.mtimeMs, ctimeMs: st.ctimeMs } };
}

function assertQuietUntouched(q: Quiet, what: string): void {
  const st = statSync(q.file);
  assert.deepEqual({ size: st.size, mtimeMs: st.mtimeMs, ctimeMs: st.ctimeMs }, q.before, `${what}: ${q.file} was modified while only the agent had it open`);
}

async function load(server: PgServer, rows = 5000): Promise<bigint> {
  await server.exec(`insert into load_t (filler) select repeat('y', 200) from generate_series(1, ${rows})`);
  return lsn(await server.currentLsn());
}

/** Agent started against the paused standby, having prefaulted the quiet table. */
async function startOnQuiet(c: Cluster, q: Quiet, extra: string[] = []): Promise<AgentProcess> {
  const agent = await startAgent(agentArgs(c.standby, extra));
  await agent.waitFor((s) => s.state === 'streaming' && (s.prefault?.completed ?? 0) >= q.blocks, 'the quiet table prefaulted');
  assert.ok(
    openFiles(agent, c.standby.dataDir).some((f) => f.path === q.file),
    'the agent holds the quiet table open (so the untouched check means something)',
  );
  return agent;
}

/** The follower is unharmed: it replays everything the primary wrote. */
async function assertFollowerCatchesUp(c: Cluster): Promise<void> {
  await c.standby.resumeReplay();
  const target = await c.primary.currentLsn();
  await c.standby.waitForReplay(target);
  // Replay of pruning may cancel a standby query; retry until it reads.
  for (let i = 0; ; i++) {
    try {
      assert.equal(await c.standby.scalar<string>('select count(*)::text from quiet where v = 1'), '1600');
      return;
    } catch (e) {
      if (i > 20 || (e as { code?: string }).code !== '40001') throw e;
      await sleep(200);
    }
  }
}

// ---- cases ----

test(`PG ${version}: primary killed (immediate) mid-stream, then restarted: agent reconnects and streams again`, async () => {
  await withCluster(version, { name: 'fault-primary-kill', ...CONF }, async (c) => {
    const q = await prepareQuiet(c);
    const agent = await startOnQuiet(c, q);
    try {
      const baseline = assertHandlesClean(agent, c.standby.dataDir, 'baseline');
      const load1 = load(c.primary, 20_000).catch(() => 0n); // the insert dies with the server
      await sleep(50);
      await c.primary.stop('immediate');
      await load1;
      const lost = await agent.waitFor((s) => s.upstreamConnected === false, 'the upstream connection seen as lost');
      await agent.waitFor((s) => s.reconnects.upstream >= lost.reconnects.upstream + 3, 'a few reconnect attempts against a dead primary', 30_000);
      assertAlive(agent, 'primary down');
      const down = assertHandlesClean(agent, c.standby.dataDir, 'primary down');
      await assertCacheConsistent(agent, c.standby.dataDir, 'primary down');
      // The follower is up, so cached relation handles legitimately stay (WAL received before the kill may
      // still be read from the local pg_wal); what must not happen is a handle opened twice or left uncounted.
      assert.ok(down.length <= baseline.length + 16, `handles grew while the primary was down: ${baseline.length} -> ${down.length}`);

      assertQuietUntouched(q, 'primary kill');

      await c.primary.start();
      // A paused startup process does not restart its walreceiver; resume so
      // the follower reconnects, as it would when replaying.
      await c.standby.resumeReplay();
      const target = await load(c.primary);
      const st = await agent.waitFor(
        (s) => s.state === 'streaming' && s.source === 'stream' && s.upstreamConnected && lsn(s.streamLsn) >= target,
        'streaming the new WAL from the restarted primary',
      );
      assert.ok(st.reconnects.upstream >= 1, 'reconnect counted');
      assertHandlesClean(agent, c.standby.dataDir, 'after restart');
      await assertCacheConsistent(agent, c.standby.dataDir, 'after restart');
      assertAlive(agent, 'after restart');
      await assertFollowerCatchesUp(c);
      await finish(agent);
    } finally {
      await agent.stop('SIGKILL');
    }
  });
});

test(`PG ${version}: connection reset in the middle of a message: reconnect, no decode error, primary unharmed`, async () => {
  await withCluster(version, { name: 'fault-reset', ...CONF }, async (c) => {
    const q = await prepareQuiet(c);
    const proxy = await startTcpProxy('127.0.0.1', c.primary.port);
    const agent = await startOnQuiet(c, q, ['--primary-conninfo', `host=127.0.0.1 port=${proxy.port} user=postgres sslmode=disable`]);
    try {
      assert.equal(proxy.connections, 1);
      const cut = proxy.cutMidMessage();
      while (!(await Promise.race([cut.then(() => true), sleep(200).then(() => false)]))) await load(c.primary, 2000);
      const target = await load(c.primary);
      const st = await agent.waitFor((s) => s.state === 'streaming' && s.upstreamConnected && lsn(s.streamLsn) >= target, 'streaming after the cut');
      assert.ok(proxy.connections >= 2, 'the agent reconnected through the proxy');
      // A half message must never reach the decoder as WAL.
      assert.equal(st.decodeErrors, 0, 'a truncated message was decoded');
      assertAlive(agent, 'after the cut');
      assertHandlesClean(agent, c.standby.dataDir, 'after the cut');
      await assertCacheConsistent(agent, c.standby.dataDir, 'after the cut');
      assertQuietUntouched(q, 'connection reset');
      assert.equal(await c.primary.scalar<string>('select 1::text'), '1', 'the primary still serves queries');
      await assertFollowerCatchesUp(c);
      await finish(agent);
    } finally {
      await agent.stop('SIGKILL');
      await proxy.close();
    }
  });
});

test(`PG ${version}: corrupted WAL bytes: errors counted, decoder resyncs, no crash, no log storm`, async () => {
  await withCluster(version, { name: 'fault-corrupt', ...CONF }, async (c) => {
    const q = await prepareQuiet(c);
    const proxy = await startTcpProxy('127.0.0.1', c.primary.port);
    const agent = await startOnQuiet(c, q, ['--primary-conninfo', `host=127.0.0.1 port=${proxy.port} user=postgres sslmode=disable`]);
    try {
      const before = await agent.status();
      proxy.corruptNext(4);
      while (proxy.corrupted < 4) await load(c.primary, 3000);
      await agent.waitFor((s) => s.decodeErrors > 0, 'decode errors counted');
      // The fault clears: clean bytes again. New records must be decoded.
      const mid = await agent.status();
      const target = await load(c.primary, 20_000);
      const st = await agent.waitFor(
        (s) => lsn(s.streamLsn) >= target && lsn(s.decodedLsn) > lsn(mid.decodedLsn) && s.walRecords > mid.walRecords,
        'decoding resumed after the corrupt stretch',
      );
      assert.ok(st.walRecords > before.walRecords);
      assert.ok(lsn(st.decodedLsn) >= target - 65536n, `decoder stuck at ${st.decodedLsn}, stream at ${st.streamLsn}`);
      const scrape = await agent.scrape();
      assert.ok((metricValue(scrape, 'pg_prefaulter_decode_errors_total') ?? 0) >= 1, 'decode errors exported');
      assert.ok(warnLines(agent.output()).length <= 5, `log storm:\n${warnLines(agent.output()).join('\n')}`);
      assertAlive(agent, 'after corruption');
      assertHandlesClean(agent, c.standby.dataDir, 'after corruption');
      await assertCacheConsistent(agent, c.standby.dataDir, 'after corruption');
      assertQuietUntouched(q, 'corruption');
      await assertFollowerCatchesUp(c);
      await finish(agent);
    } finally {
      await agent.stop('SIGKILL');
      await proxy.close();
    }
  });
});

test(`PG ${version}: requested WAL removed on the primary: falls back to the local pg_wal and prefaults`, async () => {
  const conf = { primaryConf: { full_page_writes: 'off', max_wal_size: '32MB', min_wal_size: '32MB' } };
  await withCluster(version, { name: 'fault-wal-removed', ...conf }, async (c) => {
    const q = await prepareQuiet(c);
    // Only now let the primary drop old WAL (no slot, nothing kept): the paused standby already has it.
    await c.primary.exec('alter system set wal_keep_size = 0');
    await c.primary.exec('select pg_reload_conf()');
    const replay = await c.standby.scalar<string>('select pg_last_wal_replay_lsn()::text');
    const needed = await c.primary.scalar<string>('select pg_walfile_name($1::pg_lsn)', [replay]);
    for (let i = 0; ; i++) {
      const left = await c.primary.scalar<string>('select count(*)::text from pg_ls_waldir() where name = $1', [needed]);
      if (left === '0') break;
      assert.ok(i < 20, `the primary keeps ${needed} after ${i} switches and checkpoints`);
      await load(c.primary, 2000);
      await c.primary.exec('select pg_switch_wal()');
      // The standby's own walreceiver must have everything before the primary may remove it.
      await c.standby.waitForReceive(await c.primary.currentLsn());
      await c.primary.exec('checkpoint');
    }
    await c.standby.waitForReceive(await c.primary.currentLsn());
    const agent = await startAgent(agentArgs(c.standby));
    try {
      const st = await agent.waitFor(
        (s) => s.state === 'streaming' && s.source === 'local' && (s.prefault?.completed ?? 0) >= q.blocks,
        'prefaulting from the local pg_wal',
      );
      assert.ok(st.reconnects.upstream >= 1);
      await agent.logged(/no longer has the WAL/, 'the fallback logged');
      // Segments are opened per read and closed at once: none stays open while idle.
      await waitIdle(agent);
      assertHandlesClean(agent, c.standby.dataDir, 'local source');
      await assertCacheConsistent(agent, c.standby.dataDir, 'local source');
      assertQuietUntouched(q, 'local source');
      assertAlive(agent, 'local source');
      await assertFollowerCatchesUp(c);
      await finish(agent);
    } finally {
      await agent.stop('SIGKILL');
    }
  });
});

const REPL_PASSWORD = 'Repl-S3cret-7f3a';
const WRONG_PASSWORD = 'Wrong-S3cret-91bc';
const NOREPL_PASSWORD = 'NoRepl-S3cret-2d4e';

test(`PG ${version}: wrong password / no replication privilege / max_wal_senders exhausted: clear error, backoff, no tight loop, no password leaked`, async (t) => {
  const hba = [
    'host replication repl 127.0.0.1/32 scram-sha-256',
    'host replication norepl 127.0.0.1/32 scram-sha-256',
  ];
  await withCluster(version, { name: 'fault-auth', hba, primaryConf: { log_connections: 'on' } }, async (c) => {
    await c.primary.exec(`
      set password_encryption = 'scram-sha-256';
      create role repl login replication password '${REPL_PASSWORD}';
      create role norepl login password '${NOREPL_PASSWORD}';`);
    await c.standby.waitForReplay(await c.primary.currentLsn());
    const proxy = await startTcpProxy('127.0.0.1', c.primary.port);
    const conninfo = (user: string) => `host=127.0.0.1 port=${proxy.port} user=${user} sslmode=disable`;

    // Observe one misconfigured agent for a while: it must retry, slowly, and say why.
    const observe = async (args: string[], expect: RegExp, what: string, secret: string) => {
      const agent = await startAgent(agentArgs(c.standby, args));
      try {
        await agent.waitFor((s) => s.state === 'following' || s.state === 'streaming', `${what}: following`);
        const from = proxy.connections;
        await sleep(4000);
        const attempts = proxy.connections - from;
        t.diagnostic(`${what}: ${attempts} connection attempts in 4 s`);
        // reconnect-min 200ms doubling to 1s: ~6 attempts in 4 s; a tight loop makes hundreds.
        assert.ok(attempts >= 2, `${what}: ${attempts} attempts in 4 s: the agent does not retry`);
        assert.ok(attempts <= 12, `${what}: ${attempts} attempts in 4 s: no backoff`);
        const warns = warnLines(agent.output());
        assert.ok(warns.some((l) => expect.test(l)), `${what}: no clear error logged:\n${warns.slice(-3).join('\n')}`);
        const st = await agent.status();
        assert.equal(st.upstreamConnected, false);
        assert.ok(!agent.output().includes(secret), `${what}: the password appears in the log`);
        assert.ok(!(await agent.scrape()).includes(secret), `${what}: the password appears in the metrics`);
        assert.ok(!JSON.stringify(st).includes(secret), `${what}: the password appears in /status`);
        assertAlive(agent, what);
        await finish(agent);
      } finally {
        await agent.stop('SIGKILL');
      }
    };
    try {
      // The right password streams, and is not shown anywhere.
      const ok = await startAgent(agentArgs(c.standby, ['--primary-conninfo', conninfo('repl'), '--replication-password', REPL_PASSWORD]));
      try {
        await c.primary.exec('create table auth_t as select generate_series(1, 1000) id');
        await ok.waitFor((s) => s.state === 'streaming' && s.upstreamConnected, 'streaming with the right password');
        assert.ok(!ok.output().includes(REPL_PASSWORD), 'the password appears in the log');
        assert.ok(!(await ok.scrape()).includes(REPL_PASSWORD), 'the password appears in the metrics');
        assert.ok(!JSON.stringify(await ok.status()).includes(REPL_PASSWORD), 'the password appears in /status');
        await finish(ok);
      } finally {
        await ok.stop('SIGKILL');
      }
      // The wrong password inline in the conninfo (the other way secrets arrive).
      await observe(['--primary-conninfo', `${conninfo('repl')} password=${WRONG_PASSWORD}`],
        /password authentication failed/, 'wrong password', WRONG_PASSWORD);
      await observe(['--primary-conninfo', conninfo('norepl'), '--replication-password', NOREPL_PASSWORD],
        /replication role|REPLICATION attribute|WAL sender/i, 'no replication privilege', NOREPL_PASSWORD);
      // One walsender, taken by the standby.
      c.primary.configure({ max_wal_senders: 1 });
      await c.primary.stop('fast');
      await c.primary.start();
      for (let i = 0; (await c.primary.scalar<string>('select count(*)::text from pg_stat_replication')) !== '1'; i++) {
        assert.ok(i < 100, 'the standby did not reconnect');
        await sleep(100);
      }
      await observe(['--primary-conninfo', conninfo('repl'), '--replication-password', REPL_PASSWORD],
        /max_wal_senders/, 'max_wal_senders exhausted', REPL_PASSWORD);
      assert.equal(await c.primary.scalar<string>(`select application_name from pg_stat_replication`), 'standby', 'the standby kept its walsender');
    } finally {
      await proxy.close();
    }
  });
});

test(`PG ${version}: synchronous_standby_names='*': the sidecar never acknowledges a commit`, async (t) => {
  await withCluster(version, { name: 'fault-sync', primaryConf: { synchronous_standby_names: '*' } }, async (c) => {
    await c.primary.exec('create table sync_t (id int)');
    // Only the sidecar stays connected to the primary: stop the standby's walreceiver.
    c.standby.configure({ primary_conninfo: '' });
    await c.standby.exec('select pg_reload_conf()');
    for (let i = 0; (await c.primary.scalar<string>('select count(*)::text from pg_stat_replication')) !== '0'; i++) {
      assert.ok(i < 100, 'the standby walreceiver did not stop');
      await sleep(100);
    }
    const agent = await startAgent(agentArgs(c.standby, ['--primary-conninfo', c.primary.conninfo(), '--status-interval', '100ms']));
    const client = postgres({ host: '127.0.0.1', port: c.primary.port, user: 'postgres', database: 'postgres', max: 1, onnotice: () => {} });
    try {
      await agent.waitFor((s) => s.state === 'streaming' && s.upstreamConnected, 'the sidecar streaming from the primary');
      assert.equal(await c.primary.scalar<string>(`select count(*)::text from pg_stat_replication where application_name = 'pg_prefaulter'`), '1');
      let committed = false;
      const commit = client`insert into sync_t values (1)`.then(() => (committed = true));
      // The sidecar has received (and reported as written) WAL past the commit record,
      // while the commit still waits for a synchronous standby: one snapshot shows both.
      await until('the sidecar past the commit while it waits on SyncRep', async () => {
        const [row] = await c.primary.query<{ waiting: boolean; past: boolean }>(
          `select exists (select 1 from pg_stat_activity where wait_event = 'SyncRep') as waiting,
                  coalesce((select write_lsn >= pg_current_wal_flush_lsn() from pg_stat_replication where application_name = 'pg_prefaulter'), false) as past`,
        );
        assert.equal(committed, false, 'a commit returned while only the sidecar was connected');
        return row!.waiting && row!.past;
      }, 30_000, 50);
      const rep = await c.primary.query<{ flush: string | null; state: string; sent: string | null; sync: string }>(
        `select flush_lsn::text as flush, state, sent_lsn::text as sent, sync_state as sync from pg_stat_replication where application_name = 'pg_prefaulter'`,
      );
      t.diagnostic(`the sidecar in pg_stat_replication while the commit waits: ${JSON.stringify(rep)}`);
      assert.equal(rep[0]?.flush ?? null, null, 'the sidecar reported a flush position');
      const st = await agent.status();
      assert.equal(committed, false, `a commit returned while only the sidecar was connected: ${JSON.stringify(rep)}`);
      assert.ok(lsn(st.streamLsn) > 0n, 'the sidecar did receive WAL');
      // The standby comes back: the commit completes.
      c.standby.configure({ primary_conninfo: c.primary.conninfo({ application_name: 'standby' }) });
      await c.standby.exec('select pg_reload_conf()');
      await commit;
      assert.equal(committed, true);
      assertAlive(agent, 'sync rep');
      await finish(agent);
    } finally {
      await client.end({ timeout: 1 });
      await agent.stop('SIGKILL');
    }
  });
});

test(`PG ${version}: sslmode=verify-full: streams over TLS from a primary with a trusted certificate, refuses an untrusted one`, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'fault-tls-'));
  chmodSync(dir, 0o755);
  try {
    const cert = makeCert(dir, 'server').crt;
    const other = makeCert(dir, 'other').crt;
    // The agent runs as root here, but copies the CA file like a mounted secret would be: readable.
    for (const f of [cert, other]) chmodSync(f, 0o644);
    const hba = ['hostssl replication tls_user 127.0.0.1/32 scram-sha-256', 'hostnossl replication tls_user 127.0.0.1/32 reject'];
    const conf = { ssl: 'on', ssl_cert_file: cert, ssl_key_file: join(dir, 'server.key') };
    await withCluster(version, { name: 'fault-tls', hba, primaryConf: conf }, async (c) => {
      const password = 'Tls-S3cret-5e1f';
      await c.primary.exec(`set password_encryption = 'scram-sha-256'; create role tls_user login replication password '${password}';`);
      await c.standby.waitForReplay(await c.primary.currentLsn());
      const conninfo = (ca: string) => `host=localhost port=${c.primary.port} user=tls_user sslmode=verify-full sslrootcert=${ca}`;

      const bad = await startAgent(agentArgs(c.standby, ['--primary-conninfo', conninfo(other), '--replication-password', password]));
      try {
        await bad.waitFor((s) => s.state === 'following' && s.reconnects.upstream >= 2, 'retrying an untrusted server');
        assert.equal((await bad.status()).upstreamConnected, false, 'connected to a server whose certificate is not trusted');
        await bad.logged(/certificate|self.signed|verify/i, 'the TLS failure named in a warning', { pick: (o) => warnLines(o).join('\n') });
        assertAlive(bad, 'untrusted certificate');
        await finish(bad);
      } finally {
        await bad.stop('SIGKILL');
      }

      const good = await startAgent(agentArgs(c.standby, ['--primary-conninfo', conninfo(cert), '--replication-password', password]));
      try {
        await c.primary.exec('create table tls_t as select generate_series(1, 1000) id');
        const target = lsn(await c.primary.currentLsn());
        await good.waitFor((s) => s.state === 'streaming' && s.upstreamConnected && lsn(s.streamLsn) >= target, 'streaming over TLS');
        const ssl = await c.primary.scalar<boolean>(
          `select s.ssl from pg_stat_ssl s join pg_stat_replication r using (pid) where r.application_name = 'pg_prefaulter'`,
        );
        assert.equal(ssl, true, 'the sidecar walsender connection is not encrypted');
        assert.ok(!good.output().includes(password) && !(await good.scrape()).includes(password), 'the password leaked');
        await finish(good);
      } finally {
        await good.stop('SIGKILL');
      }
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// SIGTERM while the replication connection is being opened to a host that
// accepts but never answers (a dead node behind a live load balancer / VIP).
async function sigtermDuringConnect(c: Cluster): Promise<{ code: number | null; ms: number; output: string }> {
  const proxy = await startTcpProxy('127.0.0.1', c.primary.port);
  proxy.blackhole = true;
  const agent = await startAgent(agentArgs(c.standby, [
    '--primary-conninfo', `host=127.0.0.1 port=${proxy.port} user=postgres sslmode=disable`, '--connect-timeout', '60s',
  ]));
  try {
    await agent.waitFor((s) => s.state === 'following', 'following');
    for (let i = 0; proxy.active === 0; i++) {
      assert.ok(i < 100, 'the agent never tried the upstream');
      await sleep(50);
    }
    await sleep(300); // well inside the connect attempt
    const { code, ms } = await agent.stop('SIGTERM');
    return { code, ms, output: agent.output() };
  } finally {
    await agent.stop('SIGKILL');
    await proxy.close();
  }
}

test(`PG ${version}: SIGTERM while the upstream accepts but never answers: exit 0 within 2 s`, async () => {
  await withCluster(version, { name: 'fault-blackhole' }, async (c) => {
    const { code, ms, output } = await sigtermDuringConnect(c);
    assert.equal(code, 0, output.slice(-2000));
    assert.ok(ms < 2000, `SIGTERM took ${ms} ms`);
  });
});

// Known bug: ReplicationConnection.connect cannot be aborted, so Agent.stop()
// waits for the connect attempt and run's 1.8 s watchdog exits the process
// (skipping the orderly shutdown and logging an error). Needs an AbortSignal in
// ConnOptions (src/replication), passed by the agent; see the fault-suite report.
test(`PG ${version}: SIGTERM during a hanging connect stops in order, not by the watchdog`, async () => {
  await withCluster(version, { name: 'fault-blackhole-clean' }, async (c) => {
    const { code, output } = await sigtermDuringConnect(c);
    assert.equal(code, 0);
    assert.doesNotMatch(output, /exiting anyway/, 'the stop hung on the connect attempt and the watchdog had to exit');
    assert.match(output, /"msg":"stopped"/, 'the agent did not finish its orderly stop');
  });
});
