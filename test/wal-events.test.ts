// Relation events: CREATE TABLE, TRUNCATE, VACUUM truncation, DROP TABLE (committed,
// rolled back, prepared), CREATE/DROP DATABASE give typed events with the oids the
// catalogs report. Database records changed layout in 15, so every version runs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { selectedVersions, withPrimary, type PgServer } from './harness/index.ts';
import { WalDecoder, isDecodeError, listSegments, parseLsn, type RelationEvent, type WalRecord } from '../src/wal/index.ts';

const SEG = 16n * 1024n * 1024n;

async function decodeRange(dataDir: string, start: bigint, end: bigint): Promise<WalRecord[]> {
  const segs = (await listSegments(join(dataDir, 'pg_wal'))).filter((s) => s.timeline === 1 && s.segNo >= start / SEG);
  const decoder = new WalDecoder({ startLsn: segs[0]!.segNo * SEG });
  const out: WalRecord[] = [];
  for (const s of segs) {
    decoder.push(readFileSync(s.path));
    for (let r = decoder.next(); r; r = decoder.next()) {
      assert.ok(!isDecodeError(r), isDecodeError(r) ? r.message : '');
      if (r.lsn >= start && r.lsn < end) out.push(r);
    }
  }
  return out;
}

async function lsn(p: PgServer): Promise<bigint> {
  return parseLsn(await p.scalar<string>('select pg_current_wal_insert_lsn()::text'));
}

async function filenode(p: PgServer, rel: string): Promise<number> {
  return p.scalar<number>(`select pg_relation_filenode('${rel}')::int`);
}

for (const version of selectedVersions()) {
  test(`PG ${version}: relation events carry the oids of the objects`, async () => {
    await withPrimary(version, { name: 'wal-events', tablespaces: ['ts_e'], primaryConf: { max_prepared_transactions: 5 } }, async ({ primary: p }) => {
      const db = await p.scalar<number>(`select oid::int from pg_database where datname = current_database()`);
      const tsOid = await p.scalar<number>(`select oid::int from pg_tablespace where spcname = 'ts_e'`);
      const start = await lsn(p);

      await p.exec(`create table e1 (id int) tablespace ts_e; insert into e1 select generate_series(1, 100);`);
      const e1 = await filenode(p, 'e1');
      await p.exec('truncate e1');
      const e1b = await filenode(p, 'e1');
      await p.exec(`create table e2 (id int); insert into e2 select generate_series(1, 5000); delete from e2;`);
      const e2 = await filenode(p, 'e2');
      await p.exec('vacuum e2');
      await p.exec('drop table e1');
      let e3 = 0;
      await p
        .sql()
        .begin(async (tx) => {
          await tx`create table e3 (id int)`;
          e3 = (await tx`select pg_relation_filenode('e3')::int n`)[0]!.n as number;
          throw new Error('roll back');
        })
        .catch((e: Error) => assert.equal(e.message, 'roll back'));
      await p.exec('create table e4 (id int)');
      const e4 = await filenode(p, 'e4');
      await p.exec(`begin; drop table e4; prepare transaction 'p1';`);
      await p.exec(`commit prepared 'p1'`);
      await p.exec('create database edb');
      const edb = await p.scalar<number>(`select oid::int from pg_database where datname = 'edb'`);
      await p.exec(version >= 15 ? 'create database edb2 strategy file_copy' : 'create database edb2 tablespace ts_e');
      const edb2 = await p.scalar<number>(`select oid::int from pg_database where datname = 'edb2'`);
      await p.exec('drop database edb');
      const end = await lsn(p);

      const records = await decodeRange(p.dataDir, start, end);
      const events = records.flatMap((r) => r.events);
      const has = (want: RelationEvent, why: string): void => {
        assert.ok(
          events.some((e) => JSON.stringify(e) === JSON.stringify(want)),
          `${why}: no ${JSON.stringify(want)} among ${events.length} events:\n${events.map((e) => JSON.stringify(e)).join('\n')}`,
        );
      };
      has({ kind: 'smgr-create', spcOid: tsOid, dbOid: db, relNumber: e1, fork: 0 }, 'CREATE TABLE in a tablespace');
      has({ kind: 'smgr-create', spcOid: tsOid, dbOid: db, relNumber: e1b, fork: 0 }, 'TRUNCATE makes a new relfilenode');
      has({ kind: 'rels-dropped', rels: [{ spcOid: tsOid, dbOid: db, relNumber: e1 }] }, 'TRUNCATE drops the old relfilenode at commit');
      const trunc = events.find((e) => e.kind === 'smgr-truncate' && e.relNumber === e2);
      assert.ok(trunc && trunc.kind === 'smgr-truncate', 'VACUUM truncates the emptied table');
      assert.deepEqual([trunc.spcOid, trunc.dbOid, trunc.blocks], [1663, db, 0]);
      assert.ok(events.some((e) => e.kind === 'rels-dropped' && e.rels.some((r) => r.relNumber === e1b && r.spcOid === tsOid)), 'DROP TABLE');
      has({ kind: 'rels-dropped', rels: [{ spcOid: 1663, dbOid: db, relNumber: e3 }] }, 'a rolled back CREATE TABLE drops its file at abort');
      const prepared = records.find((r) => r.rmgrName === 'Transaction' && (r.info & 0x70) === 0x30);
      assert.ok(prepared, 'a COMMIT PREPARED record');
      assert.deepEqual(prepared.events, [{ kind: 'rels-dropped', rels: [{ spcOid: 1663, dbOid: db, relNumber: e4 }] }], 'COMMIT PREPARED drops e4');
      has({ kind: 'db-create', dbOid: edb, spcOid: 1663 }, 'CREATE DATABASE');
      has({ kind: 'db-create', dbOid: edb2, spcOid: version >= 15 ? 1663 : tsOid }, 'CREATE DATABASE (file copy)');
      const drop = events.find((e) => e.kind === 'db-drop');
      assert.ok(drop && drop.kind === 'db-drop', 'DROP DATABASE');
      assert.equal(drop.dbOid, edb);
      assert.ok(drop.spcOids.includes(1663));
    });
  });
}
