// The prefaulter against a real standby: WAL the standby has received but
// not replayed is decoded from its pg_wal and fed in; the blocks it names
// must end up in the OS page cache, and nothing else may.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Prefaulter, resolveIoMethod } from '../src/prefault/index.ts';
import { parseLsn } from '../src/wal/index.ts';
import { selectedVersions, withCluster } from './harness/index.ts';
import { pendingRecords } from './helpers/pending-wal.ts';

const version = selectedVersions().at(-1)!;
const BLOCK = 8192;

// Page cache control and inspection with perl (perl-base is essential on
// Debian; syscall numbers are x86_64's, like the embedded PostgreSQL builds):
// fsync + posix_fadvise(DONTNEED) to evict, mmap + mincore to see residency.
const PAGECACHE_PL = `
use strict;
my ($cmd, $path, $page) = @ARGV;
open(my $fh, '<', $path) or die "open $path: $!\\n";
my $fd = fileno($fh);
if ($cmd eq 'evict') {
  syscall(74, $fd) == 0 or die "fsync $path: $!\\n";
  syscall(221, $fd, 0, 0, 4) == 0 or die "posix_fadvise $path: $!\\n";
} else {
  my $size = -s $fh;
  my $n = int(($size + $page - 1) / $page);
  my $addr = syscall(9, 0, $size, 1, 1, $fd, 0);
  die "mmap $path: $!\\n" if $addr == -1;
  my $vec = "\\0" x $n;
  syscall(27, $addr, $size, $vec) == 0 or die "mincore $path: $!\\n";
  syscall(11, $addr, $size);
  print join('', map { ord($_) & 1 } split(//, $vec));
}
`;
const PAGE_SIZE = Number(execFileSync('getconf', ['PAGESIZE'], { encoding: 'utf8' }).trim());

function evict(path: string): void {
  execFileSync('perl', ['-e', PAGECACHE_PL, 'evict', path]);
}

/** Per 8 KiB block: true if every OS page of it is resident. */
function residentBlocks(path: string): boolean[] {
  const bits = execFileSync('perl', ['-e', PAGECACHE_PL, 'resident', path, String(PAGE_SIZE)], { encoding: 'utf8' });
  const perBlock = BLOCK / PAGE_SIZE;
  const out: boolean[] = [];
  for (let b = 0; b * perBlock < bits.length; b++) out.push(!bits.slice(b * perBlock, (b + 1) * perBlock).includes('0'));
  return out;
}

/** Resident bytes of a file as util-linux fincore reports them (a cross-check of mincore above). */
function fincoreBytes(path: string): number {
  return Number(execFileSync('fincore', ['--bytes', '--noheadings', '--raw', '--output', 'RES', path], { encoding: 'utf8' }).trim());
}

function fdCount(): number {
  return readdirSync('/proc/self/fd').length;
}

test(`PG ${version}: prefaulting real pending WAL fills the page cache with exactly the blocks replay will read`, async (t) => {
  await withCluster(version, { name: 'prefault', primaryConf: { autovacuum: 'off', checkpoint_timeout: '1h', full_page_writes: 'on' } }, async ({ primary, standby }) => {
    // One row per page: fillfactor 10 leaves room for HOT updates in place.
    await primary.exec(`
      create table t (id int, pad text) with (fillfactor = 10, autovacuum_enabled = off);
      insert into t select g, repeat('x', 600) from generate_series(0, 1199) g;`);
    const blockOf = new Map<number, number>();
    for (const r of await primary.query<{ id: number; blk: number }>(`select id, (ctid::text::point)[0]::int as blk from t`)) blockOf.set(r.id, r.blk);
    assert.equal(new Set(blockOf.values()).size, 1200, 'one row per block');
    const idAt = (blk: number) => [...blockOf].find(([, b]) => b === blk)![0];
    const reread = [100, 300, 500, 700, 900]; // touched before the pause too: no image in the pending WAL
    const imaged = [200, 400, 600, 800, 1000]; // first touch after the checkpoint: full-page image
    const untouched = [50, 150, 250, 350, 450, 550, 650, 750, 850, 950, 1050, 1150];
    const ids = (blocks: number[]) => blocks.map(idAt).join(',');

    await primary.exec(`checkpoint; update t set pad = repeat('y', 600) where id in (${ids(reread)});`);
    await standby.waitForReplay(await primary.currentLsn());
    await standby.exec('checkpoint'); // restartpoint: the standby's dirty buffers reach the file
    await standby.pauseReplay();
    const replayLsn = parseLsn(await standby.scalar<string>('select pg_last_wal_replay_lsn()::text'));

    await primary.exec(`
      update t set pad = repeat('z', 600) where id in (${ids(reread)});
      update t set pad = repeat('z', 600) where id in (${ids(imaged)});`);
    const endLsn = await primary.currentLsn();
    await standby.waitForReceive(endLsn);

    const relPath = join(standby.dataDir, await standby.scalar<string>(`select pg_relation_filepath('t')`));
    const relNumber = Number(await standby.scalar(`select pg_relation_filenode('t')::int`));
    const catalogVersion = Number(await standby.scalar('select catalog_version_no::int from pg_control_system()'));
    const records = await pendingRecords(standby, replayLsn, parseLsn(endLsn));
    const refs = records.flatMap((r) => r.blocks).filter((b) => b.relNumber === relNumber && b.fork === 0);
    assert.deepEqual([...new Set(refs.filter((b) => !b.applyImage).map((b) => b.block))].sort((a, b) => a - b), reread, 'decoded WAL names the re-read blocks without images');
    assert.deepEqual([...new Set(refs.filter((b) => b.applyImage).map((b) => b.block))].sort((a, b) => a - b), imaged, 'and the first-touch blocks with images');

    evict(relPath);
    const before = residentBlocks(relPath);
    assert.equal(before.filter(Boolean).length, 0, 'table evicted from the page cache');
    assert.equal(fincoreBytes(relPath), 0);
    const mtimeBefore = statSync(relPath).mtimeMs;
    const fdsBefore = fdCount();

    const latencies: number[] = [];
    const p = new Prefaulter({
      pgdata: standby.dataDir,
      blockSize: BLOCK,
      majorVersion: version,
      catalogVersion,
      readaheadBytes: 32 * 1024 * 1024,
      maxPagesAhead: 16384,
      ioConcurrency: 8,
      observeReadSeconds: (s) => latencies.push(s),
    });
    p.setReplayLsn(replayLsn);
    for (const r of records) {
      p.offer(r);
      assert.equal(p.wantsMore(), true, 'everything fits in a 32 MiB window');
    }
    await p.drain();

    await t.test('the blocks replay will read are resident, images and untouched blocks are not', () => {
      const after = residentBlocks(relPath);
      assert.equal(fincoreBytes(relPath), after.filter(Boolean).length * BLOCK, 'fincore agrees: only whole re-read blocks are resident');
      for (const b of reread) assert.equal(after[b], true, `block ${b} (re-read) resident`);
      for (const b of imaged) assert.equal(after[b], false, `block ${b} (full-page image) not read`);
      for (const b of untouched) assert.equal(after[b], false, `block ${b} (not in WAL) not resident`);
      assert.deepEqual(after.flatMap((r, b) => (r ? [b] : [])), reread, 'exactly the re-read blocks, nothing else');
      assert.ok(p.stats.skipped.image >= imaged.length, `image skips ${p.stats.skipped.image}`);
      assert.ok(p.stats.completed >= reread.length);
      assert.equal(p.stats.readErrors, 0);
      assert.equal(latencies.length, p.stats.completed, 'one latency sample per pread');
      assert.ok(latencies.every((s) => s >= 0 && s < 60));
      assert.equal(p.stats.inFlight, 0);
      assert.equal(p.stats.queued, 0);
      assert.ok(p.stats.aheadPages >= reread.length, `aheadPages ${p.stats.aheadPages}`);
      assert.ok(p.stats.aheadBytes > 0 && p.stats.aheadBytes < Number(parseLsn(endLsn) - replayLsn));
    });

    await t.test('the same blocks offered again are skipped as recent', async () => {
      const completed = p.stats.completed;
      const recent = p.stats.skipped.recent;
      for (const r of records) p.offer(r);
      await p.drain();
      assert.equal(p.stats.completed, completed, 'no new reads');
      assert.ok(p.stats.skipped.recent - recent >= reread.length);
    });

    await t.test('read-only: the file is unchanged and every fd closes', async () => {
      assert.ok(p.stats.fileHandle.open > 0);
      assert.ok(fdCount() > fdsBefore, 'fds were held while reading');
      await p.closeAll();
      assert.equal(p.stats.fileHandle.open, 0);
      assert.equal(fdCount(), fdsBefore, 'fd count back to baseline');
      assert.equal(statSync(relPath).mtimeMs, mtimeBefore, 'mtime unchanged');
    });

    await t.test('io_method willneed: posix_fadvise hints bring in exactly the same blocks, with no reads', async () => {
      evict(relPath);
      assert.equal(residentBlocks(relPath).filter(Boolean).length, 0, 'evicted again');
      const fds = fdCount();
      const readLatencies: number[] = [];
      const h = new Prefaulter({
        pgdata: standby.dataDir, blockSize: BLOCK, majorVersion: version, catalogVersion, readaheadBytes: 1 << 25, maxPagesAhead: 16384,
        ioConcurrency: 8, ioMethod: resolveIoMethod('willneed'), observeReadSeconds: (s) => readLatencies.push(s),
      });
      assert.equal(h.stats.ioMethod, 'willneed');
      h.setReplayLsn(replayLsn);
      for (const r of records) h.offer(r);
      await h.drain();
      // The kernel reads hinted pages asynchronously: wait for them to land.
      let after = residentBlocks(relPath);
      for (const until = Date.now() + 10_000; reread.some((b) => !after[b]) && Date.now() < until; after = residentBlocks(relPath)) {
        await new Promise((r) => setTimeout(r, 50));
      }
      assert.deepEqual(after.flatMap((r, b) => (r ? [b] : [])), reread, 'exactly the re-read blocks are resident');
      assert.equal(h.stats.completed, h.stats.issued, 'the kernel accepted every hint');
      assert.ok(h.stats.completed >= reread.length, `hints ${h.stats.completed}`);
      assert.equal(h.stats.readErrors, 0);
      assert.equal(readLatencies.length, 0, 'no pread was made');
      assert.ok(h.stats.skipped.image >= imaged.length);
      await h.closeAll();
      assert.equal(fdCount(), fds, 'fd count back to baseline');
      assert.equal(statSync(relPath).mtimeMs, mtimeBefore, 'mtime unchanged');
    });

    await t.test('replay advancing retires pages; records behind replay are not read', async () => {
      await standby.resumeReplay();
      await standby.waitForReplay(endLsn);
      const replayed = parseLsn(await standby.scalar<string>('select pg_last_wal_replay_lsn()::text'));
      const q = new Prefaulter({ pgdata: standby.dataDir, blockSize: BLOCK, majorVersion: version, catalogVersion, readaheadBytes: 1 << 25, maxPagesAhead: 100, ioConcurrency: 4 });
      q.setReplayLsn(replayLsn);
      for (const r of records) q.offer(r);
      await q.drain();
      assert.ok(q.stats.aheadPages > 0);
      q.setReplayLsn(replayed);
      assert.equal(q.stats.aheadPages, 0, 'all pages behind replay now');
      assert.equal(q.stats.aheadBytes, 0);
      const done = q.stats.requested;
      for (const r of records) q.offer(r);
      assert.equal(q.stats.requested, done, 'nothing behind replay is read');
      assert.equal(q.stats.recordsBehind, records.length);
      await q.closeAll();
    });

    await t.test('a dropped table is counted as a missing file, not thrown', async () => {
      await primary.exec('drop table t');
      await standby.waitForReplay(await primary.currentLsn());
      assert.throws(() => statSync(relPath), /ENOENT/, 'replay unlinked the file');
      const fds = fdCount();
      const q = new Prefaulter({ pgdata: standby.dataDir, blockSize: BLOCK, majorVersion: version, catalogVersion, readaheadBytes: 1 << 25, maxPagesAhead: 16384, ioConcurrency: 4 });
      q.setReplayLsn(replayLsn);
      for (const r of records) q.offer(r);
      await q.drain();
      assert.ok(q.stats.skipped.missing_file >= reread.length, `missing_file ${q.stats.skipped.missing_file}`);
      assert.equal(q.stats.fileHandle.missing, 3, 'one open() per missing path (the table, its free space map and visibility map), then the negative cache');
      assert.equal(q.stats.readErrors, 0);
      await q.closeAll();
      assert.equal(fdCount(), fds);
    });
  });
});
