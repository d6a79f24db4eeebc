// Moments when PGDATA looks wrong while PostgreSQL starts, which a recovering
// agent must ride out without dropping its pipeline (its prefaulter, the pages
// it hinted): a postmaster that starts over a stale postmaster.pid (a crash
// left it) unlinks the file and writes a new one, and a poll in between finds
// none, which otherwise means PostgreSQL is not running (and then it must
// stop); on ext4 a read of pg_control racing PostgreSQL's rewrite of it can
// be torn (the end of a crash recovery rewrites it several times).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, renameSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { selectedVersions, sleep, withPrimary, type PgServer } from './harness/index.ts';
import { startAgent } from './helpers/agent-process.ts';
import { agentArgs, finish, waitNoHandles } from './helpers/fault-checks.ts';
import type { AgentProcess } from './helpers/agent-process.ts';
import { killHard } from './helpers/crash.ts';
import { readRecoveryProgress } from '../src/follower/recovery-progress.ts';
import { recoveryWanted } from '../src/agent/recovery-checks.ts';

const FPW_OFF = { full_page_writes: 'off', max_wal_size: '4GB', checkpoint_timeout: '1h' };
const STOPPED = /no recovery to prefault any more; closing every file/;
const version = selectedVersions().at(-1)!;

/** A crashed primary with WAL to replay, and an agent recovering it (hints out, PostgreSQL down). */
async function recovering(primary: PgServer): Promise<{ agent: AgentProcess; before: Record<string, any> }> {
  await primary.exec(`create table c (id int primary key, pad text); insert into c select g, repeat('p', 300) from generate_series(1, 20000) g; checkpoint`);
  await primary.exec(`update c set pad = 'q' where id % 5 = 0`);
  await killHard(primary);
  const agent = await startAgent(agentArgs(primary, ['--poll-interval', '5ms']));
  const before = await agent.waitFor((s) => s.state === 'recovering' && (s.prefault?.issued ?? 0) > 0, 'hints while PostgreSQL is down', 30_000);
  return { agent, before };
}

test(`PG ${version}: a torn pg_control (read while PostgreSQL rewrites it) keeps the recovery prefetch`, { timeout: 120_000 }, async () => {
  await withPrimary(version, { name: 'agent-torn', primaryConf: FPW_OFF }, async ({ primary }) => {
    const { agent, before } = await recovering(primary);
    try {
      const control = join(primary.dataDir, 'global', 'pg_control');
      const good = readFileSync(control);
      const torn = Buffer.from(good);
      torn[40] ^= 0x01; // the CRC no longer matches, as in a read that saw half of a rewrite
      // In place, as PostgreSQL writes it (no truncation: a reader never sees it short).
      const rewrite = (bytes: Buffer) => {
        const fd = openSync(control, 'r+');
        try {
          writeSync(fd, bytes, 0, bytes.length, 0);
        } finally {
          closeSync(fd);
        }
      };
      rewrite(torn);
      try {
        await sleep(500); // ~100 polls, each read and retried
      } finally {
        rewrite(good);
      }
      await sleep(100);
      const after = await agent.status();
      assert.doesNotMatch(agent.output(), /stopping the recovery prefetch/, 'the pipeline stopped for a torn pg_control');
      assert.equal(after.state, 'recovering');
      assert.ok(after.prefault.issued >= before.prefault.issued, `the same prefaulter: ${after.prefault.issued} issued, ${before.prefault.issued} before`);
    } finally {
      await finish(agent);
    }
  });
});

test(`PG ${version}: postmaster.pid missing for a moment (a postmaster replacing a stale one) keeps the recovery prefetch; gone for good, it stops`, { timeout: 120_000 }, async () => {
  await withPrimary(version, { name: 'agent-pidfile', primaryConf: FPW_OFF }, async ({ primary }) => {
    const { agent, before } = await recovering(primary);
    try {
      const pidFile = join(primary.dataDir, 'postmaster.pid');
      const aside = `${pidFile}.aside`;
      // Gaps of 1 ms (held without yielding: an await could stretch them under load), 100 ms
      // apart, for 4 s: polls every 5 ms land in some (the old code stopped at the first), and
      // the agent stops only when every look for 200 ms found none.
      for (const t0 = Date.now(); Date.now() - t0 < 4000; ) {
        renameSync(pidFile, aside);
        for (const g = performance.now(); performance.now() - g < 1; );
        renameSync(aside, pidFile);
        await sleep(100);
      }
      const during = await agent.status();
      await sleep(100); // pino writes stdout asynchronously: a stop's line would land by now
      assert.doesNotMatch(agent.output(), STOPPED, 'the pipeline stopped for a moment without postmaster.pid');
      assert.equal(during.state, 'recovering');
      assert.ok((during.prefault?.issued ?? -1) >= before.prefault.issued, `the same prefaulter: ${during.prefault?.issued} issued, ${before.prefault.issued} before`);

      renameSync(pidFile, aside); // PostgreSQL stopped: it removes the file
      await agent.waitFor((s) => s.state !== 'recovering', 'recovery prefetch stopped', 10_000);
      await agent.logged(STOPPED);
      const { open, ms } = await waitNoHandles(agent, primary.dataDir, 2000);
      assert.deepEqual(open, [], `every file closed (${ms} ms)`);
    } finally {
      await finish(agent);
    }
  });
});

// A postmaster starting after a crash writes postmaster.pid, then its status line ("starting")
// a moment later, and forks the startup process after that; pg_control still says "in
// production" (the crash left it). In that moment the recovery is still coming: a running
// prefetch must not stop (it did, and started over with a new prefaulter when replay began).
test(`PG ${version}: a postmaster that has not written its status line yet, after a crash, is a recovery to come`, { timeout: 60_000 }, async () => {
  await withPrimary(version, { name: 'agent-pm-starting', primaryConf: FPW_OFF }, async ({ primary }) => {
    await primary.exec('create table c (id int); insert into c values (1)');
    await killHard(primary);
    const proc = mkdtempSync(join(tmpdir(), 'pg-prefaulter-proc-'));
    try {
      // A live postmaster in view (a /proc of our own: PID 4242, "postgres", no children yet).
      mkdirSync(join(proc, '4242', 'task', '4242'), { recursive: true });
      writeFileSync(join(proc, '4242', 'comm'), 'postgres\n');
      writeFileSync(join(proc, '4242', 'task', '4242', 'children'), '');
      const pidFile = join(primary.dataDir, 'postmaster.pid');
      const lines = readFileSync(pidFile, 'utf8').split('\n');
      const write = (status: string | null) => writeFileSync(pidFile, ['4242', ...lines.slice(1, 7), ...(status === null ? [] : [status.padEnd(8)]), ''].join('\n'));

      write(null);
      const early = await readRecoveryProgress(primary.dataDir, { procDir: proc });
      assert.equal(early.control.state, 'in production');
      assert.equal(early.postmaster?.status, null);
      assert.equal(early.postmasterAlive, true);
      assert.equal(early.recovery, 'crash');
      assert.equal(recoveryWanted(early), true, 'no status line yet: start-up after a crash, recovery to come');

      write('starting');
      assert.equal(recoveryWanted(await readRecoveryProgress(primary.dataDir, { procDir: proc })), true);
      write('ready');
      assert.equal(recoveryWanted(await readRecoveryProgress(primary.dataDir, { procDir: proc })), false, 'a running primary: nothing to recover');
    } finally {
      rmSync(proc, { recursive: true, force: true });
    }
  });
});
