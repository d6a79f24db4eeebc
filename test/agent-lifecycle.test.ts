// The agent through a replica's life as Patroni drives it (issue #16), with
// the real CLI and real servers: Patroni's credentials (the follower's
// password in PGPASSWORD, the replication user's in the passfile= that
// primary_conninfo names), an idle cluster, a long outage with the socket
// directory removed, SIGTERM, and a promotion.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { selectedVersions, serverUser, withCluster } from './harness/index.ts';
import { startAgent, type AgentProcess } from './helpers/agent-process.ts';

const version = selectedVersions().at(-1)!;
const MONITOR_PASSWORD = 'Monitor-9f2c';
const REPLICATOR_PASSWORD = 'Replicator-41ab';

function ownedByServer(path: string): void {
  const u = serverUser();
  if (u) chownSync(path, u.uid, u.gid);
}

async function untilTrue(what: string, check: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

test(`PG ${version}: Patroni-style credentials, idle streaming, reconnect after a long outage, SIGTERM, promotion`, { timeout: 240_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'pgpf-lifecycle-'));
  chmodSync(dir, 0o755);
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const hba = ['local all monitor scram-sha-256', 'host replication replicator 127.0.0.1/32 scram-sha-256'];
  await withCluster(version, { name: 'agent-lifecycle', hba }, async (c) => {
    await c.primary.exec(`
      set password_encryption = 'scram-sha-256';
      create role monitor login password '${MONITOR_PASSWORD}' in role pg_monitor;
      create role replicator login replication password '${REPLICATOR_PASSWORD}';`);
    // Patroni's way: the replication password in a pgpass file that primary_conninfo names.
    const pgpass = join(dir, 'pgpass');
    writeFileSync(pgpass, `*:*:replication:replicator:${REPLICATOR_PASSWORD}\n`, { mode: 0o600 });
    ownedByServer(pgpass);
    await c.standby.exec(`alter system set primary_conninfo = 'host=127.0.0.1 port=${c.primary.port} user=replicator passfile=${pgpass} sslmode=disable application_name=standby'`);
    await c.standby.query('select pg_reload_conf()');
    await untilTrue('the standby streaming as replicator', async () =>
      (await c.standby.query(`select 1 from pg_stat_wal_receiver where status = 'streaming' and conninfo like '%user=replicator%'`)).length === 1);
    // An idle cluster: replay is at a segment start (after a WAL switch) and nothing is written after it.
    await c.primary.switchWal();
    await c.standby.waitForReplay(await c.primary.currentLsn());

    const home = join(dir, 'home');
    mkdirSync(home);
    const env = { PGPASSWORD: MONITOR_PASSWORD, HOME: home, PGPASSFILE: '' };
    const args = ['-H', c.standby.socketDir, '-p', String(c.standby.port), '-U', 'monitor', '--reconnect-min', '20s', '--reconnect-max', '60s'];
    let agent: AgentProcess = await startAgent(args, env);
    try {
      // #16 defects 1 and 4: streams as replicator (not with PGPASSWORD), and says `streaming` with no WAL arriving.
      const st = await agent.waitFor((s) => s.state === 'streaming', 'streaming on an idle cluster', 15_000);
      assert.equal(st.upstreamConnected, true);
      assert.equal(st.upstream, `127.0.0.1:${c.primary.port}`);
      t.diagnostic(`streaming with streamLsn ${st.streamLsn} (null: no WAL had arrived)`);
      assert.doesNotMatch(agent.output(), /password authentication failed/);

      // #16 defect 5: a long outage, with the socket directory removed and made again (a re-basebackup).
      await c.standby.stop('fast');
      rmSync(c.standby.socketDir, { recursive: true, force: true });
      const down = await agent.waitFor((s) => s.state === 'waiting_for_postgres', 'the agent noticing the outage');
      await agent.waitFor((s) => s.reconnects.follower >= down.reconnects.follower + 5, 'retries during the outage');
      mkdirSync(c.standby.socketDir, { mode: 0o755 });
      ownedByServer(c.standby.socketDir);
      await c.standby.start();
      const upAt = Date.now();
      await agent.waitFor((s) => s.state !== 'waiting_for_postgres', 'reconnecting after the outage', 10_000);
      const reconnectMs = Date.now() - upAt;
      t.diagnostic(`reconnected ${reconnectMs} ms after the server accepted connections`);
      assert.ok(reconnectMs < 1500, `reconnected ${reconnectMs} ms after the server was back`);
      await agent.waitFor((s) => s.state === 'streaming', 'streaming again');

      // #16 defect 2: SIGTERM while streaming exits promptly.
      const { code, ms } = await agent.stop('SIGTERM');
      t.diagnostic(`SIGTERM to exit: ${ms} ms`);
      assert.equal(code, 0, agent.output().slice(-2000));
      assert.ok(ms < 1000, `SIGTERM took ${ms} ms to exit`);

      // #16 defect 3: after a promotion /status shows no upstream.
      agent = await startAgent(args, env);
      await agent.waitFor((s) => s.state === 'streaming', 'streaming before the promotion');
      await c.standby.promote();
      const promoted = await agent.waitFor((s) => s.state === 'primary_idle', 'primary_idle after the promotion');
      assert.equal(promoted.role, 'primary');
      assert.equal(promoted.upstream, null);
      assert.equal(promoted.upstreamConnected, false);
      assert.equal(promoted.source, null);
    } finally {
      await agent.stop('SIGKILL');
    }
  });
});
