// `pg-prefaulter decode` on a real primary's pg_wal: the ndjson line format exactly,
// --start/--end, --stats (in one pass and in parts on worker threads), text, damaged
// input (exit 1) and bad usage (exit 2).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { selectedVersions, withPrimary } from './harness/index.ts';
import { FORK_NAMES, WalDecoder, formatLsn, isDecodeError, listSegments, type WalRecord } from '../src/wal/index.ts';
import { parallelStats, statsPart } from '../src/cli/decode-parallel.ts';
import { RmgrCounts } from '../src/cli/decode-stats.ts';

const CLI = fileURLToPath(new URL('../bin/pg-prefaulter.js', import.meta.url));
const SEG = 16n * 1024n * 1024n;

function run(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, 'decode', ...args], { maxBuffer: 1 << 30 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

const NDJSON_LINE =
  /^\{"lsn":"[0-9A-F]+\/[0-9A-F]+","rmgr":"[A-Za-z0-9]+","info":\d+,"len":\d+,"blocks":\[(\{"id":\d+,"spc":\d+,"db":\d+,"rel":\d+,"fork":"(main|fsm|vm|init)","blk":\d+,"image":(true|false),"apply":(true|false),"willInit":(true|false)\},?)*\]\}$/;

function expectedLine(r: WalRecord): string {
  return JSON.stringify({
    lsn: formatLsn(r.lsn),
    rmgr: r.rmgrName,
    info: r.info,
    len: r.totalLength,
    blocks: r.blocks.map((b) => ({ id: b.id, spc: b.spcOid, db: b.dbOid, rel: b.relNumber, fork: FORK_NAMES[b.fork], blk: b.block, image: b.hasImage, apply: b.applyImage, willInit: b.willInit })),
  });
}

const version = selectedVersions().at(-1)!;

test(`PG ${version}: pg-prefaulter decode`, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'wal-cli-'));
  try {
    await withPrimary(version, { name: 'wal-cli' }, async ({ primary: p }) => {
      await p.exec(`create table c (id int primary key, pad text); insert into c select g, repeat('c', 200) from generate_series(1, 3000) g;`);
      await p.exec('checkpoint');
      await p.exec(`update c set pad = 'u' where id % 5 = 0; select pg_logical_emit_message(false, 'x', repeat('x', 20000));`);
      await p.exec('select pg_switch_wal()');
      await p.exec(`insert into c values (0, 'after')`);
      // a stable copy of the segments (the server keeps writing)
      for (const s of await listSegments(join(p.dataDir, 'pg_wal'))) copyFileSync(s.path, join(dir, s.path.split('/').at(-1)!));
    });
    const segs = await listSegments(dir);
    const decoder = new WalDecoder({ startLsn: segs[0]!.segNo * SEG });
    const records: WalRecord[] = [];
    for (const s of segs) {
      decoder.push(readFileSync(s.path));
      for (let r = decoder.next(); r; r = decoder.next()) {
        assert.ok(!isDecodeError(r));
        records.push(r);
      }
      if (decoder.inputLsn < (s.segNo + 1n) * SEG) break;
    }
    assert.ok(records.length > 1000);

    await t.test('ndjson: one line per record, exactly the specified fields in order', async () => {
      const { code, stdout, stderr } = await run(['--format', 'ndjson', dir]);
      assert.equal(code, 0, stderr);
      const lines = stdout.trimEnd().split('\n');
      assert.equal(lines.length, records.length);
      for (const l of lines) assert.match(l, NDJSON_LINE);
      assert.deepEqual(lines, records.map(expectedLine));
      assert.ok(lines.some((l) => l.includes('"image":true')));
    });

    await t.test('--start and --end select a range; segment files as paths', async () => {
      const a = records[300]!;
      const b = records[900]!;
      const { code, stdout, stderr } = await run(['--start', formatLsn(a.lsn), `--end=${formatLsn(b.lsn)}`, '--format=ndjson', ...segs.map((s) => s.path)]);
      assert.equal(code, 0, stderr);
      assert.deepEqual(stdout.trimEnd().split('\n'), records.slice(300, 900).map(expectedLine));
    });

    await t.test('--stats and text', async () => {
      const stats = await run(['--stats', dir]);
      assert.equal(stats.code, 0, stats.stderr);
      const total = stats.stdout.split('\n').find((l) => l.startsWith('Total'));
      assert.ok(total, stats.stdout);
      assert.equal(Number(total.split(/\s+/)[1]), records.length);
      const heap = stats.stdout.split('\n').find((l) => l.startsWith('Heap '));
      assert.equal(Number(heap?.split(/\s+/)[1]), records.filter((r) => r.rmgrName === 'Heap').length);
      const text = await run([dir]);
      assert.equal(text.code, 0, text.stderr);
      const lines = text.stdout.trimEnd().split('\n');
      assert.equal(lines.length, records.length);
      assert.match(lines[0]!, new RegExp(`^rmgr: ${records[0]!.rmgrName} +len: +${records[0]!.totalLength}, .*lsn: ${formatLsn(records[0]!.lsn)}`));
    });

    await t.test('--stats in parts on worker threads counts what one pass counts; after damage, one pass again', async () => {
      assert.ok(segs.length >= 2, `${segs.length} segment files`);
      const range = { files: segs, segSize: Number(SEG), blockSize: 8192, start: segs[0]!.segNo * SEG, end: null };
      const whole = await statsPart(range);
      assert.equal(whole.outcome.problems, 0);
      const onePass = new RmgrCounts();
      onePass.merge(whole.rows);
      // every file its own part: the last ones may be preallocated (past the end of WAL)
      const parts = await parallelStats(range, segs.length);
      assert.ok(parts, 'the parts join up');
      assert.deepEqual(parts.table(), onePass.table());
      const [one, two] = await Promise.all([run(['--stats', '--jobs', '1', dir]), run(['--stats', '--jobs', '2', dir])]);
      assert.equal(two.code, 0, two.stderr);
      assert.equal(two.stdout, one.stdout);

      const damagedDir = join(dir, 'damaged-parts');
      mkdirSync(damagedDir);
      for (const s of segs) copyFileSync(s.path, join(damagedDir, s.path.split('/').at(-1)!));
      const first = join(damagedDir, segs[0]!.path.split('/').at(-1)!);
      const bytes = readFileSync(first);
      const victim = records.find((r) => r.lsn >= segs[0]!.segNo * SEG + 100_000n)!;
      bytes[Number(BigInt(victim.lsn) - segs[0]!.segNo * SEG) + 30]! ^= 0xff;
      writeFileSync(first, bytes);
      const damaged = { ...range, files: await listSegments(damagedDir) };
      assert.equal(await parallelStats(damaged, segs.length), null, 'damage: no counts from parts');
      const [oneD, twoD] = await Promise.all([run(['--stats', '--jobs', '1', damagedDir]), run(['--stats', '--jobs', '2', damagedDir])]);
      assert.equal(oneD.code, 1, oneD.stderr);
      assert.deepEqual(twoD, oneD, 'the same report as one pass');
    });

    await t.test('damaged WAL: errors on stderr with their LSN, exit 1, records after the damage still printed', async () => {
      const damagedDir = join(dir, 'damaged');
      const first = segs[0]!;
      const bytes = readFileSync(first.path);
      const victim = records.find((r) => r.lsn >= first.segNo * SEG + 100_000n)!;
      const at = Number(BigInt(victim.lsn) - first.segNo * SEG) + 30;
      bytes[at]! ^= 0xff;
      rmSync(damagedDir, { recursive: true, force: true });
      mkdirSync(damagedDir);
      writeFileSync(join(damagedDir, first.path.split('/').at(-1)!), bytes);
      for (const s of segs.slice(1)) copyFileSync(s.path, join(damagedDir, s.path.split('/').at(-1)!));
      const { code, stdout, stderr } = await run(['--format', 'ndjson', damagedDir]);
      assert.equal(code, 1);
      assert.match(stderr, new RegExp(`error at ${formatLsn(victim.lsn).replace('/', '\\/')}: `));
      const lines = stdout.trimEnd().split('\n');
      assert.ok(lines.includes(expectedLine(records.at(-1)!)), 'decoding resumed after the damage');
    });

    await t.test('a segment file cut inside a record: exit 1 naming the record', async () => {
      const cutDir = join(dir, 'cut');
      mkdirSync(cutDir);
      const first = segs[0]!;
      const victim = records.find((r) => r.lsn >= first.segNo * SEG + 200_000n)!;
      const keep = Number(BigInt(victim.lsn) - first.segNo * SEG) + 10;
      writeFileSync(join(cutDir, first.path.split('/').at(-1)!), readFileSync(first.path).subarray(0, keep));
      const { code, stdout, stderr } = await run(['--format', 'ndjson', cutDir]);
      assert.equal(code, 1);
      assert.match(stderr, new RegExp(`error at ${formatLsn(victim.lsn).replace('/', '\\/')}: the WAL given ends inside a record`));
      assert.deepEqual(stdout.trimEnd().split('\n'), records.filter((r) => r.lsn < victim.lsn).map(expectedLine));
    });

    await t.test('bad usage exits 2 naming the bad argument', async () => {
      const cases: [string[], RegExp][] = [
        [['--format', 'xml', dir], /--format "xml"/],
        [['--start', 'nonsense', dir], /--start: invalid LSN "nonsense"/],
        [['--end'], /--end needs a value/],
        [['--bogus', dir], /unknown option "--bogus"/],
        [['--block-size', '3000', dir], /--block-size "3000": use 1024, 2048/],
        [['--stats', '--jobs', '0', dir], /--jobs "0": use a whole number from 1 to 64/],
        [[], /no PATH given/],
        [[join(dir, 'missing')], /cannot read ".*missing"/],
        [['--start', '0/2000000', '--end', '0/1000000', dir], /--end 0\/1000000 is not after --start 0\/2000000/],
      ];
      const results = await Promise.all(cases.map(([args]) => run(args)));
      results.forEach((r, i) => {
        assert.equal(r.code, 2, `${cases[i]![0].join(' ')}: ${r.stderr}`);
        assert.match(r.stderr, cases[i]![1]);
        assert.equal(r.stdout, '');
      });
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
