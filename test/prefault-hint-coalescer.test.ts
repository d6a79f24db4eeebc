// One posix_fadvise per run of adjacent blocks: real files, the real hint (koffi), each call recorded.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { OpenFile } from '../src/prefault/file-handles.ts';
import { HintCoalescer } from '../src/prefault/hint-coalescer.ts';
import { loadWillneed } from '../src/prefault/willneed.ts';

const BLOCK = 8192;

test('adjacent blocks of one file go out as one hint; others, or past the cap, start a new one', async (t) => {
  const loaded = loadWillneed();
  if (!('hint' in loaded)) {
    t.skip(loaded.error);
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), 'hint-coalescer-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = (name: string): OpenFile => {
    const path = join(dir, name);
    writeFileSync(path, Buffer.alloc(64 * BLOCK));
    return { path, fd: openSync(path, 'r'), size: 64 * BLOCK, sizeAt: 0, refs: 0, closing: false, spcOid: 1663, dbOid: 5, relNumber: 1 };
  };
  const a = file('a');
  const b = file('b');
  t.after(() => {
    closeSync(a.fd);
    closeSync(b.fd);
  });
  const calls: [number, number, number][] = [];
  const outcomes: [number, string, number, number][] = [];
  const released: string[] = [];
  const c = new HintCoalescer(
    (fd, offset, length) => {
      calls.push([fd, offset, length]);
      return loaded.hint(fd, offset, length);
    },
    BLOCK,
    4 * BLOCK,
    (f) => {
      f.refs--;
      released.push(f.path);
    },
    (errno, f, offset, blocks) => outcomes.push([errno, f.path, offset, blocks]),
  );

  for (const blk of [10, 11, 12]) c.add(a, blk * BLOCK);
  c.add(a, 9 * BLOCK); // extends the run downwards
  assert.equal(calls.length, 0, 'the run is held while it grows');
  assert.equal(a.refs, 1, 'and its fd with it, so nothing closes it meanwhile');
  c.add(a, 13 * BLOCK); // the run is at the 4-block cap: a new one
  assert.deepEqual(calls, [[a.fd, 9 * BLOCK, 4 * BLOCK]]);
  c.add(b, 14 * BLOCK); // another file
  c.add(b, 20 * BLOCK); // not adjacent
  assert.deepEqual(calls.slice(1), [
    [a.fd, 13 * BLOCK, BLOCK],
    [b.fd, 14 * BLOCK, BLOCK],
  ]);
  assert.equal(a.refs, 0);
  assert.equal(b.refs, 1);

  await null; // the held run goes out once the caller yields
  assert.deepEqual(calls.at(-1), [b.fd, 20 * BLOCK, BLOCK]);
  assert.equal(b.refs, 0);
  assert.equal(c.calls, 4);
  assert.deepEqual(
    outcomes.map(([errno, path, offset, blocks]) => [errno, path.slice(-1), offset / BLOCK, blocks]),
    [
      [0, 'a', 9, 4],
      [0, 'a', 13, 1],
      [0, 'b', 14, 1],
      [0, 'b', 20, 1],
    ],
  );
  assert.deepEqual(released.map((p) => p.slice(-1)), ['a', 'a', 'b', 'b']);

  c.add(a, 0);
  c.flush();
  c.flush();
  assert.equal(c.calls, 5, 'flush() sends the held run once');
});

test('an errno from the kernel is reported with the run it was for', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'hint-coalescer-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const outcomes: number[][] = [];
  const EBADF = 9;
  const c = new HintCoalescer(() => EBADF, BLOCK, 1 << 20, () => {}, (errno, _f, offset, blocks) => outcomes.push([errno, offset, blocks]));
  const f: OpenFile = { path: join(dir, 'x'), fd: -1, size: 0, sizeAt: 0, refs: 0, closing: false, spcOid: 0, dbOid: 0, relNumber: 0 };
  c.add(f, 0);
  c.add(f, BLOCK);
  c.flush();
  assert.deepEqual(outcomes, [[EBADF, 0, 2]]);
});
