// Streaming from real primaries: bytes must equal the primary's pg_wal files;
// the sidecar must never become a synchronous standby, create a slot, or be
// dropped while it applies back-pressure.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { selectedVersions, withPrimary, sleep, type PgServer } from './harness/index.ts';
import { WalDecoder, isDecodeError } from '../src/wal/index.ts';
import { ReplicationConnection, parseConninfo, resolveConnOptions, parseLsn, formatLsn, type ReplicationStream } from '../src/replication/index.ts';

const versions = selectedVersions();
const last = versions[versions.length - 1]!;

function connect(server: PgServer, extra: Record<string, string | number> = {}): Promise<ReplicationConnection> {
  const opts = resolveConnOptions(parseConninfo(server.conninfo({ sslmode: 'disable', ...extra })), {});
  return ReplicationConnection.connect(opts);
}

function segmentFileName(tli: number, segno: bigint, segSize: bigint): string {
  const perId = 0x100000000n / segSize;
  const hex = (n: bigint | number): string => n.toString(16).toUpperCase().padStart(8, '0');
  return `${hex(tli)}${hex(segno / perId)}${hex(segno % perId)}`;
}

/** The bytes [start, end) of the server's WAL as stored in pg_wal. */
function walFromDisk(server: PgServer, tli: number, start: bigint, end: bigint, segSize: bigint): Buffer {
  const parts: Buffer[] = [];
  for (let pos = start; pos < end; ) {
    const segno = pos / segSize;
    const file = readFileSync(join(server.dataDir, 'pg_wal', segmentFileName(tli, segno, segSize)));
    const off = Number(pos % segSize);
    const take = Number(end - pos < segSize - BigInt(off) ? end - pos : segSize - BigInt(off));
    parts.push(file.subarray(off, off + take));
    pos += BigInt(take);
  }
  return Buffer.concat(parts);
}

/** Decodes WAL fed in the given chunks; a summary of every record (errors fail the test). */
function decodeAll(start: bigint, chunks: Buffer[], end: bigint): string[] {
  const d = new WalDecoder({ startLsn: start });
  const out: string[] = [];
  for (const c of chunks) {
    d.push(c);
    for (let r = d.next(); r !== null; r = d.next()) {
      assert.ok(!isDecodeError(r), `decode error: ${isDecodeError(r) ? r.message : ''}`);
      if (!isDecodeError(r) && r.endLsn <= end) out.push(`${formatLsn(r.lsn)} ${r.rmgrName} ${r.totalLength} ${r.blocks.length}`);
    }
  }
  return out;
}

/** Reads the stream until [start, end) is covered; returns exactly those bytes. */
async function collect(stream: ReplicationStream, start: bigint, end: bigint, chunks: Buffer[] = []): Promise<Buffer> {
  const out = Buffer.alloc(Number(end - start));
  let next = start;
  for await (const m of stream) {
    assert.equal(m.type, 'xlogdata');
    if (m.type !== 'xlogdata') break;
    assert.equal(m.walStart, next, 'XLogData messages must be contiguous');
    const from = m.walStart;
    const n = Math.min(m.data.length, Number(end - from));
    m.data.copy(out, Number(from - start), 0, n);
    chunks.push(m.data.subarray(0, n));
    next = from + BigInt(m.data.length);
    if (next >= end) break;
  }
  assert.ok(next >= end, `stream ended at ${formatLsn(next)} before ${formatLsn(end)}`);
  return out;
}

for (const version of versions) {
  test(`PG ${version}: streamed WAL equals pg_wal bytes; no slot is created`, async () => {
    await withPrimary(version, { name: 'repl-bytes' }, async ({ primary }) => {
      const conn = await connect(primary);
      try {
        assert.ok(conn.serverVersionNum >= version * 10000 && conn.serverVersionNum < (version + 1) * 10000, `serverVersionNum ${conn.serverVersionNum}`);
        const sys = await conn.identifySystem();
        assert.equal(sys.timeline, 1);
        assert.equal(sys.dbname, null);
        assert.match(sys.systemId, /^\d+$/);
        const segSize = BigInt(await conn.show('wal_segment_size').then((s) => parseInt(s, 10) * 1024 * 1024));
        assert.equal(await conn.show('server_version_num'), String(conn.serverVersionNum));
        // a page that is already written, a little behind the current position
        const start = sys.xlogpos - (sys.xlogpos % 8192n);
        await primary.exec(`create table t(id int primary key, pad text);
          insert into t select g, repeat('x', 200) from generate_series(1, 20000) g;`);
        const end = parseLsn(await primary.scalar<string>('select pg_current_wal_flush_lsn()::text'));
        assert.ok(end - start > 2n * 1024n * 1024n, 'enough WAL to span many messages');
        const stream = conn.startReplication({ startLsn: start + 100n /* aligned down to start */, timeline: sys.timeline });
        const chunks: Buffer[] = [];
        const got = await collect(stream, start, end, chunks);
        assert.ok(stream.receivedLsn >= end);
        assert.ok(stream.serverWalEnd >= end);
        await stream.close();
        const disk = walFromDisk(primary, sys.timeline, start, end, segSize);
        assert.equal(got.length, disk.length);
        assert.ok(got.equals(disk), 'streamed WAL differs from pg_wal');
        // decoded as streamed (message boundaries) and from disk (one piece): same records
        const fromStream = decodeAll(start, chunks, end);
        assert.ok(fromStream.length > 1000, `decoded ${fromStream.length} records`);
        assert.deepEqual(fromStream, decodeAll(start, [disk], end));
        // the connection is usable again after the stream ends
        const again = await conn.identifySystem();
        assert.ok(again.xlogpos >= end);
      } finally {
        await conn.close();
      }
      const slots = await primary.scalar<number>('select count(*)::int from pg_replication_slots');
      assert.equal(slots, 0, 'no replication slot may be created by default');
    });
  });
}

test(`PG ${last}: the sidecar never acknowledges a synchronous commit`, async () => {
  await withPrimary(last, { name: 'repl-sync' }, async ({ primary }) => {
    await primary.exec('create table s(x int)');
    // every commit from now on waits for a synchronous standby
    await primary.query(`alter system set synchronous_standby_names = '*'`);
    await primary.query('select pg_reload_conf()');
    const conn = await connect(primary, { application_name: 'prefaulter_sync_probe' });
    try {
      const sys = await conn.identifySystem();
      const stream = conn.startReplication({ startLsn: sys.xlogpos, timeline: sys.timeline, statusIntervalMs: 100 });
      // consume in the background so status updates carry a moving write position
      const reading = (async () => {
        for await (const _ of stream) {
          // drain
        }
      })();
      // a second connection: its commit must wait for a synchronous standby forever
      const { default: postgres } = await import('postgres');
      const other = postgres({ host: primary.socketDir, port: primary.port, username: 'postgres', database: 'postgres', max: 1, onnotice: () => {} });
      const pending = other`insert into s values (1)`.then(
        () => 'committed',
        (e: Error) => `failed: ${e.message}`,
      );
      await sleep(1500);
      const waiting = await primary.query<{ wait_event: string | null }>(
        `select wait_event from pg_stat_activity where query like 'insert into s%' and state = 'active'`,
      );
      assert.equal(waiting.length, 1, 'the insert is still running');
      assert.equal(waiting[0]!.wait_event, 'SyncRep');
      const rep = await primary.query<{ application_name: string; write_lsn: string | null; flush_lsn: string | null; replay_lsn: string | null; sync_state: string }>(
        `select application_name, write_lsn::text, flush_lsn::text, replay_lsn::text, sync_state from pg_stat_replication`,
      );
      assert.equal(rep.length, 1);
      assert.equal(rep[0]!.application_name, 'prefaulter_sync_probe');
      assert.ok(rep[0]!.write_lsn !== null && parseLsn(rep[0]!.write_lsn) > 0n, 'write position is reported');
      // InvalidXLogRecPtr shows as NULL: never flushed, never applied
      assert.equal(rep[0]!.flush_lsn, null);
      assert.equal(rep[0]!.replay_lsn, null);
      assert.notEqual(rep[0]!.sync_state, 'sync');
      await primary.query(`select pg_cancel_backend(pid) from pg_stat_activity where query like 'insert into s%' and state = 'active'`);
      const outcome = await pending;
      assert.match(outcome, /^(committed|failed: .*cancel)/);
      await other.end({ timeout: 2 });
      await stream.close();
      await reading;
    } finally {
      await conn.close();
    }
  });
});

test(`PG ${last}: back-pressure pauses the socket without losing the walsender`, async () => {
  await withPrimary(last, { name: 'repl-bp', primaryConf: { wal_sender_timeout: '2s' } }, async ({ primary }) => {
    const conn = await connect(primary, { application_name: 'prefaulter_bp' });
    const max = 256 * 1024;
    try {
      const sys = await conn.identifySystem();
      const segSize = 16n * 1024n * 1024n;
      const start = sys.xlogpos - (sys.xlogpos % 8192n);
      const stream = conn.startReplication({ startLsn: start, timeline: sys.timeline, maxBufferedBytes: max });
      // take one message, then stop consuming
      const it = stream[Symbol.asyncIterator]();
      await primary.exec('create table big(id int, pad text)');
      const first = await it.next();
      assert.equal(first.done, false);
      let next = start;
      const chunks: Buffer[] = [];
      const take = (m: IteratorResult<unknown>): void => {
        const x = m.value as { type: string; walStart: bigint; data: Buffer };
        assert.equal(x.type, 'xlogdata');
        assert.equal(x.walStart, next);
        chunks.push(Buffer.from(x.data));
        next += BigInt(x.data.length);
      };
      take(first);
      await primary.exec(`insert into big select g, repeat('y', 500) from generate_series(1, 12000) g`);
      const end = parseLsn(await primary.scalar<string>('select pg_current_wal_flush_lsn()::text'));
      assert.ok(end - start > 4n * 1024n * 1024n, 'a few MB of WAL');
      let peak = 0;
      for (let i = 0; i < 30; i++) {
        await sleep(200);
        peak = Math.max(peak, stream.bufferedBytes);
      }
      // one socket read is at most 64 KiB; a message spanning reads adds one more message (128 KiB)
      assert.ok(peak <= max + 64 * 1024 + 128 * 1024 + 64, `buffered ${peak} bytes with a ${max} limit`);
      assert.ok(peak > max / 2, `back-pressure engaged only after buffering (${peak})`);
      const rep = await primary.query<{ application_name: string }>(`select application_name from pg_stat_replication`);
      assert.deepEqual(
        rep.map((r) => r.application_name),
        ['prefaulter_bp'],
        'the walsender survived 6 s of no consumption with wal_sender_timeout=2s',
      );
      while (next < end) {
        const m = await it.next();
        assert.equal(m.done, false);
        take(m);
      }
      await stream.close();
      const got = Buffer.concat(chunks).subarray(0, Number(end - start));
      assert.ok(got.equals(walFromDisk(primary, sys.timeline, start, end, segSize)), 'bytes after back-pressure equal pg_wal');
    } finally {
      await conn.close();
    }
  });
});

test(`PG ${last}: with a slot, the sidecar's feedback never makes the slot hold WAL`, async () => {
  await withPrimary(last, { name: 'repl-slot' }, async ({ primary }) => {
    // not reserved: the slot shows the sidecar as active but retains nothing
    await primary.query(`select pg_create_physical_replication_slot('pf_sidecar', false)`);
    const conn = await connect(primary);
    try {
      const sys = await conn.identifySystem();
      const stream = conn.startReplication({ startLsn: sys.xlogpos, timeline: sys.timeline, slot: 'pf_sidecar', statusIntervalMs: 100 });
      await primary.exec('create table t(x int); insert into t select generate_series(1, 50000)');
      const end = parseLsn(await primary.scalar<string>('select pg_current_wal_flush_lsn()::text'));
      const it = stream[Symbol.asyncIterator]();
      while (stream.receivedLsn < end) {
        const m = await it.next();
        assert.equal(m.done, false);
      }
      await sleep(500); // a few status updates, still streaming
      const slot = await primary.query<{ active: boolean; restart_lsn: string | null }>(
        `select active, restart_lsn::text from pg_replication_slots where slot_name = 'pf_sidecar'`,
      );
      assert.equal(slot.length, 1);
      assert.equal(slot[0]!.active, true, 'the sidecar holds the slot while streaming');
      // flush = InvalidXLogRecPtr in our status updates: the slot is never advanced, so never reserves
      assert.equal(slot[0]!.restart_lsn, null);
    } finally {
      await conn.close();
    }
    const after = await primary.query<{ active: boolean }>(`select active from pg_replication_slots where slot_name = 'pf_sidecar'`);
    assert.equal(after[0]!.active, false, 'the slot is released on close');
  });
});
