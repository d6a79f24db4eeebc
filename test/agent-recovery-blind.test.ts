// The agent where PostgreSQL's processes are not in view (issue #15): a
// Kubernetes pod without shareProcessNamespace, made here with another PID
// namespace (unshare). postmaster.pid names a PID that is nobody there, so
// replay progress is unknown: the agent prefaults one bounded window from the
// redo point and says so (/status, pg_prefaulter_recovery_progress_visible,
// once in its log), whether PostgreSQL is still down or starts meanwhile and
// runs its crash recovery unseen; when it accepts connections the SQL path
// takes over (a primary: primary_idle, every file closed).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { selectedVersions, sleep, withPrimary, type PgServer } from './harness/index.ts';
import { startAgent, type AgentProcess } from './helpers/agent-process.ts';
import { agentArgs, openFiles, waitNoHandles } from './helpers/fault-checks.ts';
import { killHard, wrappedChild } from './helpers/crash.ts';
import { startUnready } from './helpers/unready-server.ts';

const FPW_OFF = { full_page_writes: 'off', max_wal_size: '4GB', checkpoint_timeout: '1h' };
const MAX_PAGES_AHEAD = 200;
const issued = (s: Record<string, any>): number => s.prefault?.issued ?? 0;

/** The agent in a PID namespace of its own; `agent` below is the unshare wrapper, `pid` the agent itself. */
async function startBlind(server: PgServer | string[]): Promise<{ agent: AgentProcess; pid: number; stop: () => Promise<void> }> {
  const args = Array.isArray(server) ? server : agentArgs(server, ['--max-pages-ahead', String(MAX_PAGES_AHEAD)]);
  const agent = await startAgent(args, {}, {
    wrap: ['unshare', '--pid', '--fork', '--mount-proc', '--kill-child=SIGTERM'],
  });
  let pid = 0;
  for (let i = 0; i < 200 && pid === 0; i++) {
    try {
      pid = wrappedChild(agent.proc.pid!);
    } catch {
      await sleep(10); // unshare has not forked yet
    }
  }
  assert.ok(pid > 0, 'the agent runs under unshare');
  return {
    agent,
    pid,
    // unshare does not pass SIGTERM on: signal the agent (PID 1 in the namespace, which
    // takes only the signals it has a handler for: SIGTERM is one).
    async stop() {
      if (agent.proc.exitCode !== null) return;
      const t0 = Date.now();
      process.kill(pid, 'SIGTERM');
      const code = await agent.exited;
      assert.equal(code, 0, agent.output().slice(-2000));
      assert.ok(Date.now() - t0 < 2000, `stop took ${Date.now() - t0} ms`);
    },
  };
}

/** A crashed primary with WAL to replay since its last checkpoint. */
async function crashWithBurst(primary: PgServer, rows: number): Promise<void> {
  await primary.exec(`create table c (id int primary key, pad text); insert into c select g, repeat('p', 300) from generate_series(1, ${rows}) g; checkpoint`);
  await primary.exec(`update c set pad = 'b' where id % 5 = 0`);
  await killHard(primary);
}

// As PID 1 of its namespace the agent gets only the signals it has a handler for: the
// handler used to come with the HTTP endpoint, ~1 s after the start (more under load),
// and a stop asked for before was dropped (a test stopping it early hung on its exit).
// SIGTERM every millisecond from the moment the process exists: those that come before
// node runs any code are dropped (nothing can take them); the first one after must stop
// it, long before its endpoint starts.
test('a SIGTERM while the agent starts up stops it, also as PID 1 of its PID namespace (a container without an init)', { timeout: 60_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'pg-prefaulter-blind-stop-'));
  try {
    const { agent, pid } = await startBlind(['-D', join(dir, 'pgdata'), '-H', dir, '-p', '1', '--log-level', 'info']);
    const t0 = Date.now();
    let sent = 0;
    while (agent.proc.exitCode === null && Date.now() - t0 < 30_000) {
      try {
        process.kill(pid, 'SIGTERM');
        sent++;
      } catch {
        break; // gone: it took one
      }
      await sleep(1);
    }
    const code = await agent.exited;
    t.diagnostic(`exited ${Date.now() - t0} ms after the first SIGTERM (${sent} sent)`);
    assert.equal(code, 0, agent.output().slice(-2000));
    assert.doesNotMatch(agent.output(), /pg-prefaulter started/, 'a stop during start-up is taken at once, not once the endpoint is up');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

const warnedLines = (agent: AgentProcess) => agent.output().split('\n').filter((l) => l.includes('replay progress is not visible'));

for (const version of selectedVersions()) {
  test(`PG ${version}: without PostgreSQL's processes in view, a bounded window from the redo point, and it says so`, { timeout: 120_000 }, async () => {
    await withPrimary(version, { name: 'agent-blind', primaryConf: FPW_OFF }, async ({ primary }) => {
      await crashWithBurst(primary, 30000);
      const { agent, stop } = await startBlind(primary);
      try {
        const s = await agent.waitFor((x) => x.state === 'recovering' && issued(x) > 0, 'hints without process visibility', 30_000);
        assert.equal(s.recovery.progressVisible, false);
        assert.match(s.recovery.notVisibleReason, /shareProcessNamespace: true/);
        assert.equal(s.recovery.replayLsn, s.recovery.redoLsn, 'replay is taken to be at the redo point');
        assert.match(await agent.scrape(), /^pg_prefaulter_recovery_progress_visible 0$/m);
        // Bounded: max_pages_ahead pages from the redo point, and no more while nothing moves
        // (the warning comes 2 s after the start: by then many polls found nothing new).
        for (let i = 0; i < 100 && warnedLines(agent).length === 0; i++) await sleep(100);
        const later = await agent.status();
        assert.ok(issued(later) <= MAX_PAGES_AHEAD, `issued ${issued(later)} > max_pages_ahead`);
        assert.equal(later.recovery.replayLsn, later.recovery.redoLsn);
        await sleep(500);
        assert.equal(warnedLines(agent).length, 1, 'said once in the log');
      } finally {
        await stop();
      }
    });
  });

  test(`PG ${version}: PostgreSQL starts and recovers out of view: the window stays bounded, then the SQL path takes over`, { timeout: 120_000 }, async () => {
    await withPrimary(version, { name: 'agent-blind-start', primaryConf: FPW_OFF }, async ({ primary }) => {
      await crashWithBurst(primary, 30000);
      const { agent, pid, stop } = await startBlind(primary);
      try {
        await agent.waitFor((x) => x.state === 'recovering' && issued(x) > 0, 'hints before PostgreSQL starts', 30_000);
        assert.ok(openFiles({ proc: { pid } } as AgentProcess, primary.dataDir).length > 0, 'relation files open for the hints');
        const server = startUnready(primary);
        try {
          // The new postmaster rewrites postmaster.pid with a PID the agent cannot see either:
          // still no progress, still the one window from the redo point, until SQL answers.
          const after = await agent.waitFor((x) => x.state === 'primary_idle', 'the hand-over to primary_idle', 60_000);
          assert.equal(after.role, 'primary');
          assert.equal(after.recovery.progressVisible, false);
          assert.ok(after.recovery.prefaultsIssued > 0 && after.recovery.prefaultsIssued <= MAX_PAGES_AHEAD, `${after.recovery.prefaultsIssued} pages hinted while recovering, at most ${MAX_PAGES_AHEAD}; the agent's log:\n${agent.output().slice(-4000)}`);
          const { open, ms } = await waitNoHandles({ proc: { pid } } as AgentProcess, primary.dataDir, 5000);
          assert.deepEqual(open, [], `a primary: every file closed (${ms} ms)`);
          assert.equal(warnedLines(agent).length <= 1, true, 'said at most once in the log');
          assert.equal(agent.proc.exitCode, null, agent.output().slice(-3000));
        } finally {
          await server.kill();
        }
      } finally {
        await stop();
      }
    });
  });
}
