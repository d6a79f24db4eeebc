// The fd cache on real files: bounded, read-only (never creates), missing
// files counted and remembered briefly, no fd closed under a reader, and the
// process's fd count back to baseline after closeAll().
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, fstatSync, mkdtempSync, readdirSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileHandles, blockFit, defaultFileCapacity, openFileSoftLimit, type OpenFile } from '../src/prefault/file-handles.ts';
import { until } from './helpers/until.ts';

/** Our fds on files under dir (other tests' fds closing on the threadpool do not count). */
function fdCount(dir: string): number {
  let n = 0;
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      if (readlinkSync(`/proc/self/fd/${fd}`).startsWith(dir + '/')) n++;
    } catch {
      // closed while we looked
    }
  }
  return n;
}

function withFiles(n: number, fn: (paths: string[], dir: string) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'pg-prefaulter-fds-'));
  const paths = Array.from({ length: n }, (_, i) => join(dir, String(16384 + i)));
  for (const p of paths) writeFileSync(p, Buffer.alloc(8192 * 4, 1));
  return fn(paths, dir).finally(() => rmSync(dir, { recursive: true, force: true }));
}

async function acquire(h: FileHandles, path: string, rel = 1): Promise<OpenFile | null> {
  return await h.acquire(path, 1663, 5, rel);
}

test('the soft RLIMIT_NOFILE is read from /proc and leaves headroom', () => {
  const soft = openFileSoftLimit();
  assert.equal(soft, Number(execFileSync('sh', ['-c', 'ulimit -Sn'], { encoding: 'utf8' }).trim()));
  const cap = defaultFileCapacity(soft);
  assert.ok(cap < soft! && cap >= soft! / 2, `capacity ${cap} of ${soft}`);
  assert.equal(new FileHandles({ maxOpenFiles: 10 }).capacity, 10);
  assert.equal(new FileHandles({ maxOpenFiles: 10 ** 9 }).capacity, cap, 'a configured max above the limit is clamped');
});

test('bounded LRU: capacity respected, hits counted, fds back to baseline after closeAll', async () => {
  await withFiles(10, async (paths, dir) => {
    const baseline = fdCount(dir);
    const h = new FileHandles({ maxOpenFiles: 3 });
    for (const p of paths) {
      const f = (await acquire(h, p))!;
      assert.equal(fstatSync(f.fd).size, 8192 * 4);
      assert.equal(f.size, 8192 * 4);
      h.release(f);
    }
    // Evicted fds close asynchronously (on the threadpool): wait for the closes, however busy the machine.
    await until('the evicted fds to close', () => h.stats.open <= 3);
    assert.equal(h.stats.open, 3);
    assert.equal(fdCount(dir), baseline + 3);
    assert.equal(h.stats.evictions, 7);
    const again = (await acquire(h, paths[9]!))!;
    h.release(again);
    assert.equal(h.stats.hits, 1, 'the most recent file is still open');
    await h.closeAll();
    assert.equal(h.stats.open, 0);
    assert.equal(fdCount(dir), baseline);
  });
});

test('a file being read is not closed by eviction or closeAll until released', async () => {
  await withFiles(6, async (paths, dir) => {
    const baseline = fdCount(dir);
    const h = new FileHandles({ maxOpenFiles: 1 });
    // Many concurrent acquires of several files through a one-fd cache.
    const got = await Promise.all(paths.flatMap((p) => [acquire(h, p), acquire(h, p), acquire(h, p)]));
    for (const f of got) assert.equal(fstatSync(f!.fd).size, 8192 * 4, `${f!.path} still open while held`);
    const closing = h.closeAll();
    for (const f of got) assert.equal(fstatSync(f!.fd).size, 8192 * 4, 'closeAll waits for holders');
    for (const f of got) h.release(f!);
    await closing;
    assert.equal(h.stats.open, 0);
    assert.equal(fdCount(dir), baseline);
  });
});

test('a missing file is null, counted, remembered briefly, and never created', async () => {
  await withFiles(1, async (_paths, dir) => {
    const gone = join(dir, '99999');
    const h = new FileHandles({ missingTtlMs: 50 });
    assert.equal(await acquire(h, gone), null);
    assert.equal(h.stats.missing, 1);
    assert.equal(existsSync(gone), false, 'open never creates');
    assert.equal(h.isMissing(gone, performance.now()), true);
    // isMissing takes the clock as an argument: ask as of just past the TTL.
    assert.equal(h.isMissing(gone, performance.now() + 60), false, 'forgotten after the TTL');
    writeFileSync(gone, Buffer.alloc(8192));
    const f = await acquire(h, gone);
    assert.ok(f, 'found once it exists');
    h.release(f);
    await h.closeAll();
  });
});

test('closeRelation closes every fork and segment of that relation only', async () => {
  await withFiles(0, async (_p, dir) => {
    const files = ['16384', '16384_fsm', '16384.1', '16385'].map((n) => join(dir, n));
    for (const p of files) writeFileSync(p, Buffer.alloc(8192));
    const h = new FileHandles();
    for (const p of files) h.release((await h.acquire(p, 1663, 5, p.includes('16385') ? 16385 : 16384))!);
    h.closeRelation(1663, 5, 16384);
    h.closeRelation(1663, 6, 16385); // other database: untouched
    // Which handles are cached changes at once; the close(2) calls finish later.
    assert.deepEqual(files.filter((p) => h.cached(p) !== undefined), [files[3]]);
    await until('the closes of relation 16384 to finish', () => h.stats.open === 1);
    assert.equal(h.stats.open, 1);
    h.closeDatabase(5);
    await h.closeAll();
    assert.equal(h.stats.open, 0);
  });
});

test('a relation (or database) dropped while an open of its file is under way: the fd is not kept, and closes on release', async () => {
  await withFiles(0, async (_p, dir) => {
    const fsm = join(dir, '16384_fsm');
    const other = join(dir, '16390');
    for (const p of [fsm, other]) writeFileSync(p, Buffer.alloc(8192));
    const h = new FileHandles();
    // A queued read's open runs on the threadpool; replay passes the DROP before it completes.
    const opening = h.acquire(fsm, 1663, 5, 16384);
    const openingOther = h.acquire(other, 1663, 7, 16390);
    assert.ok(opening instanceof Promise && openingOther instanceof Promise, 'both opens are asynchronous');
    h.closeRelation(1663, 5, 16384);
    h.closeDatabase(7);
    const f = await opening;
    const g = await openingOther;
    assert.ok(f !== null && g !== null, 'the files still existed when opened');
    assert.equal(h.cached(fsm), undefined, 'the dropped relation\'s fd is not cached');
    assert.equal(h.cached(other), undefined, 'the dropped database\'s fd is not cached');
    // The reader finishes with it: the fd closes then, nothing stays open.
    h.release(f!);
    h.release(g!);
    await until('the fds of the dropped relation and database to close', () => h.stats.open === 0 && fdCount(dir) === 0);
    await h.closeAll();
  });
});

test('blockFit: missing, inside the size, past a fresh size, past a stale size (recheck)', () => {
  const file = { path: 'x', fd: -1, size: 8192 * 2, sizeAt: 1000, refs: 0, closing: false, spcOid: 1663, dbOid: 5, relNumber: 1 };
  assert.equal(blockFit(null, 0, 8192, 1000), 'missing_file');
  assert.equal(blockFit(file, 8192, 8192, 1e9), 'ok', 'the last block inside the size');
  assert.equal(blockFit(file, 8192 * 2, 8192, 1100), 'beyond_eof', 'the size was read 100 ms ago');
  assert.equal(blockFit(file, 8192 * 2, 8192, 1000 + 60_000), 'recheck', 'the size is a minute old: the file may have grown');
});
