// PGDATA replaced by another copy while the agent prefaults a recovery
// (issue #15): a new base backup at the same path (the same cluster, so the
// same system identifier, but every file another), then another cluster (a
// new system identifier). The swaps are atomic (renameat2 RENAME_EXCHANGE):
// the agent never finds the path empty, so only the identity of what it reads
// tells it. It lets go of every file of the old copy, prefaults the new copy's
// recovery when there is one (a crashed copy: postmaster.pid left behind) and
// waits when there is none (a cleanly shut down cluster), and never crashes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { asServerUser, binDir, selectedVersions, withCluster } from './harness/index.ts';
import { startAgent } from './helpers/agent-process.ts';
import { agentArgs, assertAlive, assertCacheConsistent, assertNothingHeld, finish, openFiles, waitNoHandles } from './helpers/fault-checks.ts';
import { exchangeDirs, killHard } from './helpers/crash.ts';

const FPW_OFF = { full_page_writes: 'off', max_wal_size: '4GB', checkpoint_timeout: '1h' };
const issued = (s: Record<string, any>): number => s.prefault?.issued ?? 0;

for (const version of selectedVersions()) {
  test(`PG ${version}: PGDATA replaced under a recovering agent (a new base backup, then another cluster) releases every handle on the old copy`, { timeout: 120_000 }, async () => {
    await withCluster(version, { name: 'agent-replaced', primaryConf: FPW_OFF }, async ({ primary, standby }) => {
      await primary.exec(`create table r (id int primary key, pad text); insert into r select g, repeat('r', 300) from generate_series(1, 30000) g`);
      await standby.waitForReplay(await primary.currentLsn());
      await standby.exec('checkpoint');
      await primary.exec(`update r set pad = repeat('s', 300) where id % 5 = 0`);
      await standby.waitForReplay(await primary.currentLsn());
      await killHard(standby);
      const base = dirname(standby.dataDir);
      const agent = await startAgent(agentArgs(standby));
      try {
        const first = await agent.waitFor((s) => s.state === 'recovering' && issued(s) > 0, 'hints for the standby', 30_000);
        assert.equal(first.recovery.kind, 'archive');
        assert.ok(openFiles(agent, standby.dataDir).length > 0);

        // 1. A new base backup of the same cluster (the primary's files, crashed too: its
        // postmaster.pid stays behind) takes the standby's place: same system identifier,
        // a later redo point, other WAL to replay.
        await primary.exec('checkpoint');
        await primary.exec(`update r set pad = repeat('u', 300) where id % 5 = 1`);
        await killHard(primary);
        const copy = join(base, 'new-base-backup');
        execFileSync('cp', ['-a', primary.dataDir, copy]);
        let logFrom = agent.output().length;
        exchangeDirs(copy, standby.dataDir); // `copy` now names the old standby's files
        const released = await waitNoHandles(agent, copy, 10_000);
        assert.deepEqual(released.open, [], `handles on the old copy's files after ${released.ms} ms`);
        await agent.logged(/PGDATA was replaced \(global\/pg_control is another file/, undefined, { pick: (o) => o.slice(logFrom) });
        // It goes on with the copy at the same path: its own crash recovery, from its own redo point.
        const second = await agent.waitFor((s) => s.state === 'recovering' && s.recovery?.kind === 'crash' && issued(s) > 0, 'hints for the new copy', 30_000);
        assert.notEqual(second.recovery.redoLsn, first.recovery.redoLsn);
        assert.ok(openFiles(agent, standby.dataDir).length > 0, 'files of the new copy open');
        await assertCacheConsistent(agent, standby.dataDir, 'after the first swap');

        // 2. Another cluster (initdb: a new system identifier), cleanly shut down: nothing to replay.
        const other = join(base, 'other-cluster');
        execFileSync(join(binDir(version), 'initdb'), ['-D', other, '-U', 'postgres', '--auth=trust', '--no-sync'], { stdio: 'ignore', ...asServerUser(), cwd: base });
        logFrom = agent.output().length;
        exchangeDirs(other, standby.dataDir); // `other` now names the primary's copy
        const again = await waitNoHandles(agent, other, 10_000);
        assert.deepEqual(again.open, [], `handles on the replaced copy's files after ${again.ms} ms`);
        // The identity check, or (a poll that read pg_control before the swap and postmaster.pid
        // after it: PostgreSQL not running) the stop for nothing to recover: every file closed either way.
        await agent.logged(/PGDATA was replaced \(another system identifier\)|no recovery to prefault any more; closing every file/, undefined, { pick: (o) => o.slice(logFrom) });
        const idle = await agent.waitFor((s) => s.state === 'waiting_for_postgres', 'waiting for PostgreSQL on the new cluster', 10_000);
        assert.equal(idle.prefault, null);
        await assertNothingHeld(agent, standby.dataDir, 'a cluster that has nothing to replay');
        assertAlive(agent, 'after both swaps');
      } finally {
        await finish(agent);
      }
    });
  });
}
