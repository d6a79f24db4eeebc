// Fault suite, follower side: the sidecar's own PostgreSQL stops, is promoted,
// is rebuilt as a standby of a new primary; relations vanish under it; WAL
// arrives in a burst; the operator mistypes config, reloads it, or stops the
// pod. Each case checks the agent survives (or exits as specified), holds only
// read-only handles under PGDATA (each once, none to a deleted file), and
// resumes once the fault clears.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chownSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import { selectedVersions, withCluster, sleep, serverUser, type Cluster } from './harness/index.ts';
import { startAgent, BIN } from './helpers/agent-process.ts';
import { startTcpProxy } from './helpers/tcp-proxy.ts';
import { until } from './helpers/until.ts';
import { agentArgs, lsn, openFiles, assertHandlesClean, assertCacheConsistent, assertAlive, warnLines, finish, waitNoHandles, assertNothingHeld, type OpenFile } from './helpers/fault-checks.ts';

const versions = selectedVersions();
const version = versions[versions.length - 1]!;
// Without full-page images every change makes replay read its page, so the agent reads them.
const CONF = { primaryConf: { full_page_writes: 'off' } };

// ---- shared checks ----

/** Pending WAL on a paused standby that touches every page of an existing table. */
async function pendingUpdates(c: Cluster, table: string, rows: number): Promise<{ file: string; blocks: number }> {
  await c.primary.exec(`
    create table ${table} (id int primary key, v int not null, filler text) with (fillfactor = 100);
    insert into ${table} select g, 0, repeat('q', 400) from generate_series(1, ${rows}) g;
    checkpoint;`);
  await c.standby.waitForReplay(await c.primary.currentLsn());
  await c.standby.exec('checkpoint');
  await c.standby.pauseReplay();
  await c.primary.exec(`update ${table} set v = v + 1`);
  await c.standby.waitForReceive(await c.primary.currentLsn());
  const file = join(c.standby.dataDir, await c.standby.scalar<string>(`select pg_relation_filepath('${table}')`));
  return { file, blocks: statSync(file).size / 8192 };
}

function vmHwmKb(pid: number): number {
  const m = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : -1;
}

// ---- cases ----

test(`PG ${version}: standby stopped while streaming: every handle closed within 2 s, streams again after start`, async () => {
  await withCluster(version, { name: 'fault-standby-stop', ...CONF }, async (c) => {
    const { file, blocks } = await pendingUpdates(c, 'held', 1600);
    const before = statSync(file);
    const agent = await startAgent(agentArgs(c.standby));
    try {
      await agent.waitFor((s) => s.state === 'streaming' && (s.prefault?.completed ?? 0) >= blocks, 'prefaulting the pending updates');
      assert.ok(openFiles(agent, c.standby.dataDir).some((f) => f.path === file), 'the agent holds the table open before the stop');
      assertHandlesClean(agent, c.standby.dataDir, 'streaming');
      await assertCacheConsistent(agent, c.standby.dataDir, 'streaming');
      await c.standby.stop('fast');
      const { open, ms } = await waitNoHandles(agent, c.standby.dataDir, 5000);
      assert.deepEqual(open.map((f) => f.path), [], 'handles still open after PostgreSQL stopped');
      assert.ok(ms <= 2000, `handles closed ${ms} ms after PostgreSQL stopped (limit 2000)`);
      await agent.waitFor((s) => s.state === 'waiting_for_postgres', 'waiting_for_postgres');
      const after = statSync(file);
      assert.equal(after.mtimeMs, before.mtimeMs, 'the agent wrote to a relation file');
      assert.equal(after.size, before.size);
      // A second agent started while PostgreSQL is down waits for it rather than exiting.
      const late = await startAgent(agentArgs(c.standby));
      try {
        await late.waitFor((s) => s.state === 'waiting_for_postgres', 'the late agent waiting for PostgreSQL');
        // It keeps retrying (rather than exiting), and so does the first agent.
        const retries = (await agent.status()).reconnects.follower;
        await late.waitFor((s) => s.reconnects.follower >= 3, 'the late agent retrying PostgreSQL', 10_000);
        await agent.waitFor((s) => s.reconnects.follower >= retries + 2, 'the first agent retrying PostgreSQL', 10_000);
        assertAlive(agent, 'PostgreSQL down');
        assertAlive(late, 'started while PostgreSQL was down');
        await assertNothingHeld(agent, c.standby.dataDir, 'PostgreSQL down');

        await c.standby.start(); // replay is no longer paused after a restart
        await late.waitFor((s) => s.state === 'streaming', 'the late agent streaming once PostgreSQL is up');
        await finish(late);
      } finally {
        await late.stop('SIGKILL');
      }
      await c.primary.exec(`update held set v = v + 1 where id % 7 = 0`);
      const target = lsn(await c.primary.currentLsn());
      await agent.waitFor((s) => s.state === 'streaming' && lsn(s.streamLsn) >= target, 'streaming again after the restart');
      assertHandlesClean(agent, c.standby.dataDir, 'after restart');
      await finish(agent);
    } finally {
      await agent.stop('SIGKILL');
    }
  });
});

test(`PG ${version}: the follower connection is reset: polling resumes on a new connection, no handle leaked`, async () => {
  await withCluster(version, { name: 'fault-follower-reset', ...CONF }, async (c) => {
    const { file, blocks } = await pendingUpdates(c, 'held', 1600);
    // The agent reaches its follower over TCP through the proxy (the sidecar normally uses the socket directory).
    const proxy = await startTcpProxy('127.0.0.1', c.standby.port);
    const agent = await startAgent(['-D', c.standby.dataDir, '-H', '127.0.0.1', '-p', String(proxy.port), '-U', 'postgres',
      '--sslmode', 'disable', '--log-level', 'info', '--reconnect-min', '200ms', '--reconnect-max', '1s']);
    try {
      await agent.waitFor((s) => s.state === 'streaming' && (s.prefault?.completed ?? 0) >= blocks, 'prefaulting the pending updates');
      assert.ok(openFiles(agent, c.standby.dataDir).some((f) => f.path === file), 'the agent holds the table open');
      const connections = proxy.connections;
      proxy.cutAll();
      // Replay moves on; the agent must see it, i.e. poll its follower again.
      await c.standby.resumeReplay();
      const target = lsn(await c.primary.currentLsn());
      await c.standby.waitForReplay(await c.primary.currentLsn());
      await agent.waitFor((s) => lsn(s.replayLsn) >= target && !s.replayPaused, 'the agent polling the follower again');
      assert.ok(proxy.connections > connections, 'the agent reconnected to the follower');
      await c.primary.exec('update held set v = v + 1 where id % 5 = 0');
      const next = lsn(await c.primary.currentLsn());
      await agent.waitFor((s) => s.state === 'streaming' && lsn(s.decodedLsn) >= next - 8192n, 'decoding new WAL after the reset');
      assertHandlesClean(agent, c.standby.dataDir, 'after the follower reset');
      await assertCacheConsistent(agent, c.standby.dataDir, 'after the follower reset');
      assertAlive(agent, 'follower reset');
      await finish(agent);
    } finally {
      await agent.stop('SIGKILL');
      await proxy.close();
      await c.standby.resumeReplay().catch(() => {});
    }
  });
});

test(`PG ${version}: the follower stops answering (frozen connection): session ends, handles closed, resumes when it answers again`, async () => {
  await withCluster(version, { name: 'fault-follower-freeze', ...CONF }, async (c) => {
    const { file, blocks } = await pendingUpdates(c, 'held', 1600);
    const proxy = await startTcpProxy('127.0.0.1', c.standby.port);
    const agent = await startAgent(['-D', c.standby.dataDir, '-H', '127.0.0.1', '-p', String(proxy.port), '-U', 'postgres',
      '--sslmode', 'disable', '--log-level', 'info', '--reconnect-min', '200ms', '--reconnect-max', '1s', '--connect-timeout', '2s']);
    try {
      await agent.waitFor((s) => s.state === 'streaming' && (s.prefault?.completed ?? 0) >= blocks, 'prefaulting the pending updates');
      assert.ok(openFiles(agent, c.standby.dataDir).some((f) => f.path === file), 'the agent holds the table open');
      proxy.frozen = true;
      const t0 = Date.now();
      await agent.waitFor((s) => s.state === 'waiting_for_postgres', 'the session ended on a silent follower', 15_000);
      const waited = await waitNoHandles(agent, c.standby.dataDir, 15_000 - (Date.now() - t0));
      const open = waited.open;
      const ms = Date.now() - t0;
      assert.deepEqual(open.map((f) => f.path), [], 'handles still open while the follower does not answer');
      // connect_timeout (2 s) + one poll + closing the silent connection (2 s).
      assert.ok(ms < 6000, `handles closed ${ms} ms after the follower went silent`);
      await agent.logged(/no answer within/, 'the silent follower named in a warning', { pick: (o) => warnLines(o).join('\n') });
      assertAlive(agent, 'follower frozen');

      proxy.frozen = false;
      await agent.waitFor((s) => s.state === 'streaming' && (s.prefault?.completed ?? 0) >= blocks, 'prefaulting again once the follower answers');
      assertHandlesClean(agent, c.standby.dataDir, 'after the freeze');
      await assertCacheConsistent(agent, c.standby.dataDir, 'after the freeze');
      await finish(agent);
    } finally {
      await agent.stop('SIGKILL');
      await proxy.close();
      await c.standby.resumeReplay().catch(() => {});
    }
  });
});

test(`PG ${version}: promotion, old primary rebuilt as a standby of the new one: its agent follows the new upstream and timeline 2`, async () => {
  await withCluster(version, { name: 'fault-failover', ...CONF }, async (c) => {
    await c.primary.exec('create table ff (id int primary key, v int); insert into ff select g, 0 from generate_series(1, 5000) g;');
    await c.standby.waitForReplay(await c.primary.currentLsn());
    const onStandby = await startAgent(agentArgs(c.standby));
    const onPrimary = await startAgent(agentArgs(c.primary));
    try {
      await onStandby.waitFor((s) => s.state === 'streaming', 'standby agent streaming');
      await onPrimary.waitFor((s) => s.state === 'primary_idle' && s.timeline === 1, 'primary agent idle');
      await assertNothingHeld(onPrimary, c.primary.dataDir, 'the agent of a primary');

      // Clean switchover: stop the old primary first so it cannot diverge.
      await c.primary.stop('fast');
      await onPrimary.waitFor((s) => s.state === 'waiting_for_postgres', 'primary agent waiting for PostgreSQL');
      await c.standby.promote();
      await onStandby.waitFor((s) => s.state === 'primary_idle' && s.role === 'primary' && s.timeline === 2, 'the promoted node idle on timeline 2');
      await assertNothingHeld(onStandby, c.standby.dataDir, 'after promotion');

      // The old primary becomes a standby of the promoted node.
      const signal = join(c.primary.dataDir, 'standby.signal');
      writeFileSync(signal, '');
      const u = serverUser();
      if (u) chownSync(signal, u.uid, u.gid);
      c.primary.configure({ primary_conninfo: c.standby.conninfo({ application_name: 'old_primary' }) });
      await c.primary.start();
      await c.standby.exec('update ff set v = v + 1 where id % 3 = 0');
      const target = lsn(await c.standby.currentLsn());
      const st = await onPrimary.waitFor(
        (s) => s.state === 'streaming' && s.role === 'standby' && s.timeline === 2 && s.upstreamConnected && lsn(s.streamLsn) >= target,
        'the old primary\'s agent streaming timeline 2 from the new primary',
      );
      assert.equal(st.upstream, `127.0.0.1:${c.standby.port}`, 'upstream is the promoted node');
      assert.ok(st.walRecords > 0);
      assertHandlesClean(onPrimary, c.primary.dataDir, 'following the new primary');
      assertAlive(onStandby, 'promoted node');
      await finish(onPrimary);
      await finish(onStandby);
    } finally {
      await onStandby.stop('SIGKILL');
      await onPrimary.stop('SIGKILL');
    }
  });
});

for (const method of ['pread', 'willneed'] as const) {
test(`PG ${version}: relations dropped or not yet on disk while their blocks are queued (io_method ${method}): ENOENT counted, no handle to a deleted file, no log storm`, async (t) => {
  await withCluster(version, { name: `fault-drop-${method}`, ...CONF }, async (c) => {
    const { file, blocks } = await pendingUpdates(c, 'dropme', 8000);
    // The visibility map fork does not exist on the standby until replay of this vacuum creates it:
    // the agent is sent to a file that is not there (deterministic ENOENT).
    await c.primary.exec('vacuum (freeze) dropme');
    const vm = `${file}_vm`;
    assert.throws(() => statSync(vm), /ENOENT/, 'the standby has no visibility map yet');
    await c.primary.exec('drop table dropme');
    await c.standby.waitForReceive(await c.primary.currentLsn());
    const agent = await startAgent(agentArgs(c.standby, ['--io-concurrency', '1', '--io-method', method]));
    try {
      const st0 = await agent.waitFor(
        (s) => s.state === 'streaming' && lsn(s.decodedLsn) >= lsn(s.receiveLsn) - 8192n && s.prefault.queued === 0 && s.prefault.inFlight === 0,
        'decoded through the drop, reads done',
      );
      t.diagnostic(`paused: skipped ${JSON.stringify(st0.prefault.skipped)}; completed ${st0.prefault.completed}; missing opens ${st0.prefault.fileHandle.missing}`);
      assert.ok(st0.prefault.skipped.missing_file > 0 || st0.prefault.fileHandle.missing > 0, 'the missing visibility map was not counted as ENOENT');
      assert.equal(st0.prefault.readErrors, 0, 'ENOENT counted as a read error');
      const holds = openFiles(agent, c.standby.dataDir).some((f) => f.path === file);
      if (method === 'pread') {
        // One read at a time: reads queued before the drop was decoded reopen the file (it is still there).
        assert.ok(holds, 'the agent holds the doomed table open');
      } else {
        // Hints are synchronous: all were given before the drop record, whose decoding closed the fd.
        assert.ok(!holds, 'the table was closed when its drop was decoded');
      }
      // Replay applies the drop: the file goes, and so must every handle to it.
      await c.standby.resumeReplay();
      await c.standby.waitForReplay(await c.primary.currentLsn());
      assert.throws(() => statSync(file), /ENOENT/, 'replay removed the dropped relation');
      // Churn: relations created, filled and dropped while the agent streams and replay runs.
      for (let i = 0; i < 20; i++) {
        await c.primary.exec(`create table churn_${i} (id int, f text); insert into churn_${i} select g, repeat('c', 300) from generate_series(1, 3000) g;
          update churn_${i} set id = id + 1; drop table churn_${i};`);
      }
      const target = lsn(await c.primary.currentLsn());
      await c.standby.waitForReplay(await c.primary.currentLsn());
      const st = await agent.waitFor((s) => lsn(s.decodedLsn) >= target - 8192n && lsn(s.replayLsn) >= target - 8192n, 'decoded and replayed through the churn');
      const sk = st.prefault.skipped;
      t.diagnostic(`after churn: blocks ${blocks}; skipped ${JSON.stringify(sk)}; completed ${st.prefault.completed}; missing opens ${st.prefault.fileHandle.missing}`);
      assert.ok(sk.dropped + sk.missing_file + sk.created > 0, `no drop/create accounted for: ${JSON.stringify(sk)}`);
      assert.equal(st.prefault.readErrors, 0, 'a vanished file counted as a read error');
      // Handles of dropped relations close once replay passes the drop (the next poll retires it).
      let held: OpenFile[] = [];
      for (let i = 0; i < 20; i++) {
        held = openFiles(agent, c.standby.dataDir).filter((f) => f.path.startsWith(file) || f.path.endsWith(' (deleted)'));
        if (!held.length) break;
        await sleep(100);
      }
      assert.deepEqual(held.map((f) => f.path), [], 'a dropped relation is still open: its disk space is not freed');
      assertHandlesClean(agent, c.standby.dataDir, 'after drops');
      await assertCacheConsistent(agent, c.standby.dataDir, 'after drops');
      const warns = warnLines(agent.output());
      assert.ok(warns.length <= 2, `log storm (${warns.length} warn/error lines):\n${warns.slice(0, 5).join('\n')}`);
      assertAlive(agent, 'drops');
      await finish(agent);
    } finally {
      await agent.stop('SIGKILL');
    }
  });
});
}

function runCli(args: string[], env: Record<string, string> = {}): { code: number | null; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, 'run', ...args], {
    env: { ...process.env, ...env },
    encoding: 'utf8',
    timeout: 20_000,
    cwd: '/',
  });
  return { code: r.status, stderr: r.stderr + r.stdout };
}

test('bad config values and unknown keys: exit code 2 naming the key, nothing started', () => {
  const dir = mkdtempSync(join(tmpdir(), 'fault-config-'));
  try {
    const file = (name: string, text: string) => {
      const p = join(dir, name);
      writeFileSync(p, text);
      return p;
    };
    const cases: { what: string; args: string[]; env?: Record<string, string>; names: RegExp }[] = [
      { what: 'out-of-range flag', args: ['--io-concurrency', '0'], names: /io[_-]concurrency/ },
      { what: 'non-numeric flag', args: ['--port', 'fivefourthreetwo'], names: /port/ },
      { what: 'bad size', args: ['--readahead-bytes', '12parsecs'], names: /readahead[_-]bytes/ },
      { what: 'bad duration', args: ['--reconnect-max', 'soon'], names: /reconnect[_-]max/ },
      { what: 'bad enum', args: ['--source', 'carrier-pigeon'], names: /source/ },
      { what: 'unknown flag', args: ['--io-concurency', '4'], names: /io-concurency/ },
      { what: 'unknown key in file', args: ['--config', file('typo.toml', 'io_concurency = 4\n')], names: /io_concurency/ },
      { what: 'wrong type in file', args: ['--config', file('type.toml', 'io_concurrency = "lots"\n')], names: /io_concurrency/ },
      { what: 'out of range in file', args: ['--config', file('range.toml', 'io_concurrency = 100000\n')], names: /io_concurrency/ },
      { what: 'unreadable TOML', args: ['--config', file('broken.toml', 'io_concurrency = = 4\n')], names: /broken\.toml/ },
      { what: 'missing config file', args: ['--config', join(dir, 'absent.toml')], names: /absent\.toml/ },
      { what: 'unknown env setting', args: [], env: { PG_PREFAULTER_IO_CONCURENCY: '4' }, names: /PG_PREFAULTER_IO_CONCURENCY/ },
      { what: 'bad env value', args: [], env: { PG_PREFAULTER_IO_CONCURRENCY: '-3' }, names: /PG_PREFAULTER_IO_CONCURRENCY|io_concurrency/ },
    ];
    for (const k of cases) {
      const { code, stderr } = runCli(['--metrics-listen', '', ...k.args], k.env);
      assert.equal(code, 2, `${k.what}: exit code ${code}, expected 2\n${stderr}`);
      assert.match(stderr, k.names, `${k.what}: the message does not name the key:\n${stderr}`);
      assert.doesNotMatch(stderr, /pg-prefaulter started/, `${k.what}: the agent started anyway`);
      assert.ok(stderr.split('\n').filter(Boolean).length <= 3, `${k.what}: expected one clear message, got:\n${stderr}`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test(`PG ${version}: SIGHUP applies a changed io_concurrency and io_method live; SIGTERM under load exits 0 within 2 s; metrics bound to loopback only`, async (t) => {
  await withCluster(version, { name: 'fault-signals', ...CONF }, async (c) => {
    const dir = mkdtempSync(join(tmpdir(), 'fault-signals-'));
    const config = join(dir, 'pg-prefaulter.toml');
    writeFileSync(config, 'io_concurrency = 4\nio_method = "pread"\n');
    // Two tables: once pages are hinted they count as resident for as long as our page
    // cache can hold them, so the load moves to pages never touched to see new hints.
    for (const t of ['busy', 'busy2']) {
      await c.primary.exec(`create table ${t} (id int primary key, v int, f text); insert into ${t} select g, 0, repeat('b', 300) from generate_series(1, 20000) g;`);
    }
    const agent = await startAgent(agentArgs(c.standby, ['--config', config]));
    let loading = true;
    let table = 'busy';
    const loader = (async () => {
      for (let i = 0; loading; i++) await c.primary.exec(`update ${table} set v = v + 1 where id % 50 = ${i % 50}`);
    })();
    try {
      const st0 = await agent.waitFor((s) => s.state === 'streaming' && (s.prefault?.completed ?? 0) > 0, 'prefaulting under load');
      assert.equal(st0.settings.ioConcurrency, 4);
      assert.equal(st0.prefault.ioConcurrency, 4);
      assert.equal(st0.prefault.ioMethod, 'pread');
      const pid = agent.proc.pid;

      // Metrics: bound where configured (127.0.0.1), not on every address.
      const port = Number(new URL(agent.url).port);
      const portHex = port.toString(16).toUpperCase().padStart(4, '0');
      const listening = readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)
        .map((l) => l.trim().split(/\s+/))
        .filter((f) => f[3] === '0A' && f[1]?.endsWith(`:${portHex}`))
        .map((f) => f[1]);
      assert.deepEqual(listening, [`0100007F:${portHex}`], 'metrics listen on 127.0.0.1 only');
      const external = Object.values(networkInterfaces()).flat().find((a) => a && a.family === 'IPv4' && !a.internal);
      if (external) {
        const reached = await new Promise<boolean>((resolve) => {
          const s = connect(port, external.address);
          s.once('connect', () => (s.destroy(), resolve(true)));
          s.once('error', () => resolve(false));
        });
        assert.equal(reached, false, `metrics reachable on ${external.address}`);
      }

      writeFileSync(config, 'io_concurrency = 16\nio_method = "pread"\n');
      process.kill(pid!, 'SIGHUP');
      const st1 = await agent.waitFor((s) => s.settings?.ioConcurrency === 16 && s.prefault?.ioConcurrency === 16, 'io_concurrency 16 in force', 10_000);
      assert.equal(agent.proc.pid, pid);
      assertAlive(agent, 'after SIGHUP');
      assert.equal(st1.reconnects.follower, st0.reconnects.follower, 'the reload restarted the session');
      await until('the agent to log the reload', () => /configuration reloaded/.test(agent.output()));

      // A broken file on reload keeps the running configuration.
      writeFileSync(config, 'io_concurrency = "many"\n');
      process.kill(pid!, 'SIGHUP');
      await until('the agent to log the failed reload', () => /config reload failed/.test(agent.output()));
      assertAlive(agent, 'after a bad reload');
      assert.equal((await agent.status()).settings.ioConcurrency, 16);

      // Reads to hints, live: same session, and prefaulting goes on with hints.
      writeFileSync(config, 'io_concurrency = 16\nio_method = "willneed"\n');
      process.kill(pid!, 'SIGHUP');
      const st2 = await agent.waitFor((s) => s.settings?.ioMethod === 'willneed' && s.prefault?.ioMethod === 'willneed', 'io_method willneed in force', 10_000);
      assert.equal(st2.reconnects.follower, st0.reconnects.follower, 'switching io_method restarted the session');
      table = 'busy2';
      await agent.waitFor((s) => (s.prefault?.completed ?? 0) > st2.prefault.completed, 'hints after the switch', 10_000);
      assert.match(await agent.scrape(), /^pg_prefaulter_io_method\{method="willneed"\} 1$/m);

      // A setting that needs a new session (readahead) restarts it in place: same process, no handle leaked.
      writeFileSync(config, 'io_concurrency = 16\nio_method = "willneed"\nreadahead_bytes = "8MiB"\n');
      process.kill(pid!, 'SIGHUP');
      await agent.waitFor((s) => s.settings?.readaheadBytes === 8 * 1048576 && s.state === 'streaming', 'streaming again with readahead 8MiB', 10_000);
      assert.equal(agent.proc.pid, pid);
      await assertCacheConsistent(agent, c.standby.dataDir, 'after a session restart');

      // The new session's counters start from zero: it prefaults again.
      await agent.waitFor((s) => s.state === 'streaming' && (s.prefault?.completed ?? 0) > 0, 'prefaulting continued after the reloads');
      assertHandlesClean(agent, c.standby.dataDir, 'under load');
      const { code, ms } = await agent.stop('SIGTERM');
      t.diagnostic(`SIGTERM under load: exit ${code} in ${ms} ms`);
      assert.equal(code, 0, agent.output().slice(-2000));
      assert.ok(ms < 2000, `SIGTERM took ${ms} ms`);
    } finally {
      loading = false;
      await loader.catch(() => {});
      await agent.stop('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

test(`PG ${version}: a large WAL burst while the standby is paused: agent memory stays bounded`, async (t) => {
  const burstMb = Number(process.env.FAULT_BURST_MB ?? 256);
  const rssLimitMb = Number(process.env.FAULT_RSS_LIMIT_MB ?? 256);
  await withCluster(version, { name: 'fault-burst', primaryConf: { full_page_writes: 'off', max_wal_size: '1GB', wal_keep_size: `${burstMb + 256}MB` } }, async (c) => {
    await c.primary.exec('create table burst (id bigint, f text)');
    await c.standby.waitForReplay(await c.primary.currentLsn());
    const agent = await startAgent(agentArgs(c.standby));
    try {
      await agent.waitFor((s) => s.state === 'streaming', 'streaming');
      const baseKb = vmHwmKb(agent.proc.pid!);
      await c.standby.pauseReplay();
      const start = lsn(await c.primary.currentLsn());
      // ~1.1 kB of WAL per row.
      const rowsPerChunk = 50_000;
      while (lsn(await c.primary.currentLsn()) - start < BigInt(burstMb) * 1048576n) {
        await c.primary.exec(`insert into burst select g, repeat(md5(g::text), 32) from generate_series(1, ${rowsPerChunk}) g`);
      }
      const target = lsn(await c.primary.currentLsn());
      await sleep(1000); // let anything the agent would buffer arrive
      const pausedKb = vmHwmKb(agent.proc.pid!);
      await c.standby.resumeReplay();
      await agent.waitFor((s) => lsn(s.streamLsn) >= target, 'the agent read the whole burst', 300_000);
      const hwmKb = vmHwmKb(agent.proc.pid!);
      t.diagnostic(`burst ${Number(target - start) >> 20} MiB of WAL; agent VmHWM: idle ${baseKb >> 10} MiB, standby paused ${pausedKb >> 10} MiB, after ${hwmKb >> 10} MiB (limit ${rssLimitMb} MiB)`);
      assert.ok(hwmKb >> 10 < rssLimitMb, `agent VmHWM ${hwmKb >> 10} MiB >= ${rssLimitMb} MiB`);
      assertHandlesClean(agent, c.standby.dataDir, 'after the burst');
      await assertCacheConsistent(agent, c.standby.dataDir, 'after the burst');
      assertAlive(agent, 'burst');
      await finish(agent);
    } finally {
      await agent.stop('SIGKILL');
      await c.standby.resumeReplay().catch(() => {});
    }
  });
});
