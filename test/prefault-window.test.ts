// Window, budget and relation-event rules, fed with real WAL a paused standby
// has received: updates of an existing table (read), a table created ahead of
// replay (skipped: created), a table VACUUM truncated and then re-extended
// (skipped: truncated) and a table dropped ahead of replay (its fds released
// once replay passes the drop).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import postgres from 'postgres';
import { Prefaulter, checkDataDirectory, type PrefaultOptions } from '../src/prefault/index.ts';
import { parseLsn } from '../src/wal/index.ts';
import { selectedVersions, withCluster } from './harness/index.ts';
import { pendingRecords } from './helpers/pending-wal.ts';
import { until } from './helpers/until.ts';

const version = selectedVersions().at(-1)!;

/** Paths this process holds open, from /proc/self/fd. */
function openPaths(): string[] {
  const out: string[] = [];
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      out.push(readlinkSync(`/proc/self/fd/${fd}`));
    } catch {
      // closed meanwhile
    }
  }
  return out;
}

test(`PG ${version}: window, pages-ahead budget and relation events on real pending WAL`, async (t) => {
  await withCluster(version, { name: 'window', primaryConf: { autovacuum: 'off', checkpoint_timeout: '1h' } }, async ({ primary, standby }) => {
    await primary.exec(`create database dropme`);
    const dropmeOid = Number(await primary.scalar(`select oid::int from pg_database where datname = 'dropme'`));
    const dropme = postgres({ host: primary.socketDir, port: primary.port, user: 'postgres', database: 'dropme', max: 1, onnotice: () => {} });
    await dropme.unsafe(`create table x (id int, pad text) with (fillfactor = 10); insert into x select g, repeat('q', 600) from generate_series(1, 20) g;`).simple();
    await primary.exec(`
      create table big (id int, pad text) with (fillfactor = 10, autovacuum_enabled = off);
      insert into big select g, repeat('x', 600) from generate_series(1, 600) g;
      create table victim (id int, pad text) with (autovacuum_enabled = off);
      insert into victim select g, repeat('v', 200) from generate_series(1, 20000) g;
      create table doomed (id int, pad text) with (fillfactor = 10, autovacuum_enabled = off);
      insert into doomed select g, repeat('d', 600) from generate_series(1, 50) g;
      create table grow (id int, pad text) with (autovacuum_enabled = off);
      insert into grow values (0, 'seed');
      checkpoint;
      update big set pad = repeat('y', 600);
      update doomed set pad = repeat('e', 600);`);
    await dropme.unsafe(`update x set pad = repeat('r', 600)`);
    await standby.waitForReplay(await primary.currentLsn());
    await standby.exec('checkpoint');
    const doomedPath = join(standby.dataDir, await standby.scalar<string>(`select pg_relation_filepath('doomed')`));
    const victimBlocks = Number(await standby.scalar(`select (pg_relation_size('victim') / 8192)::int`));
    await standby.pauseReplay();
    const replayLsn = parseLsn(await standby.scalar<string>('select pg_last_wal_replay_lsn()::text'));

    await primary.exec(`update big set pad = repeat('z', 600)`); // 600 blocks, no images (same checkpoint cycle)
    await dropme.unsafe(`update x set pad = repeat('s', 600)`); // before CREATE DATABASE: on 13/14 it checkpoints
    await primary.exec(`update doomed set pad = repeat('f', 600)`);
    await primary.exec(`drop table doomed`);
    await primary.exec(`create table fresh as select g, repeat('n', 100) as pad from generate_series(1, 5000) g`);
    await primary.exec(`insert into fresh select g, repeat('n', 100) from generate_series(1, 2000) g`);
    await primary.exec(`delete from victim where id > 100`);
    await primary.exec(`vacuum victim`);
    await primary.exec(`insert into victim select g, repeat('w', 200) from generate_series(1, 3000) g`);
    await primary.exec(`insert into grow select g, repeat('g', 100) from generate_series(1, 3000) g`);
    await primary.exec(`create database newdb`);
    const newdb = postgres({ host: primary.socketDir, port: primary.port, user: 'postgres', database: 'newdb', max: 1, onnotice: () => {} });
    await newdb.unsafe(`create table n (g int); insert into n select generate_series(1, 3000); update n set g = g + 1 where g < 100;`).simple();
    await newdb.end();
    const newdbOid = Number(await primary.scalar(`select oid::int from pg_database where datname = 'newdb'`));
    await dropme.end();
    await primary.exec(`drop database dropme`);
    const endLsn = parseLsn(await primary.currentLsn());
    await standby.waitForReceive(await primary.currentLsn());
    const records = await pendingRecords(standby, replayLsn, endLsn);
    const events = records.flatMap((r) => r.events.map((e) => e.kind));
    for (const kind of ['smgr-create', 'smgr-truncate', 'rels-dropped', 'db-create', 'db-drop'] as const) assert.ok(events.includes(kind), `${kind} in ${[...new Set(events)]}`);
    const truncatedTo = records.flatMap((r) => r.events).find((e) => e.kind === 'smgr-truncate');
    assert.ok(truncatedTo && truncatedTo.kind === 'smgr-truncate' && truncatedTo.blocks < victimBlocks, 'vacuum truncated victim');

    const catalogVersion = Number(await standby.scalar('select catalog_version_no::int from pg_control_system()'));
    const opts = (o: Partial<PrefaultOptions>): PrefaultOptions => ({
      pgdata: standby.dataDir, blockSize: 8192, majorVersion: version, catalogVersion,
      readaheadBytes: 64 * 1024 * 1024, maxPagesAhead: 16384, ioConcurrency: 16, ...o,
    });

    await t.test('relations created, truncated or dropped ahead of replay are not read', async () => {
      const p = new Prefaulter(opts({}));
      p.setReplayLsn(replayLsn);
      for (const r of records) p.offer(r);
      await p.drain();
      const s = p.stats.skipped;
      assert.ok(s.created > 0, `created ${s.created}`);
      assert.ok(s.truncated > 0, `truncated ${s.truncated}`);
      assert.ok(s.will_init > 0, `will_init ${s.will_init}`);
      assert.equal(s.missing_file, 0, 'the created table (no file yet on the standby) was never opened');
      const newdbReads = records.flatMap((r) => r.blocks).filter((b) => b.dbOid === newdbOid && !b.applyImage && !b.willInit);
      assert.ok(newdbReads.length > 0, 'WAL names non-image blocks of the database created ahead of replay');
      assert.deepEqual(openPaths().filter((f) => f.includes(`/base/${newdbOid}/`)), [], 'none of them was opened');
      assert.equal(p.stats.readErrors, 0);
      assert.ok(p.stats.completed >= 600, `completed ${p.stats.completed}`);

      // The dropped table's fd was opened for the reads before the drop; once
      // replay passes the drop it is closed so the standby can free the space.
      assert.ok(openPaths().includes(doomedPath), 'doomed table open while its reads are ahead of replay');
      const inDropme = () => openPaths().filter((f) => f.includes(`/base/${dropmeOid}/`));
      assert.ok(inDropme().length > 0, 'a table of the database dropped ahead of replay was read');
      const openBefore = p.stats.fileHandle.open;
      // Every fork and segment of the dropped table (its free space and visibility maps are hinted for
      // heap records, planner.ts) and every file of the dropped database: exactly those close.
      const doomedFile = new RegExp(`^${doomedPath.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}(_fsm|_vm|_init)?(\\.\\d+)?$`);
      const closing = openPaths().filter((f) => doomedFile.test(f)).length + inDropme().length;
      assert.ok(closing >= 2, `fds of the dropped table and database: ${closing}`);
      p.setReplayLsn(endLsn);
      await until('the dropped relations\' fds to be closed', () => p.stats.fileHandle.open === openBefore - closing);
      assert.deepEqual(openPaths().filter((f) => doomedFile.test(f)), [], 'fds of the dropped table closed after replay passed the drop');
      assert.deepEqual(inDropme(), [], 'fds in the dropped database closed after replay passed the drop');
      assert.equal(p.stats.fileHandle.open, openBefore - closing, 'no other fd closed');
      assert.equal(p.stats.aheadPages, 0);
      await p.closeAll();
    });

    await t.test('a drop replay passed before the agent planned it still closes what earlier records opened', async () => {
      // The agent fell behind: it planned the doomed table's updates (fds opened), then replay ran
      // past the drop before its record was offered. Skipped as behind replay, the drop closed
      // nothing and the fds of the deleted files stayed open for good (CI caught a deleted _fsm).
      const doomedRel = Number(doomedPath.split('/').at(-1));
      const dropAt = records.findIndex((r) => r.events.some((e) => e.kind === 'rels-dropped' && e.rels.some((x) => x.relNumber === doomedRel)));
      assert.ok(dropAt > 0, 'the WAL has the drop of doomed');
      const doomedFile = new RegExp(`^${doomedPath.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}(_fsm|_vm|_init)?(\\.\\d+)?$`);
      const p = new Prefaulter(opts({}));
      p.setReplayLsn(replayLsn);
      for (const r of records.slice(0, dropAt)) p.offer(r);
      await p.drain();
      assert.ok(openPaths().some((f) => doomedFile.test(f)), 'doomed open for its updates');
      const openBefore = p.stats.fileHandle.open;
      const doomedOpen = openPaths().filter((f) => doomedFile.test(f)).length;
      // Replay passes the drop before its record is offered: it is behind replay, not planned.
      p.setReplayLsn(BigInt(records[dropAt]!.endLsn));
      const behind = p.stats.recordsBehind;
      p.offer(records[dropAt]!);
      assert.equal(p.stats.recordsBehind, behind + 1, 'the drop record was behind replay');
      await until('the dropped table\'s fds to be closed', () => p.stats.fileHandle.open === openBefore - doomedOpen);
      assert.deepEqual(openPaths().filter((f) => doomedFile.test(f)), [], 'no fd of the dropped table left');
      await p.closeAll();
    });

    await t.test('pages the standby has not extended to yet are beyond EOF, not errors', async () => {
      // With "recent" disabled, inserts that follow a page's initialising insert are offered for reading.
      const p = new Prefaulter(opts({ resident: { sharedBuffers: 0, pageCache: 0 }, maxPagesAhead: 1 << 20 }));
      p.setReplayLsn(replayLsn);
      for (const r of records) p.offer(r);
      await p.drain();
      assert.ok(p.stats.skipped.beyond_eof > 0, `beyond_eof ${p.stats.skipped.beyond_eof}`);
      assert.equal(p.stats.skipped.recent, 0);
      assert.equal(p.stats.readErrors, 0);
      await p.closeAll();
    });

    await t.test('the data directory check accepts the standby and names what is wrong otherwise', async () => {
      await checkDataDirectory(standby.dataDir, version);
      await assert.rejects(checkDataDirectory(join(standby.dataDir, 'nope'), version), /cannot read .*nope\/PG_VERSION \(ENOENT\): mount the follower's data directory/);
      await assert.rejects(checkDataDirectory(standby.dataDir, version - 1), /holds a PostgreSQL \d+ cluster but the follower runs/);
    });

    await t.test('at most maxPagesAhead pages ahead; wantsMore turns false and replay progress admits the rest', async () => {
      const max = 50;
      const p = new Prefaulter(opts({ maxPagesAhead: max }));
      p.setReplayLsn(replayLsn);
      let i = 0;
      while (i < records.length && p.wantsMore()) p.offer(records[i++]!);
      assert.ok(i < records.length, 'the budget stopped the feed');
      assert.equal(p.wantsMore(), false);
      assert.ok(p.stats.aheadPages >= max, `aheadPages ${p.stats.aheadPages}`);
      // A heap record's main-fork block also brings its VM page and FSM leaf (planner.ts).
      const maxBlocks = Math.max(...records.map((r) => r.blocks.length + (r.rmgr === 9 || r.rmgr === 10 ? 2 * r.blocks.filter((b) => b.fork === 0).length : 0)));
      assert.ok(p.stats.aheadPages < max + maxBlocks, `aheadPages ${p.stats.aheadPages} within one record of the budget`);
      const requested = p.stats.requested;
      // Replay reaches the last offered record: everything before it retires.
      p.setReplayLsn(BigInt(records[i - 1]!.lsn));
      assert.ok(p.stats.aheadPages < max, `retired to ${p.stats.aheadPages}`);
      assert.equal(p.wantsMore(), true);
      p.offer(records[i++]!);
      assert.ok(p.stats.requested >= requested, 'more reads after replay advanced');
      await p.closeAll();
      assert.equal(p.stats.aheadPages, 0, 'closeAll forgets the window');
    });

    await t.test('records beyond replay + readaheadBytes wait until replay moves', async () => {
      const window = 64 * 1024;
      const p = new Prefaulter(opts({ readaheadBytes: window }));
      p.setReplayLsn(replayLsn);
      let i = 0;
      while (i < records.length && p.wantsMore()) p.offer(records[i++]!);
      const last = records[i - 1]!;
      assert.ok(last.lsn >= replayLsn + BigInt(window), 'the record that stopped the feed is beyond the window');
      assert.ok(p.stats.aheadBytes < window, `aheadBytes ${p.stats.aheadBytes}`);
      const requested = p.stats.requested;
      p.setReplayLsn(BigInt(last.lsn));
      assert.equal(p.wantsMore(), true, 'the waiting record was admitted');
      assert.ok(p.stats.requested >= requested);
      assert.equal(p.stats.aheadBytes, 0);
      await p.closeAll();
    });

    await t.test('a small fd budget is respected and reads still complete', async () => {
      const wide = new Prefaulter(opts({}));
      const narrow = new Prefaulter(opts({ maxOpenFiles: 1, ioConcurrency: 4 }));
      for (const p of [wide, narrow]) {
        p.setReplayLsn(replayLsn);
        for (const r of records) p.offer(r);
        await p.drain();
      }
      assert.ok(wide.stats.fileHandle.open >= 2, `wide kept ${wide.stats.fileHandle.open} fds`);
      // An evicted fd closes asynchronously once its last read let go of it.
      await until('the narrow budget to be back to one fd', () => narrow.stats.fileHandle.open <= 1);
      assert.ok(narrow.stats.fileHandle.evictions > 0);
      assert.equal(narrow.stats.readErrors, 0, 'no fd closed under a read');
      assert.equal(narrow.stats.completed, wide.stats.completed);
      narrow.setIoConcurrency(1);
      assert.equal(narrow.stats.ioConcurrency, 1);
      await wide.closeAll();
      await narrow.closeAll();
      assert.equal(narrow.stats.fileHandle.open, 0);
    });
  });
});
