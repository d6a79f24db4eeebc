// Fault suite, upstream side: what happens to the running sidecar when the
// primary it streams from crashes, the network cuts a message in half, the
// bytes arrive corrupted, or it is not allowed in. Each case checks the agent
// survives, holds only read-only handles under PGDATA (none twice), wrote
// nothing there, and resumes once the fault clears; and that neither the
// primary nor the follower was hurt.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { selectedVersions, withCluster, sleep, type Cluster, type PgServer } from './harness/index.ts';
import { startAgent, metricValue, type AgentProcess } from './helpers/agent-process.ts';
import { startTcpProxy } from './helpers/tcp-proxy.ts';

const versions = selectedVersions();
const version = versions[versions.length - 1]!;
// Without full-page images every change makes replay read its page, so the agent reads them.
const CONF = { primaryConf: { full_page_writes: 'off' } };

// ---- shared checks (kept in this file: one concern, the fault cases) ----

function agentArgs(server: PgServer, extra: string[] = []): string[] {
  return ['-D', server.dataDir, '-H', server.socketDir, '-p', String(server.port), '-U', 'postgres', '--log-level', 'info',
    '--reconnect-min', '200ms', '--reconnect-max', '1s', ...extra];
}

function lsn(text: string | null | undefined): bigint {
  if (!text) return 0n;
  const [hi, lo] = text.split('/');
  return (BigInt(`0x${hi}`) << 32n) | BigInt(`0x${lo}`);
}

interface OpenFile {
  path: string;
  flags: number;
}

/** The agent's open files under dir, with their open flags (from /proc/<pid>/fdinfo). */
function openFiles(agent: AgentProcess, dir: string): OpenFile[] {
  const pid = agent.proc.pid;
  const out: OpenFile[] = [];
  let fds: string[] = [];
  try {
    fds = readdirSync(`/proc/${pid}/fd`);
  } catch {
    return out;
  }
  for (const fd of fds) {
    try {
      const path = readlinkSync(`/proc/${pid}/fd/${fd}`);
      if (!path.startsWith(dir + '/')) continue;
      const m = /^flags:\s+([0-7]+)/m.exec(readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8'));
      out.push({ path, flags: m ? parseInt(m[1]!, 8) : -1 });
    } catch {
      // closed meanwhile
    }
  }
  return out;
}

/** Every handle under PGDATA is read-only and open once; no WAL segment is held. */
function assertHandlesClean(agent: AgentProcess, pgdata: string, what: string): OpenFile[] {
  const files = openFiles(agent, pgdata);
  for (const f of files) assert.equal(f.flags & 3, 0, `${what}: ${f.path} is open for writing (flags ${f.flags.toString(8)})`);
  const paths = files.map((f) => f.path);
  assert.equal(new Set(paths).size, paths.length, `${what}: a file is open more than once (leaked handle): ${paths.join(', ')}`);
  assert.deepEqual(paths.filter((p) => p.includes('/pg_wal/')), [], `${what}: a WAL segment is held open`);
  return files;
}

function assertAlive(agent: AgentProcess, what: string): void {
  assert.equal(agent.proc.exitCode, null, `${what}: the agent exited\n${agent.output().slice(-3000)}`);
}

/** Log lines at warn level or above (pino numeric levels: warn 40, error 50, fatal 60). */
function warnLines(output: string): string[] {
  return output.split('\n').filter((l) => {
    try {
      return (JSON.parse(l) as { level?: number }).level! >= 40;
    } catch {
      return false;
    }
  });
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

async function finish(agent: AgentProcess): Promise<void> {
  const { code, ms } = await agent.stop('SIGTERM');
  assert.equal(code, 0, agent.output().slice(-2000));
  assert.ok(ms < 2000, `SIGTERM took ${ms} ms`);
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
      await agent.waitFor((s) => s.upstreamConnected === false, 'the upstream connection seen as lost');
      await sleep(1500); // a few reconnect attempts against a dead primary
      assertAlive(agent, 'primary down');
      const down = assertHandlesClean(agent, c.standby.dataDir, 'primary down');
      assert.ok(down.length <= baseline.length, `handles grew while the primary was down: ${baseline.length} -> ${down.length}`);

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
      assertQuietUntouched(q, 'corruption');
      await assertFollowerCatchesUp(c);
      await finish(agent);
    } finally {
      await agent.stop('SIGKILL');
      await proxy.close();
    }
  });
});
