// What one WILLNEED hint costs the CPU that makes it, through the agent's own
// call (src/prefault/willneed.ts), without the storage model: for a page not
// in the page cache the kernel allocates it and starts its read in the
// caller's system call; for a cached page it only looks it up. The first is
// the floor of any prefetcher's CPU per uncached page (PostgreSQL's own
// recovery_prefetch pays it too, and replay pays it in its pread when nobody
// prefetches): at the ~4 000 uncached pages per MB of a random-update FPW-off
// WAL, it sets how little of a core 10 MB/s can cost.
//   node --import tsx bench/hint-cost.ts [pages, default 20000]
import { closeSync, fsyncSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadWillneed } from '../src/prefault/willneed.ts';

const PAGE = 8192;
const pages = Number(process.argv[2] ?? 20_000);
if (!Number.isInteger(pages) || pages < 100) throw new Error(`pages ${process.argv[2]}: expected an integer >= 100`);
const FILE_PAGES = pages * 4;
const BATCH = 64; // hinted pages spread over 4x as many: random, rarely adjacent
const willneed = loadWillneed();
if (!('hint' in willneed)) {
  console.error(`cannot measure here: ${willneed.error}`);
  process.exit(1);
}
const koffi = createRequire(import.meta.url)('koffi') as typeof import('koffi');
const fadvise = koffi.load(null).func('int posix_fadvise(int fd, int64_t offset, int64_t len, int advice)') as (fd: number, o: number, l: number, a: number) => number;
const POSIX_FADV_DONTNEED = 4;

const dir = mkdtempSync(join(tmpdir(), 'pgpf-hint-cost-'));
const file = join(dir, 'relation');
try {
  const w = openSync(file, 'w');
  const chunk = Buffer.alloc(1024 * PAGE, 7);
  for (let p = 0; p < FILE_PAGES; p += 1024) writeSync(w, chunk, 0, Math.min(1024, FILE_PAGES - p) * PAGE);
  fsyncSync(w);
  closeSync(w);
  const fd = openSync(file, 'r');
  // Distinct pages in a random order (a fixed-seed shuffle).
  const order = Array.from({ length: FILE_PAGES }, (_, i) => i);
  let seed = 42;
  for (let i = order.length - 1; i > 0; i--) {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    const j = seed % (i + 1);
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  const picked = order.slice(0, pages);
  const hint = willneed.hint;
  const rounds: { uncached: number; cached: number; wallUncached: number }[] = [];
  for (let r = 0; r < 5; r++) {
    if (fadvise(fd, 0, 0, POSIX_FADV_DONTNEED) !== 0) throw new Error('posix_fadvise(DONTNEED) failed: cannot evict the test file');
    await new Promise((res) => setTimeout(res, 200));
    // In batches of BATCH with a pause between (the reads complete), as the agent's hints come
    // at a steady rate: one burst of thousands would fill the device's queue, and the calls
    // would sleep for free request slots (CPU for the context switches, wall time for the wait).
    let cpu = 0;
    let wall = 0;
    for (let i = 0; i < picked.length; i += BATCH) {
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      for (let j = i; j < Math.min(picked.length, i + BATCH); j++) hint(fd, picked[j]! * PAGE, PAGE);
      wall += performance.now() - t0;
      const d0 = process.cpuUsage(c0);
      cpu += d0.user + d0.system;
      await new Promise((res) => setTimeout(res, 5));
    }
    const uncached = cpu / pages;
    const wallUncached = (wall * 1000) / pages;
    await new Promise((res) => setTimeout(res, 1000)); // the reads complete
    const c = process.cpuUsage();
    for (const p of picked) hint(fd, p * PAGE, PAGE);
    const d = process.cpuUsage(c);
    rounds.push({ uncached, cached: (d.user + d.system) / pages, wallUncached });
  }
  closeSync(fd);
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
  const un = median(rounds.map((x) => x.uncached));
  const ca = median(rounds.map((x) => x.cached));
  console.log(`WILLNEED hint, ${pages} random pages of a ${(FILE_PAGES * PAGE) / 1048576} MiB file (uncached: ${BATCH} at a time, 5 ms apart), median of 5 rounds (process CPU, user + system):`);
  console.log(`| page | CPU us per hint | wall us per hint | % of a core at 40 000 hints/s (10 MB/s of random-update FPW-off WAL) |`);
  console.log(`|---|---:|---:|---:|`);
  console.log(`| not cached (the kernel starts its read) | ${un.toFixed(2)} | ${median(rounds.map((x) => x.wallUncached)).toFixed(2)} | ${((un * 40_000) / 1e4).toFixed(1)} % |`);
  console.log(`| cached | ${ca.toFixed(2)} | | ${((ca * 40_000) / 1e4).toFixed(1)} % |`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
