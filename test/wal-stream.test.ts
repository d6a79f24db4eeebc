// The decoder as a stream: real WAL from a primary fed in random chunks, started
// mid-stream, interrupted by unwritten (zero) bytes, damaged and cut short.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { selectedVersions, withPrimary } from './harness/index.ts';
import { WalDecoder, crc32c, formatLsn, isDecodeError, listSegments, parseLsn, type DecodeError, type WalRecord } from '../src/wal/index.ts';

const SEG = 16 * 1024 * 1024;
const PAGE = 8192;

/** mulberry32: small seeded PRNG so failures replay. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function show(r: WalRecord | DecodeError): string {
  return JSON.stringify(r, (_k, v) => (typeof v === 'bigint' ? formatLsn(v) : v));
}

interface Run {
  out: (WalRecord | DecodeError)[];
  calls: number;
  decoder: WalDecoder;
}

/** Feeds bytes [from, to) of wal (which starts at LSN base) in chunks, draining after each push. */
function feed(wal: Buffer, base: bigint, opts: { from?: number; to?: number; start?: bigint; chunk: () => number; maxCalls?: number }): Run {
  const from = opts.from ?? 0;
  const to = opts.to ?? wal.length;
  const decoder = new WalDecoder({ startLsn: opts.start ?? base + BigInt(from) });
  const out: (WalRecord | DecodeError)[] = [];
  let calls = 0;
  const max = opts.maxCalls ?? Infinity;
  let pos = from;
  while (pos < to) {
    assert.equal(decoder.inputLsn, base + BigInt(pos), 'inputLsn follows the bytes pushed');
    const n = Math.min(opts.chunk(), to - pos);
    decoder.push(wal.subarray(pos, pos + n));
    pos += n;
    for (let r = decoder.next(); r; r = decoder.next()) {
      out.push(r);
      if (++calls > max) throw new Error(`decoder produced more than ${max} results: looping?`);
    }
    if (decoder.inputLsn < base + BigInt(pos)) break; // rewound: the rest is unwritten
  }
  return { out, calls, decoder };
}

const version = selectedVersions().at(-1)!;

test(`PG ${version}: the decoder as a stream of real WAL`, async (t) => {
  let wal = Buffer.alloc(0);
  let base = 0n;
  let insertLsn = 0n;
  await withPrimary(version, { name: 'wal-stream' }, async ({ primary: p }) => {
    await p.exec('checkpoint');
    await p.exec(`
      create table s (id int primary key, v int, pad text);
      insert into s select g, g, repeat('z', 50) from generate_series(1, 3000) g;
      select pg_logical_emit_message(false, 'big', repeat('m', 50000));
      update s set v = v + 1 where id % 3 = 0;`);
    await p.exec('checkpoint');
    await p.exec(`update s set pad = 'fpi' where id % 50 = 0; select pg_switch_wal();`);
    await p.exec(`insert into s select g, g, 'next segment' from generate_series(3001, 4000) g;`);
    insertLsn = parseLsn(await p.scalar<string>('select pg_current_wal_insert_lsn()::text'));
    const startLsn = parseLsn(await p.scalar<string>(`select redo_lsn::text from pg_control_checkpoint()`));
    const segs = (await listSegments(join(p.dataDir, 'pg_wal'))).filter((s) => s.segNo >= startLsn / BigInt(SEG) && s.segNo <= insertLsn / BigInt(SEG));
    base = segs[0]!.segNo * BigInt(SEG);
    wal = Buffer.concat(segs.map((s) => readFileSync(s.path)));
  });

  const whole = feed(wal, base, { chunk: () => wal.length });
  const ref = whole.out as WalRecord[];
  assert.ok(!ref.some(isDecodeError), 'the undamaged WAL decodes without errors');
  assert.ok(ref.length > 5000);
  assert.ok(ref.some((r) => r.totalLength > 50000), 'a record spanning pages');
  const last = ref.at(-1)!;
  assert.equal((BigInt(last.endLsn) + 7n) & ~7n, insertLsn, 'decoding ends at the insert position');
  assert.equal(whole.decoder.inputLsn, (BigInt(last.endLsn) + 7n) & ~7n, 'zeros after the last record rewind inputLsn there');
  assert.equal(whole.decoder.bufferedBytes, 0);
  const refText = ref.map(show);
  const written = Number(whole.decoder.inputLsn - base);

  await t.test('random chunk sizes give identical output', () => {
    for (const seed of [1, 2, 3, 4]) {
      const r = rng(seed);
      const run = feed(wal, base, { chunk: () => (r() < 0.3 ? 1 + Math.floor(r() * 64) : 1 + Math.floor(r() * 65536)) });
      assert.deepEqual(run.out.map(show), refText, `seed ${seed}`);
    }
  });

  await t.test('verifyCrc: false decodes the same records', () => {
    const d = new WalDecoder({ startLsn: base, verifyCrc: false });
    d.push(wal.subarray(0, written));
    const out: string[] = [];
    for (let r = d.next(); r; r = d.next()) out.push(show(r));
    assert.deepEqual(out, refText);
  });

  await t.test('full-page images are checked against the blockSize given (BLCKSZ), not a built-in 8192', () => {
    // Images with a hole carry their length and read alike; an image without a hole is a
    // whole page, so with 16 KiB pages these 8 KiB ones are damage, as PostgreSQL would say.
    const d = new WalDecoder({ startLsn: base, blockSize: 16384 });
    d.push(wal.subarray(0, written));
    const out: (WalRecord | DecodeError)[] = [];
    for (let r = d.next(); r; r = d.next()) out.push(r);
    const errors = out.filter(isDecodeError);
    assert.ok(errors.length > 0, 'a full 8 KiB image (no hole) is refused');
    for (const e of errors) {
      assert.match(e.message, /BKPIMAGE_HAS_HOLE not set, but hole offset 0 length 8192/);
      assert.ok(ref.find((r) => r.lsn === e.lsn)?.blocks.some((b) => b.hasImage), `the error at ${formatLsn(e.lsn)} is an image record`);
    }
    const decoded = out.filter((r) => !isDecodeError(r)).map(show);
    const images = ref.filter((r) => r.blocks.some((b) => b.hasImage)).map(show);
    assert.ok(images.some((i) => decoded.includes(i)), 'images with a hole still decode');
    assert.throws(() => new WalDecoder({ startLsn: base, blockSize: 3000 }), /block size 3000 is not a power of two/);
  });

  await t.test('one byte at a time through a record spanning pages', () => {
    const big = ref.findIndex((r) => r.totalLength > 50000);
    const to = ref[big + 1]!.endLsn - Number(base);
    const run = feed(wal, base, { to, chunk: () => 1 });
    assert.deepEqual(run.out.map(show), refText.slice(0, big + 2));
  });

  await t.test('starting at a record inside a page, or at a page inside a record', () => {
    const mid = 1234;
    const fromRecord = feed(wal, base, { from: ref[mid]!.lsn - Number(base), chunk: () => 7777 });
    assert.deepEqual(fromRecord.out.map(show), refText.slice(mid));
    const big = ref.findIndex((r) => r.totalLength > 50000);
    const pageInside = Number(((BigInt(ref[big]!.lsn) - base) / BigInt(PAGE) + 2n) * BigInt(PAGE));
    const fromPage = feed(wal, base, { from: pageInside, chunk: () => 5000 });
    assert.deepEqual(fromPage.out.map(show), refText.slice(big + 1), 'the tail of the spanning record is skipped');

    // reset() on a decoder in use: held bytes are dropped, decoding restarts there.
    const d = new WalDecoder({ startLsn: base });
    d.push(wal.subarray(0, 300_000));
    while (d.next()) {
      /* part of the stream */
    }
    d.reset(BigInt(ref[mid]!.lsn));
    assert.equal(d.inputLsn, BigInt(ref[mid]!.lsn));
    assert.equal(d.bufferedBytes, 0);
    d.push(wal.subarray(ref[mid]!.lsn - Number(base), ref[mid + 50]!.lsn - Number(base)));
    const again: string[] = [];
    for (let r = d.next(); r; r = d.next()) again.push(show(r));
    assert.deepEqual(again, refText.slice(mid, mid + 50));

    // A start that cannot be a record start is reported, then decoding resumes at the next page.
    const odd = BigInt(ref[mid]!.lsn) + 4n;
    const fromOdd = feed(wal, base, { from: Number(odd - base), chunk: () => 9000 });
    assert.ok(isDecodeError(fromOdd.out[0]!) && fromOdd.out[0].lsn === Number(odd), show(fromOdd.out[0]!));
    const nextPage = ((odd / BigInt(PAGE)) + 1n) * BigInt(PAGE);
    const firstAfter = ref.findIndex((r) => r.lsn >= Number(nextPage));
    assert.deepEqual(fromOdd.out.slice(1).map(show), refText.slice(firstAfter));
  });

  await t.test('zeros where WAL is not written yet: wait, then continue with the real bytes', () => {
    for (const cutRecord of [3000]) {
      // cut at a record start, and at the page start after a record
      const cuts = [ref[cutRecord]!.lsn - Number(base), Number(((BigInt(ref[cutRecord]!.lsn) - base) / BigInt(PAGE) + 1n) * BigInt(PAGE))];
      for (const cut of cuts) {
        const d = new WalDecoder({ startLsn: base });
        const got: string[] = [];
        const drain = (): void => {
          for (let r = d.next(); r; r = d.next()) got.push(show(r));
        };
        d.push(Buffer.concat([wal.subarray(0, cut), Buffer.alloc(PAGE * 2 - (cut % PAGE))]));
        drain();
        assert.ok(d.inputLsn <= base + BigInt(cut) && d.inputLsn >= base + BigInt(cut) - BigInt(PAGE), `rewound to the unwritten part (cut ${cut})`);
        const resumeAt = Number(d.inputLsn - base);
        d.push(wal.subarray(resumeAt, written));
        drain();
        assert.deepEqual(got, refText, `cut at ${formatLsn(base + BigInt(cut))}`);
      }
    }
  });

  await t.test('flipped bytes give DecodeErrors, never a throw or a loop, and decoding resumes', () => {
    const refByLsn = new Map(ref.map((r, i) => [r.lsn, refText[i]!]));
    // A window with the spanning record, so each iteration stays small; damage stays clear of its end.
    const window = Math.min(written, 1024 * 1024);
    const inWindow = ref.filter((x) => x.endLsn <= Number(base) + window);
    const r = rng(42);
    let errorsSeen = 0;
    for (let iter = 0; iter < 120; iter++) {
      const damaged = Buffer.from(wal.subarray(0, window));
      const flips: number[] = [];
      const n = 1 + Math.floor(r() * 3);
      for (let k = 0; k < n; k++) {
        let at = Math.floor(r() * (window - 256 * 1024));
        // A pageaddr made to look like an older segment's is how recycled segments look: the end of WAL, by design.
        // A raised xlp_tli looks like a newer timeline, after which the real pages are rejected; the next test covers xlp_tli.
        if (at % PAGE >= 4 && at % PAGE < 16) at -= at % PAGE;
        damaged[at]! ^= 1 << Math.floor(r() * 8);
        flips.push(at);
      }
      const run = feed(damaged, base, { chunk: () => 1 + Math.floor(r() * 40000), maxCalls: inWindow.length * 2 + window / PAGE + 100 });
      const errs = run.out.filter(isDecodeError);
      errorsSeen += errs.length;
      for (const rec of run.out) {
        if (isDecodeError(rec)) continue;
        assert.equal(show(rec), refByLsn.get(rec.lsn), `iteration ${iter}: a decoded record is not what PostgreSQL wrote (flips at ${flips})`);
      }
      // Everything after the damaged records and pages decodes again.
      let cutoff = 0n;
      for (const f of flips) {
        const lsn = base + BigInt(f);
        let c = ((lsn / BigInt(PAGE)) + 1n) * BigInt(PAGE);
        for (const rec of inWindow) if (rec.lsn <= lsn && lsn < rec.endLsn && rec.endLsn > c) c = BigInt(rec.endLsn);
        if (c > cutoff) cutoff = c;
      }
      const got = new Set(run.out.filter((x): x is WalRecord => !isDecodeError(x)).map((x) => x.lsn));
      const missing = inWindow.filter((x) => x.lsn >= cutoff && !got.has(x.lsn));
      assert.deepEqual(missing.map((x) => formatLsn(x.lsn)).slice(0, 3), [], `iteration ${iter}: records after the damage (flips at ${flips}, errors ${errs.map(show)})`);
      if (errs.length === 0) assert.equal(run.out.length, inWindow.length, `iteration ${iter}: no error, so nothing may be lost`);
    }
    assert.ok(errorsSeen > 100, `damage was reported (${errorsSeen} errors)`);
  });

  await t.test('a page whose timeline goes backwards is damage', () => {
    const damaged = Buffer.from(wal.subarray(0, written));
    const page = Number(((BigInt(ref[700]!.lsn) - base) / BigInt(PAGE) + 1n) * BigInt(PAGE));
    assert.equal(damaged.readUInt32LE(page + 4), 1);
    damaged.writeUInt32LE(0, page + 4);
    const run = feed(damaged, base, { chunk: () => 65536 });
    const errs = run.out.filter(isDecodeError);
    assert.equal(errs.length, 1, errs.map(show).join('\n'));
    assert.match(errs[0]!.message, /out-of-sequence timeline ID 0 \(after 1\)/);
    assert.equal(run.decoder.pageTimeline, 1);
    assert.equal((run.out.at(-1) as WalRecord).lsn, ref.at(-1)!.lsn, 'decoding resumed');
    // A raised id on one page: the page after it is rejected, then decoding goes on.
    const raised = Buffer.from(wal.subarray(0, written));
    raised.writeUInt32LE(5, page + 4);
    const run2 = feed(raised, base, { chunk: () => 65536 });
    assert.equal(run2.out.filter(isDecodeError).length, 1);
    assert.equal((run2.out.at(-1) as WalRecord).lsn, ref.at(-1)!.lsn, 'decoding resumed');
  });

  await t.test('a garbage record length is bounded by the bytes that arrived', () => {
    const damaged = Buffer.from(wal.subarray(0, written));
    const victim = ref[500]!.lsn - Number(base);
    damaged.writeUInt32LE(0x3fc00000, victim); // 1020 MiB
    const run = feed(damaged, base, { chunk: () => 65536 });
    const errs = run.out.filter(isDecodeError);
    assert.equal(errs.length, 1);
    assert.equal(errs[0]!.lsn, ref[500]!.lsn);
    assert.ok(run.decoder.bufferedBytes < 64 * 1024, 'nothing held after resync');
  });

  await t.test('truncated input: a prefix of the records, then null', () => {
    const r = rng(7);
    for (let i = 0; i < 20; i++) {
      const to = Math.floor(r() * Math.min(written, 2 * 1024 * 1024));
      const run = feed(wal, base, { to, chunk: () => 30000 });
      assert.ok(!run.out.some(isDecodeError));
      assert.deepEqual(run.out.map(show), refText.slice(0, run.out.length));
      assert.equal(run.decoder.next(), null);
      const nextRef = ref[run.out.length];
      if (nextRef) assert.ok(nextRef.endLsn > Number(base) + to, 'the next record was indeed incomplete');
    }
  });

  await t.test('XLP_FIRST_IS_OVERWRITE_CONTRECORD: an aborted record is skipped', () => {
    // Make the WAL PostgreSQL writes after losing the tail of a record: the next page says
    // OVERWRITE_CONTRECORD and starts with an XLOG_OVERWRITE_CONTRECORD record.
    const big = ref.findIndex((r) => r.totalLength > 50000);
    const aborted = ref[big]!;
    const page = Number(((BigInt(aborted.lsn) - base) / BigInt(PAGE) + 1n) * BigInt(PAGE));
    const buf = Buffer.alloc(page + PAGE * 2);
    wal.copy(buf, 0, 0, page + 24);
    buf.writeUInt16LE(0x0008, page + 2); // xlp_info: XLP_FIRST_IS_OVERWRITE_CONTRECORD
    buf.writeUInt32LE(0, page + 16); // xlp_rem_len
    const rec = page + 24;
    const main = Buffer.alloc(16);
    main.writeBigUInt64LE(BigInt(aborted.lsn), 0);
    const totLen = 24 + 2 + main.length;
    buf.writeUInt32LE(totLen, rec);
    buf.writeUInt32LE(0, rec + 4);
    buf.writeBigUInt64LE(BigInt(ref[big - 1]!.lsn), rec + 8); // xl_prev: the last complete record
    buf[rec + 16] = 0xd0; // XLOG_OVERWRITE_CONTRECORD
    buf[rec + 17] = 0; // RM_XLOG_ID
    buf[rec + 24] = 255; // XLR_BLOCK_ID_DATA_SHORT
    buf[rec + 25] = main.length;
    main.copy(buf, rec + 26);
    const crc = crc32c(Buffer.concat([buf.subarray(rec + 24, rec + totLen), buf.subarray(rec, rec + 20)]));
    buf.writeUInt32LE(crc, rec + 20);
    const run = feed(buf, base, { chunk: () => 3000 });
    assert.ok(!run.out.some(isDecodeError), run.out.filter(isDecodeError).map(show).join('\n'));
    const recs = run.out as WalRecord[];
    assert.deepEqual(recs.slice(0, big).map(show), refText.slice(0, big));
    assert.equal(recs.length, big + 1);
    assert.equal(recs[big]!.lsn, Number(base) + rec);
    assert.equal(recs[big]!.info, 0xd0);
  });
});
