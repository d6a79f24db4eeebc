// The hand-over from `recovering` to `streaming` does not prefault again what
// is already done (issue #15), shown page by page on a real standby: every
// POSIX_FADV_WILLNEED the agent gives is recorded from outside (strace), the
// standby's replay is held back by recovery_min_apply_delay so the stream
// phase decodes the very WAL the recovery phase hinted, and no page of that
// range hinted while recovering is hinted again after the hand-over.
//
// What the design promises (src/prefault/planner.ts, recent.ts): a hinted page
// is skipped while fewer than reachByHint distinct pages came after its last
// reference, and the prefaulter (with that memory) is handed over, not made
// anew. Two things allow a page to be hinted again, by design: it left that
// reach, or the bounded 2-way table dropped its entry for a third page of the
// same slot pair. The test checks that the first cannot apply here and
// excuses only pages the real table (same size, same references) drops.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, realpathSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { selectedVersions, withCluster } from './harness/index.ts';
import { BIN, startAgent } from './helpers/agent-process.ts';
import { agentArgs, lsn } from './helpers/fault-checks.ts';
import { hintedPages, killHard, straceHints, wrappedChild } from './helpers/crash.ts';
import { startUnready } from './helpers/unready-server.ts';
import { RecentBlocks } from '../src/prefault/recent.ts';

const FPW_OFF = { full_page_writes: 'off', max_wal_size: '4GB', checkpoint_timeout: '1h' };
const FORK_SUFFIX: Record<string, string> = { main: '', fsm: '_fsm', vm: '_vm', init: '_init' };

interface BlockRef {
  spc: number;
  db: number;
  rel: number;
  fork: string;
  blk: number;
  apply: boolean;
  willInit: boolean;
}

/** Block references of the standby's WAL in [start, end), in order, from the project's own decoder (the CLI). */
function blockRefs(pgWal: string, start: string, end: string): BlockRef[] {
  const out = execFileSync(process.execPath, [BIN, 'decode', '--format', 'ndjson', '--start', start, '--end', end, pgWal], { encoding: 'utf8', maxBuffer: 256 << 20 });
  return out.split('\n').filter(Boolean).flatMap((l) => (JSON.parse(l) as { blocks: BlockRef[] }).blocks);
}

/** The key hintedPages() gives the same page: the relation file's real path and the block. */
function keyOf(pgdata: string, b: BlockRef): string {
  const dir = b.spc === 1664 ? 'global' : b.spc === 1663 ? `base/${b.db}` : `pg_tblspc/${b.spc}/*/${b.db}`;
  return `${pgdata}/${dir}/${b.rel}${FORK_SUFFIX[b.fork] ?? `_${b.fork}`}#${b.blk}`;
}

/** The JSON log lines whose msg matches, in order (at least one). */
function logLines(output: string, msg: RegExp): Record<string, any>[] {
  const found: Record<string, any>[] = [];
  for (const l of output.split('\n')) {
    try {
      const o = JSON.parse(l) as Record<string, any>;
      if (typeof o.msg === 'string' && msg.test(o.msg)) found.push(o);
    } catch {
      // not JSON
    }
  }
  assert.ok(found.length > 0, `no log line matches ${msg}\n${output.slice(-3000)}`);
  return found;
}

/** The WAL page an LSN is on ("X/Y"): the decode CLI starts at a record or a page start. */
function pageStart(at: string): string {
  const v = lsn(at) & ~8191n;
  return `${(v >> 32n).toString(16).toUpperCase()}/${(v & 0xffffffffn).toString(16).toUpperCase()}`;
}

for (const version of selectedVersions()) {
  test(`PG ${version}: after the hand-over from recovering to streaming, no page hinted while recovering is hinted again for the same WAL`, { timeout: 120_000 }, async () => {
    await withCluster(version, { name: 'agent-handover', primaryConf: FPW_OFF }, async ({ primary, standby }) => {
      await primary.exec(`create table h (id int primary key, pad text) with (fillfactor = 50); insert into h select g, repeat('h', 300) from generate_series(1, 4000) g; checkpoint`);
      await standby.waitForReplay(await primary.currentLsn());
      // A clean restart: a restartpoint at the primary's checkpoint (replay starts there again
      // after the kill), and the delay in force from the start. The delay holds replay at the
      // first commit once the standby is consistent, so it accepts connections and stays behind.
      await standby.stop('fast');
      standby.configure({ recovery_min_apply_delay: '1h' });
      await standby.start();
      for (let k = 0; k < 10; k++) await primary.exec(`update h set pad = repeat('${k}', 300) where id % 10 = ${k}`);
      const mark = await primary.scalar<string>('select pg_current_wal_insert_lsn()::text');
      await primary.exec('create table after_burst ()'); // a record past mark: decoding reached mark once it is decoded
      await standby.waitForReceive(await primary.currentLsn());
      assert.ok(lsn(await standby.scalar<string>('select pg_last_wal_replay_lsn()::text')) < lsn(mark), 'the delay holds replay back');
      await killHard(standby);

      const pgdata = realpathSync(standby.dataDir);
      const trace = join(dirname(pgdata), 'hints.strace');
      const agent = await startAgent(agentArgs(standby, ['--io-method', 'willneed']), {}, { wrap: straceHints(trace) });
      let handedAt = '';
      let killedAt = Infinity;
      try {
        const recovered = await agent.waitFor((s) => s.state === 'recovering' && lsn(s.decodedLsn) >= lsn(mark), 'the recovery phase decoded the burst', 30_000);
        const redo = recovered.recovery.redoLsn as string;
        const server = startUnready(standby);
        try {
          const handed = await agent.waitFor((s) => s.state === 'streaming', 'the hand-over to streaming', 60_000);
          handedAt = handed.replayLsn as string;
          assert.ok(lsn(handedAt) < lsn(mark), `replay at ${handedAt} when the stream phase starts, before ${mark}: the two phases cover the same WAL`);
          // New WAL after the hand-over: once the stream phase decoded it, it went through all of [replay, mark).
          const mark2 = await primary.scalar<string>('select pg_current_wal_insert_lsn()::text');
          await primary.exec('create table after_handover ()');
          await agent.waitFor((s) => s.state === 'streaming' && lsn(s.decodedLsn) >= lsn(mark2), 'the stream phase decoded past the recovery phase', 30_000);
        } finally {
          killedAt = Date.now(); // after this the agent may prefault the killed standby's next recovery
          await server.kill();
        }

        // Agent gone (strace writes its last lines as the traced process exits).
        process.kill(wrappedChild(agent.proc.pid!), 'SIGTERM');
        assert.equal(await agent.exited, 0, agent.output().slice(-2000));
        const handOverTime = Date.parse(logLines(agent.output(), /the SQL path takes over the recovery prefetch/)[0]!.time);
        const hints = hintedPages(readFileSync(trace, 'utf8'), 8192);
        const whileRecovering = new Set(hints.filter((h) => h.time < handOverTime).map((h) => h.key));
        const afterHandOver = new Set(hints.filter((h) => h.time >= handOverTime && h.time < killedAt).map((h) => h.key));
        assert.ok(whileRecovering.size > 0, 'pages hinted while recovering');

        // The WAL both phases decoded: [replay at the hand-over, mark). Pages replay reads there from disk.
        const overlap = blockRefs(join(pgdata, 'pg_wal'), pageStart(handedAt), mark).filter((b) => !b.apply && !b.willInit);
        const overlapPages = new Set(overlap.map((b) => keyOf(pgdata, b)));
        const hintedFirst = [...overlapPages].filter((k) => whileRecovering.has(k));
        assert.ok(hintedFirst.length >= 100, `${hintedFirst.length} pages of the shared WAL range were hinted while recovering (expected hundreds)`);

        // Preconditions of "not again": every page the recovery phase met is within reach: of
        // our hints (the page cache), and of replay's own writes (half of shared_buffers, which
        // the kept prefaulter learns at the hand-over) for a page first met as initialised.
        // The plans up to the hand-over: the recovery's first, the session's last (once the server is
        // killed at the end, the agent may start a new recovery prefetch with a plan of its own).
        const output = agent.output();
        const plans = logLines(output.slice(0, output.indexOf('the SQL path takes over the recovery prefetch')), /readahead window sized/);
        const sized = plans[0]!;
        const reachByHint = Math.floor(sized.resident.pageCache / 2);
        const reach = Math.min(reachByHint, Math.floor(plans.at(-1)!.resident.sharedBuffers / 2));
        const all = blockRefs(join(pgdata, 'pg_wal'), pageStart(redo), mark);
        const distinct = new Set(all.map((b) => keyOf(pgdata, b)));
        assert.ok(distinct.size < reach, `${distinct.size} distinct pages met, reach ${reach}: no page left the recent window; plans: ${JSON.stringify(plans.map((l) => ({ time: l.time, resident: l.resident })))}; the agent's log:\n${agent.output().slice(-3000)}`);
        // ... and the one the real table (same slot count, same references, in WAL order) may drop.
        const slots = Math.min(1 << 18, Math.max(4096, sized.maxPagesAhead * 4, sized.resident.sharedBuffers, sized.resident.pageCache));
        const table = new RecentBlocks(slots, Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER);
        const forks = ['main', 'fsm', 'vm', 'init'];
        all.forEach((b, i) => table.add(b.spc, b.db, b.rel, forks.indexOf(b.fork), b.blk, i, 1));
        const dropped = new Set(all.filter((b) => !table.has(b.spc, b.db, b.rel, forks.indexOf(b.fork), b.blk, all.length)).map((b) => keyOf(pgdata, b)));

        const again = hintedFirst.filter((k) => afterHandOver.has(k) && !dropped.has(k));
        // On failure, what the agent went through (a session lost after the hand-over closes and forgets everything, by design).
        const story = () => agent.output().split('\n').filter((l) => /"msg":"(state |session|recovery|PostgreSQL|no recovery|PGDATA)/.test(l)).join('\n');
        assert.deepEqual(again, [], `${again.length} of ${hintedFirst.length} pages hinted while recovering were hinted again after the hand-over\n${story()}`);
        process.stdout.write(
          `# PG ${version}: ${whileRecovering.size} pages hinted while recovering, ${afterHandOver.size} after the hand-over; ` +
            `shared range ${handedAt}..${mark}: ${overlapPages.size} pages read from disk, ${hintedFirst.length} hinted while recovering, ` +
            `${hintedFirst.filter((k) => afterHandOver.has(k)).length} again (${dropped.size} pages the table dropped); ${distinct.size} distinct pages, reach ${reach}\n`,
        );
      } finally {
        if (agent.proc.exitCode === null) {
          process.kill(wrappedChild(agent.proc.pid!), 'SIGTERM');
          await agent.exited;
        }
      }
    });
  });
}
