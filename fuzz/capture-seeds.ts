// Captures real WAL from embedded PostgreSQL servers as wal-decoder fuzz seeds
// (fuzz/corpus/wal-decoder/pg<N>-*.bin): heap and index changes, full-page
// images after a checkpoint, relation create/truncate/drop, commits.
//   node --import tsx fuzz/capture-seeds.ts [VERSION...]    (default 13 and 17)
// Each seed starts at a page boundary in the middle of that activity and is 48 KiB.
import { mkdirSync, openSync, readSync, closeSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { withPrimary } from '../src/embedded/index.ts';
import { parseLsn } from '../src/lsn.ts';
import { segmentName } from '../src/wal/segments.ts';
import { walInput } from './targets/wal-decoder.ts';

const SEG = 16 * 1024 * 1024;
const SEED_BYTES = 48 * 1024;
const out = fileURLToPath(new URL('./corpus/wal-decoder/', import.meta.url));
mkdirSync(out, { recursive: true });
const versions = process.argv.slice(2).map(Number);
for (const version of versions.length ? versions : [13, 17]) {
  await withPrimary(version, {}, async ({ primary }) => {
    const from = parseLsn(await primary.currentLsn());
    await primary.exec(`
      create table t (id int primary key, v text);
      insert into t select g, repeat('x', 50) from generate_series(1, 300) g;
      checkpoint;
      update t set v = 'y' where id % 7 = 0;
      create table gone (a int); insert into gone values (1); truncate gone; drop table gone;
      delete from t where id < 20;`);
    const to = parseLsn(await primary.currentLsn());
    await primary.exec('select pg_switch_wal()');
    // two seeds: the start of the activity, and its middle
    for (const [i, at] of [from, from + (to - from) / 2n].entries()) {
      const start = at - (at % 8192n);
      const segNo = start / BigInt(SEG);
      const fd = openSync(join(primary.dataDir, 'pg_wal', segmentName(1, segNo, SEG)), 'r');
      const n = Number(to - start) > SEED_BYTES ? SEED_BYTES : Math.max(8192, Number(to - start));
      const buf = Buffer.alloc(Math.min(n, SEG - Number(start % BigInt(SEG))));
      readSync(fd, buf, 0, buf.length, Number(start % BigInt(SEG)));
      closeSync(fd);
      const file = join(out, `pg${version}-${i}.bin`);
      writeFileSync(file, walInput(start, 24, i + 1, buf));
      console.log(`${file}: ${buf.length} bytes from ${start.toString(16)}`);
    }
  });
}
