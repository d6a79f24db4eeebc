// The harness itself: for every selected major version, rows written on a
// real primary are read back on a real streaming standby.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { postgresRunning, selectedVersions, withCluster, withPrimary } from './harness/index.ts';
import { killHard } from './helpers/crash.ts';

for (const version of selectedVersions()) {
  test(`PG ${version}: rows written on the primary replicate to the standby`, async () => {
    await withCluster(version, { name: 'harness', tablespaces: ['ts_h'] }, async ({ primary, standby }) => {
      assert.equal(await primary.isInRecovery(), false);
      assert.equal(await standby.isInRecovery(), true);
      assert.match(String(await primary.scalar('show server_version')), new RegExp(`^${version}\\.`));
      await primary.exec(`
        create table t (id int primary key, note text) tablespace ts_h;
        insert into t select g, 'row ' || g from generate_series(1, 1000) g;`);
      const lsn = await primary.currentLsn();
      await standby.waitForReplay(lsn);
      const rows = await standby.query<{ n: string; s: string }>('select count(*)::text n, sum(id)::text s from t');
      assert.deepEqual(rows[0], { n: '1000', s: String((1000 * 1001) / 2) });
      const state = await primary.query<{ application_name: string; state: string }>('select application_name, state from pg_stat_replication');
      assert.deepEqual(state.map((r) => [r.application_name, r.state]), [['standby', 'streaming']]);
      await standby.pauseReplay();
      await primary.exec(`insert into t values (1001, 'late')`);
      // The insert has reached the standby, and replay, paused, has not applied it.
      await standby.waitForReceive(await primary.currentLsn());
      assert.equal(await standby.scalar('select count(*)::int from t'), 1000);
      await standby.resumeReplay();
      await standby.waitForReplay(await primary.currentLsn());
      assert.equal(await standby.scalar('select count(*)::int from t'), 1001);
      await standby.promote();
      assert.equal(await standby.isInRecovery(), false);
      assert.equal(await standby.timeline(), 2);
    });
  });
}

// A server killed with SIGKILL (the crash tests, the crash benchmark) leaves its dynamic shared
// memory control segment in /dev/shm; torn down, the harness removes it (22 were left after one CI run).
test('a SIGKILLed server leaves no dynamic shared memory segment behind once its cluster is torn down', async (t) => {
  const ours = (): string[] => readdirSync('/dev/shm').filter((n) => n.startsWith('PostgreSQL.'));
  if (postgresRunning()) {
    t.skip('another PostgreSQL runs on this machine: the harness leaves /dev/shm alone then');
    return;
  }
  const before = new Set(ours());
  let mine: string[] = [];
  await withPrimary(selectedVersions()[0]!, { name: 'harness-dsm' }, async ({ primary }) => {
    mine = ours().filter((n) => !before.has(n));
    assert.ok(mine.length > 0, 'a running server keeps its control segment in /dev/shm');
    await killHard(primary);
    assert.ok(mine.every((n) => existsSync(join('/dev/shm', n))), 'SIGKILL leaves it behind');
  });
  assert.deepEqual(mine.filter((n) => existsSync(join('/dev/shm', n))), [], 'removed when the cluster was torn down');
});
