// Block -> file mapping checked against PostgreSQL's own pg_relation_filepath()
// on a real standby: default and non-default tablespaces, shared catalogs,
// and the fsm/vm forks VACUUM creates; plus the 1 GiB segment arithmetic.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { SegmentPaths, blocksPerSegment, segmentPath, tablespaceVersionDirectory } from '../src/prefault/index.ts';
import { selectedVersions, withCluster } from './harness/index.ts';

const version = selectedVersions().at(-1)!;

test('1 GiB segments: block 131072 of an 8 KiB relation is the first block of ".1"', () => {
  const layout = { pgdata: '/pgdata', blockSize: 8192, majorVersion: 17, catalogVersion: 202406281 };
  const paths = new SegmentPaths(layout);
  assert.equal(blocksPerSegment(8192), 131072);
  assert.equal(paths.pathOf(1663, 5, 16384, 0, 131071), '/pgdata/base/5/16384');
  assert.equal(paths.offsetOf(131071), 131071 * 8192);
  assert.equal(paths.pathOf(1663, 5, 16384, 0, 131072), '/pgdata/base/5/16384.1');
  assert.equal(paths.offsetOf(131072), 0);
  assert.equal(paths.pathOf(1663, 5, 16384, 2, 3 * 131072 + 7), '/pgdata/base/5/16384_vm.3');
  assert.equal(paths.offsetOf(3 * 131072 + 7), 7 * 8192);
  assert.equal(paths.pathOf(1664, 0, 1262, 0, 0), '/pgdata/global/1262');
  assert.equal(paths.pathOf(16500, 5, 16384, 3, 0), '/pgdata/pg_tblspc/16500/PG_17_202406281/5/16384_init');
  // the largest block number still maps (BlockNumber is uint32)
  assert.equal(paths.pathOf(1663, 5, 16384, 1, 0xfffffffe), '/pgdata/base/5/16384_fsm.32767');
  // other block sizes keep 1 GiB segments
  assert.equal(new SegmentPaths({ ...layout, blockSize: 32768 }).pathOf(1663, 5, 1, 0, 32768), '/pgdata/base/5/1.1');
  assert.equal(segmentPath(layout, 1663, 5, 16384, 0, 0), 'base/5/16384');
  assert.throws(() => new SegmentPaths({ ...layout, blockSize: 1000 }), /power of two/);
});

test('the path cache stays bounded and keeps answering correctly', () => {
  const paths = new SegmentPaths({ pgdata: '/d', blockSize: 8192, majorVersion: 16, catalogVersion: 1 }, 100);
  for (let rel = 0; rel < 1000; rel++) assert.equal(paths.pathOf(1663, 1, rel, 0, 0), `/d/base/1/${rel}`);
  assert.ok(paths.size <= 100, `cached ${paths.size}`);
  // same answer (same string object) on a hit
  assert.equal(paths.pathOf(1663, 1, 999, 0, 0), paths.pathOf(1663, 1, 999, 0, 0));
});

test(`PG ${version}: paths match pg_relation_filepath for main/fsm/vm forks, tablespaces and shared catalogs`, async () => {
  await withCluster(version, { name: 'paths', tablespaces: ['ts_p'] }, async ({ primary, standby }) => {
    await primary.exec(`
      create table in_default as select g, repeat('x', 100) as pad from generate_series(1, 20000) g;
      create table in_ts tablespace ts_p as select g, repeat('x', 100) as pad from generate_series(1, 20000) g;`);
    await primary.exec('vacuum in_default');
    await primary.exec('vacuum in_ts');
    await standby.waitForReplay(await primary.currentLsn());
    await standby.exec('checkpoint');
    const catalogVersion = Number(await standby.scalar('select catalog_version_no::int from pg_control_system()'));
    const paths = new SegmentPaths({ pgdata: standby.dataDir, blockSize: 8192, majorVersion: version, catalogVersion });
    const dirName = tablespaceVersionDirectory(version, catalogVersion);
    for (const table of ['in_default', 'in_ts', 'pg_database']) {
      const [row] = await standby.query<{ spc: number; db: number; rel: number; path: string; blocks: number }>(
        `select case when c.reltablespace = 0 then (select dattablespace from pg_database where datname = current_database()) else c.reltablespace end::int as spc,
                case when c.relisshared then 0 else (select oid from pg_database where datname = current_database()) end::int as db,
                pg_relation_filenode(c.oid)::int as rel, pg_relation_filepath(c.oid) as path,
                (pg_relation_size(c.oid) / 8192)::int as blocks
           from pg_class c where c.relname = $1`,
        [table],
      );
      assert.ok(row, table);
      const expected = join(standby.dataDir, row.path);
      assert.equal(paths.pathOf(row.spc, row.db, row.rel, 0, 0), expected, `${table} main fork`);
      assert.equal(statSync(expected).size, row.blocks * 8192, `${table}: the file exists with its blocks`);
      if (table === 'in_ts') assert.match(expected, new RegExp(`/pg_tblspc/${row.spc}/${dirName}/${row.db}/${row.rel}$`));
      if (table === 'pg_database') assert.match(expected, /\/global\/\d+$/);
      if (table !== 'pg_database') {
        // VACUUM made both forks; they exist on the primary (their replay on a standby is not guaranteed).
        const onPrimary = new SegmentPaths({ pgdata: primary.dataDir, blockSize: 8192, majorVersion: version, catalogVersion });
        const primaryPath = join(primary.dataDir, String(await primary.scalar(`select pg_relation_filepath($1::regclass)`, [table])));
        assert.equal(onPrimary.pathOf(row.spc, row.db, row.rel, 1, 0), `${primaryPath}_fsm`);
        assert.equal(onPrimary.pathOf(row.spc, row.db, row.rel, 2, 0), `${primaryPath}_vm`);
        assert.ok(existsSync(`${primaryPath}_fsm`), `${table} fsm fork exists`);
        assert.ok(existsSync(`${primaryPath}_vm`), `${table} vm fork exists`);
      }
    }
  });
});
