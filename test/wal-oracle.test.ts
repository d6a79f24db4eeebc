// The decoder against PostgreSQL's own view of the same WAL: on a primary of each
// version a varied workload is run, the primary's pg_wal segment files are decoded,
// and every record (LSN, rmgr, length, end) and block reference is compared with
// pg_walinspect (15+). 13/14 have no pg_walinspect: there the blocks of the rows
// written (ctid) and the relfilenodes must all appear, and the record chain must be whole.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { selectedVersions, withPrimary, type PgServer } from './harness/index.ts';
import { FORK_NAMES, WalDecoder, formatLsn, isDecodeError, listSegments, parseLsn, type DecodeError, type WalRecord } from '../src/wal/index.ts';

const SEG = 16 * 1024 * 1024;

/** Decodes the primary's pg_wal from the segment holding `start`; records in [start, end). */
async function decodePgWal(dataDir: string, start: bigint, end: bigint): Promise<{ records: WalRecord[]; errors: DecodeError[]; major: number | null }> {
  const segs = (await listSegments(join(dataDir, 'pg_wal'))).filter((s) => s.timeline === 1 && s.segNo >= start / BigInt(SEG));
  const decoder = new WalDecoder({ startLsn: segs[0]!.segNo * BigInt(SEG) });
  const records: WalRecord[] = [];
  const errors: DecodeError[] = [];
  for (const s of segs) {
    assert.equal(decoder.inputLsn, s.segNo * BigInt(SEG), `segments are consecutive up to ${s.path}`);
    decoder.push(readFileSync(s.path));
    for (let r = decoder.next(); r; r = decoder.next()) {
      if (isDecodeError(r)) errors.push(r);
      else if (r.lsn >= start && r.lsn < end) records.push(r);
    }
    if (decoder.nextRecordLsn >= end) break;
  }
  return { records, errors, major: decoder.majorVersion };
}

/** A workload touching the record kinds the prefaulter cares about. */
async function workload(p: PgServer): Promise<{ verifyFrom: bigint; verifyTo: bigint }> {
  await p.exec(`
    create table t (id int primary key, v int, pad text) with (fillfactor = 70);
    insert into t select g, g, repeat('x', 100) from generate_series(1, 4000) g;
    update t set pad = 'hot' where id % 10 = 0;
    create index t_v on t (v);
    update t set v = v + 1 where id % 7 = 0;
    delete from t where id % 13 = 0;
    create table ts_t (id int, pad text) tablespace ts_w;
    insert into ts_t select g, md5(g::text) from generate_series(1, 1000) g;`);
  await p.exec('vacuum t');
  await p.exec('checkpoint');
  await p.exec(`set wal_compression = on; update t set v = v where id between 1 and 600;`);
  await p.exec('checkpoint');
  await p.exec(`set wal_compression = off; update t set v = v where id between 601 and 1200;`);
  await p.exec('alter system set full_page_writes = off');
  await p.exec('select pg_reload_conf()');
  await p.exec('checkpoint');
  await p.exec(`update t set v = v where id between 1201 and 1800;`);
  await p.exec('alter system reset full_page_writes');
  await p.exec('select pg_reload_conf()');
  await p.exec(`select pg_logical_emit_message(false, 'oracle', repeat('y', 30000));`);
  // Images for replay-time verification only: BKPIMAGE_APPLY clear (0x04 on 13/14, 0x02 on 15+).
  const verifyFrom = await p.scalar<string>('select pg_current_wal_insert_lsn()::text');
  await p.exec(`set wal_consistency_checking = 'heap'; update t set v = v where id between 1801 and 1900; reset wal_consistency_checking;`);
  const verifyTo = await p.scalar<string>('select pg_current_wal_insert_lsn()::text');
  await p.exec(`create table tr (id int); insert into tr select generate_series(1, 500); truncate tr; drop table tr;`);
  await p.exec('select pg_switch_wal()');
  await p.exec(`insert into t select g, g, 'after switch' from generate_series(5001, 5200) g; create index t_pad on t (pad);`);
  return { verifyFrom: parseLsn(verifyFrom), verifyTo: parseLsn(verifyTo) };
}

function blockKey(b: { id: number; spcOid: number; dbOid: number; relNumber: number; fork: number; block: number; hasImage: boolean; applyImage: boolean }): string {
  const img = b.hasImage ? (b.applyImage ? ' (FPW)' : ' (FPW for WAL verification)') : '';
  return `blkref #${b.id}: rel ${b.spcOid}/${b.dbOid}/${b.relNumber} fork ${FORK_NAMES[b.fork]} blk ${b.block}${img}`;
}

/** pg_walinspect's block_ref text (15+), reduced to the parts blockKey makes. */
function parseBlockRefText(text: string | null): string[] {
  if (!text) return [];
  const re = /blkref #(\d+): rel (\d+)\/(\d+)\/(\d+) fork (\w+) blk (\d+)( \(FPW( for WAL verification)?\))?/g;
  const out: string[] = [];
  for (const m of text.matchAll(re)) out.push(m[0]);
  return out;
}

function alignedEnd(r: WalRecord): bigint {
  const end = BigInt(r.endLsn);
  if (r.rmgr === 0 && (r.info & 0xf0) === 0x40) return ((end + BigInt(SEG) - 1n) / BigInt(SEG)) * BigInt(SEG); // XLOG_SWITCH
  return (end + 7n) & ~7n;
}

function mismatches<T>(label: string, ours: T[], theirs: T[]): string[] {
  const out: string[] = [];
  const n = Math.max(ours.length, theirs.length);
  for (let i = 0; i < n && out.length < 5; i++) {
    const a = JSON.stringify(ours[i]);
    const b = JSON.stringify(theirs[i]);
    if (a !== b) out.push(`${label} #${i}: decoder ${a}\n   postgres ${b}`);
  }
  return out;
}

/** Checks PostgreSQL guarantees on any version: a whole prev chain, and record ends meeting the next start. */
function checkChain(records: WalRecord[]): string[] {
  const bad: string[] = [];
  for (let i = 1; i < records.length && bad.length < 5; i++) {
    const a = records[i - 1]!;
    const b = records[i]!;
    if (b.prevLsn !== a.lsn) bad.push(`${formatLsn(b.lsn)} prev ${formatLsn(b.prevLsn)}, previous record is ${formatLsn(a.lsn)}`);
    const gap = BigInt(b.lsn) - alignedEnd(a);
    // the next record starts right after, or after the page header of the next page / segment
    if (gap !== 0n && !((gap === 24n || gap === 40n) && BigInt(b.lsn) % 8192n === gap)) bad.push(`${formatLsn(a.lsn)} ends at ${formatLsn(a.endLsn)} but the next record is at ${formatLsn(b.lsn)}`);
  }
  return bad;
}

for (const version of selectedVersions()) {
  test(`PG ${version}: decoded records and block references match PostgreSQL's`, async () => {
    await withPrimary(version, { name: 'wal-oracle', tablespaces: ['ts_w'] }, async ({ primary }) => {
      if (version >= 15) await primary.exec('create extension pg_walinspect');
      await primary.exec('checkpoint');
      const start = parseLsn(await primary.scalar<string>('select pg_current_wal_insert_lsn()::text'));
      const { verifyFrom, verifyTo } = await workload(primary);
      const end = parseLsn(await primary.scalar<string>('select pg_current_wal_flush_lsn()::text'));
      const { records, errors, major } = await decodePgWal(primary.dataDir, start, end);
      assert.deepEqual(errors, [], 'no decode errors');
      assert.equal(major, version, 'major version told by xlp_magic');
      assert.ok(records.length > 5000, `decoded ${records.length} records`);
      assert.deepEqual(checkChain(records), []);

      // Shapes the workload must have produced.
      assert.ok(records.some((r) => r.rmgrName === 'LogicalMessage' && r.totalLength > 30000), 'a record spanning several pages');
      assert.ok(records.some((r) => r.rmgrName === 'XLOG' && (r.info & 0xf0) === 0x40), 'a segment switch');
      assert.ok(records.some((r) => r.blocks.some((b) => b.hasImage)), 'full-page images');
      // Outside wal_consistency_checking every image is applied at replay; inside, some are for checking only.
      const images = records.flatMap((r) => r.blocks.filter((b) => b.hasImage).map((b) => ({ r, b })));
      const checkOnly = images.filter(({ b }) => !b.applyImage);
      assert.ok(checkOnly.length > 0, 'wal_consistency_checking produced images that are not applied');
      assert.deepEqual(checkOnly.filter(({ r }) => r.lsn < verifyFrom || r.lsn >= verifyTo).map(({ r }) => formatLsn(r.lsn)), [], 'images outside wal_consistency_checking are applied');
      assert.ok(images.some(({ r, b }) => b.applyImage && (r.lsn < verifyFrom || r.lsn >= verifyTo)));
      const inits = records.filter((r) => r.rmgrName === 'Heap' && (r.info & 0x70) === 0 && r.info & 0x80);
      assert.ok(inits.length > 0 && inits.every((r) => r.blocks[0]?.willInit), 'heap INSERT+INIT records set BKPBLOCK_WILL_INIT');

      // Every block the table's rows live in was written by some record of its relfilenode.
      const oids = await primary.query<{ rel: number; spc: number; db: number }>(
        `select pg_relation_filenode('ts_t')::int rel, (select oid::int from pg_tablespace where spcname = 'ts_w') spc, (select oid::int from pg_database where datname = current_database()) db`,
      );
      const { rel, spc, db } = oids[0]!;
      const tsBlocks = new Set(records.flatMap((r) => r.blocks.filter((b) => b.relNumber === rel && b.spcOid === spc && b.dbOid === db && b.fork === 0).map((b) => b.block)));
      const tsRows = await primary.query<{ b: number }>(`select distinct (ctid::text::point)[0]::int b from ts_t`);
      assert.ok(tsRows.length > 1);
      for (const { b } of tsRows) assert.ok(tsBlocks.has(b), `ts_t block ${b} in tablespace ts_w appears in the WAL`);
      const tRel = await primary.scalar<number>(`select pg_relation_filenode('t')::int`);
      const tBlocks = new Set(records.flatMap((r) => r.blocks.filter((b) => b.relNumber === tRel && b.fork === 0).map((b) => b.block)));
      const tRows = await primary.query<{ b: number }>(`select distinct (ctid::text::point)[0]::int b from t`);
      for (const { b } of tRows) assert.ok(tBlocks.has(b), `t block ${b} appears in the WAL`);

      if (version < 15) return;
      // pg_walinspect: every record and every block reference.
      const theirs = await primary.query<{ start_lsn: string; end_lsn: string; resource_manager: string; record_length: number; block_ref: string | null }>(
        'select start_lsn::text, end_lsn::text, resource_manager, record_length, block_ref from pg_get_wal_records_info($1, $2)',
        [formatLsn(start), formatLsn(end)],
      );
      const diffs = [
        ...mismatches(
          'record',
          records.map((r) => [formatLsn(r.lsn), formatLsn(alignedEnd(r)), r.rmgrName, r.totalLength]),
          theirs.map((r) => [r.start_lsn, r.end_lsn, r.resource_manager, r.record_length]),
        ),
        ...mismatches(
          'blocks',
          records.map((r) => [formatLsn(r.lsn), ...r.blocks.map(blockKey)]),
          theirs.map((r) => [r.start_lsn, ...parseBlockRefText(r.block_ref)]),
        ),
      ];
      if (version >= 16) {
        const blocks = await primary.query<{ start_lsn: string; block_id: number; block_data_length: number; block_fpi_info: string[] | null; relforknumber: number }>(
          'select start_lsn::text, block_id, block_data_length, block_fpi_info, relforknumber from pg_get_wal_block_info($1, $2, false)',
          [formatLsn(start), formatLsn(end)],
        );
        diffs.push(
          ...mismatches(
            'block detail',
            records.flatMap((r) => r.blocks.map((b) => [formatLsn(r.lsn), b.id, b.fork, b.dataLength, b.hasImage, b.applyImage])),
            blocks.map((b) => [b.start_lsn, b.block_id, b.relforknumber, b.block_data_length, b.block_fpi_info !== null, (b.block_fpi_info ?? []).includes('APPLY')]),
          ),
        );
      }
      assert.deepEqual(diffs, [], `decoder and pg_walinspect disagree:\n${diffs.join('\n')}`);
      assert.equal(records.length, theirs.length);
    });
  });
}
