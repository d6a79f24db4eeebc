// An agent that is already running when its PostgreSQL crashes (a container
// restart inside the pod, Patroni restarting PostgreSQL, the postmaster's own
// crash recovery) prefaults that recovery at once: the closed SQL connection
// ends the session and wakes the recovery prefetch, rather than the next poll
// (here 30 s apart, so a test that waits less than that fails without it).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { selectedVersions, withPrimary } from './harness/index.ts';
import { startAgent } from './helpers/agent-process.ts';
import { agentArgs, assertAlive, finish } from './helpers/fault-checks.ts';
import { killHard } from './helpers/crash.ts';

const FPW_OFF = { full_page_writes: 'off', max_wal_size: '4GB', checkpoint_timeout: '1h' };
const issued = (s: Record<string, any>): number => s.prefault?.issued ?? 0;

for (const version of selectedVersions()) {
  test(`PG ${version}: a running agent prefaults its primary's crash recovery as soon as the primary dies, not at its next poll`, { timeout: 120_000 }, async () => {
    await withPrimary(version, { name: 'agent-crash-running', primaryConf: FPW_OFF }, async ({ primary }) => {
      await primary.exec(`create table r (id int primary key, pad text); insert into r select g, repeat('p', 300) from generate_series(1, 40000) g; checkpoint`);
      const agent = await startAgent(agentArgs(primary, ['--poll-interval', '30s']));
      try {
        await agent.waitFor((s) => s.state === 'primary_idle', 'primary_idle', 30_000);
        await primary.exec(`update r set pad = repeat('q', 300) where id % 5 = 0`);
        await killHard(primary);
        // Well under poll_interval: only the closed connection can have told the agent.
        const s = await agent.waitFor((x) => x.state === 'recovering' && issued(x) > 0, 'recovering with hints after the crash', 10_000);
        assert.equal(s.recovery.kind, 'crash');
        assert.equal(s.role, 'unknown');
        assertAlive(agent, 'after the crash');
      } finally {
        await finish(agent);
      }
    });
  });
}
