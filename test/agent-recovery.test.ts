// The agent prefaults recovery before PostgreSQL accepts connections (issue
// #15), on real servers of each selected version: a primary's crash recovery
// (hints before the server answers, then primary_idle with every file
// closed), PGDATA removed under the recovering agent (every handle released),
// and a standby with hot_standby = off that never accepts connections
// (the agent stays `recovering` and prefaults as WAL arrives). Also:
// agent-recovery-handover (page by page), -replaced (a new copy of PGDATA),
// -blind (PostgreSQL's processes not in view).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { renameSync } from 'node:fs';
import { selectedVersions, withCluster, withPrimary } from './harness/index.ts';
import { startAgent } from './helpers/agent-process.ts';
import { agentArgs, assertAlive, finish, openFiles, waitNoHandles } from './helpers/fault-checks.ts';
import { startUnready } from './helpers/unready-server.ts';
import { killHard } from './helpers/crash.ts';

const FPW_OFF = { full_page_writes: 'off', max_wal_size: '4GB', checkpoint_timeout: '1h' };
const issued = (s: Record<string, any>): number => s.prefault?.issued ?? 0;

for (const version of selectedVersions()) {
  test(`PG ${version}: crash recovery is prefaulted before the primary accepts connections, then handed over (primary_idle)`, { timeout: 180_000 }, async () => {
    await withPrimary(version, { name: 'agent-crash', primaryConf: FPW_OFF }, async ({ primary }) => {
      await primary.exec(`create table c (id int primary key, pad text); insert into c select g, repeat('p', 300) from generate_series(1, 60000) g; checkpoint`);
      // A burst since the last checkpoint: replay will read the pages these updates touch.
      await primary.exec(`update c set pad = repeat('q', 300) where id % 7 = 0`);
      await killHard(primary);

      // The agent starts first (the pod's sidecar may well win the race): pg_control says
      // "in production" and the stale postmaster.pid names a dead postmaster: a crash,
      // recovery will start from the redo point.
      const agent = await startAgent(agentArgs(primary));
      try {
        const before = await agent.waitFor((s) => s.state === 'recovering' && issued(s) > 0, 'hints while PostgreSQL is down', 30_000);
        assert.equal(before.role, 'unknown');
        assert.equal(before.recovery.kind, 'crash');
        assert.ok(typeof before.firstHintMs === 'number' && before.firstHintMs > 0, 'the time of the first hint since process start');
        assert.ok(openFiles(agent, primary.dataDir).length > 0, 'relation files are open for the hints');

        const server = startUnready(primary);
        try {
          const after = await agent.waitFor((s) => s.state === 'primary_idle', 'the hand-over to primary_idle', 60_000);
          assert.equal(after.role, 'primary');
          assert.ok(after.recovery.prefaultsIssued >= issued(before), `pages hinted while recovering are recorded: ${after.recovery.prefaultsIssued} at the hand-over, ${issued(before)} before; the agent's log:\n${agent.output().slice(-5000)}`);
          const { open } = await waitNoHandles(agent, primary.dataDir, 5000);
          assert.deepEqual(open, [], 'a primary: every file closed');
          await agent.logged(/PostgreSQL is recovering and refuses connections: prefaulting from the local pg_wal/);
          assertAlive(agent, 'after the hand-over');
        } finally {
          await server.kill();
        }
      } finally {
        await finish(agent);
      }
    });
  });

  test(`PG ${version}: a standby killed during replay is prefaulted while it starts up, then handed over to streaming with the same prefaulter`, { timeout: 180_000 }, async () => {
    await withCluster(version, { name: 'agent-sb-crash', primaryConf: FPW_OFF }, async ({ primary, standby }) => {
      await primary.exec(`create table s (id int primary key, pad text); insert into s select g, repeat('s', 300) from generate_series(1, 40000) g`);
      await standby.waitForReplay(await primary.currentLsn());
      await standby.exec('checkpoint'); // a restartpoint: replay restarts from here
      await primary.exec(`update s set pad = repeat('t', 300) where id % 4 = 0`);
      await standby.waitForReplay(await primary.currentLsn());
      await killHard(standby);
      const agent = await startAgent(agentArgs(standby));
      try {
        const before = await agent.waitFor((s) => s.state === 'recovering' && issued(s) > 0, 'hints before the standby starts', 30_000);
        assert.equal(before.recovery.kind, 'archive');
        const server = startUnready(standby);
        try {
          const after = await agent.waitFor((s) => s.state === 'streaming', 'the hand-over to streaming', 60_000);
          assert.equal(after.role, 'standby');
          // The same prefaulter: its counts go on from what was hinted while recovering (a new one starts at 0).
          assert.ok(after.recovery.prefaultsIssued >= issued(before));
          assert.ok(issued(after) >= after.recovery.prefaultsIssued, `issued ${issued(after)} after the hand-over, ${after.recovery.prefaultsIssued} while recovering`);
          await agent.logged(/the SQL path takes over the recovery prefetch/);
        } finally {
          await server.kill();
        }
      } finally {
        await finish(agent);
      }
    });
  });

  test(`PG ${version}: PGDATA removed under a recovering agent releases every handle`, { timeout: 120_000 }, async () => {
    await withPrimary(version, { name: 'agent-crash-rm', primaryConf: FPW_OFF }, async ({ primary }) => {
      await primary.exec(`create table c (id int primary key, pad text); insert into c select g, repeat('p', 300) from generate_series(1, 30000) g; checkpoint`);
      await primary.exec(`update c set pad = 'r' where id % 5 = 0`);
      await killHard(primary);
      const agent = await startAgent(agentArgs(primary));
      const moved = `${primary.dataDir}.old`;
      try {
        await agent.waitFor((s) => s.state === 'recovering' && issued(s) > 0, 'hints while PostgreSQL is down', 30_000);
        assert.ok(openFiles(agent, primary.dataDir).length > 0);
        // A re-basebackup moves the old directory away (or deletes it) and puts another in its place.
        renameSync(primary.dataDir, moved);
        const { open, ms } = await waitNoHandles(agent, moved, 10_000);
        assert.deepEqual(open, [], `handles under the old PGDATA after ${ms} ms`);
        const s = await agent.waitFor((x) => x.state === 'waiting_for_postgres', 'waiting again', 10_000);
        assert.equal(s.prefault, null);
        // pg_control gone, or (read just before the move) postmaster.pid gone: either way everything is closed.
        await agent.logged(/pg_control does not exist[^"]*; stopping the recovery prefetch and closing every file|no recovery to prefault any more; closing every file/);
        // The directory comes back: recovering again, from scratch.
        renameSync(moved, primary.dataDir);
        await agent.waitFor((x) => x.state === 'recovering' && issued(x) > 0, 'recovering again', 30_000);
        assertAlive(agent, 'after PGDATA came back');
      } finally {
        await finish(agent);
      }
    });
  });

  test(`PG ${version}: a standby with hot_standby = off is prefaulted while it never accepts connections`, { timeout: 180_000 }, async () => {
    await withCluster(version, { name: 'agent-hs-off', primaryConf: FPW_OFF }, async ({ primary, standby }) => {
      await primary.exec(`create table w (id int primary key, pad text); insert into w select g, repeat('w', 300) from generate_series(1, 40000) g`);
      await standby.waitForReplay(await primary.currentLsn());
      await standby.stop('fast');
      standby.configure({ hot_standby: 'off' });
      const server = startUnready(standby);
      const agent = await startAgent(agentArgs(standby, ['--source', 'local']));
      try {
        const first = await agent.waitFor((s) => s.state === 'recovering' && s.recovery?.progressVisible === true, 'recovering with visible progress', 30_000);
        assert.equal(first.recovery.kind, 'archive');
        // A write load on the primary: WAL arrives in the standby's pg_wal, the agent prefaults ahead of its replay.
        // Each round updates rows of its own pages: pages replay already holds in shared_buffers (created by
        // an earlier round's updates) get no hint once the agent knows shared_buffers from the server's shared memory.
        let last = issued(first);
        for (let round = 0; round < 3; round++) {
          await primary.exec(`update w set pad = repeat('${round}', 300) where id > ${round * 13334} and id <= ${(round + 1) * 13334}`);
          const s = await agent.waitFor((x) => issued(x) > last, `hints for write round ${round}`, 30_000);
          assert.equal(s.state, 'recovering', 'the server never accepts connections');
          last = issued(s);
        }
        assert.ok(last > 0);
        const metrics = await agent.scrape();
        assert.match(metrics, /^pg_prefaulter_state\{state="recovering"\} 1$/m);
        assert.match(metrics, /^pg_prefaulter_recovery_progress_visible 1$/m);
        assertAlive(agent, 'while the standby refuses connections');
      } finally {
        await finish(agent);
        await server.kill();
      }
    });
  });
}
