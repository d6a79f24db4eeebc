// The decode command's reader: segment files as ordered pieces with several reads in
// flight; every byte once, in order; errors in order; no fd left open.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SegmentPieces, type SegmentPiece } from '../src/cli/segment-pieces.ts';
import type { SegmentFile } from '../src/wal/index.ts';

const MiB = 1024 * 1024;
/** Our fds open on files under dir (the process's other fds come and go: the runtime's own). */
function openUnder(dir: string): string[] {
  const held: string[] = [];
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      const target = readlinkSync(`/proc/self/fd/${fd}`);
      if (target.startsWith(dir + '/')) held.push(target);
    } catch {
      // closed since the listing (the listing's own fd, among others)
    }
  }
  return held;
}

function segments(dir: string, sizes: number[]): { files: SegmentFile[]; contents: Buffer[] } {
  const contents = sizes.map((n) => randomBytes(n));
  const files = contents.map((c, i) => {
    const path = join(dir, `00000001000000000000000${i}`);
    writeFileSync(path, c);
    return { path, timeline: 1, segNo: BigInt(i) } as SegmentFile;
  });
  return { files, contents };
}

async function readAll(pieces: SegmentPieces, keep: boolean): Promise<SegmentPiece[]> {
  const got: SegmentPiece[] = [];
  for (let p = await pieces.next(); p !== null; p = await pieces.next()) {
    got.push(keep ? { ...p, data: Buffer.from(p.data) } : p);
    pieces.reuse(p.buffer); // buffers come back and are read into again
  }
  return got;
}

test('every byte of every file once, in order, from the first offset on; last marks each file end; fds closed', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'segment-pieces-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const { files, contents } = segments(dir, [5 * MiB + 123, 1, 2 * MiB, 0, 3 * MiB]);
  const pieces = new SegmentPieces(files, 1000);
  assert.ok(openUnder(dir).length > 0, 'reads are in flight from the start (the check below can see an fd)');
  const got = await readAll(pieces, true);
  await pieces.close();
  assert.deepEqual(openUnder(dir), [], 'no fd left open');
  for (let i = 0; i < files.length; i++) {
    const mine = got.filter((p) => p.file === i);
    const from = i === 0 ? 1000 : 0;
    assert.deepEqual(Buffer.concat(mine.map((p) => p.data)), contents[i]!.subarray(from), `file ${i}`);
    assert.deepEqual(mine.map((p) => p.last), mine.map((_, k) => k === mine.length - 1), `file ${i}: last on its final piece only`);
    let at = from;
    for (const p of mine) {
      assert.equal(p.offset, at);
      at += p.data.length;
    }
  }
  assert.deepEqual(got.map((p) => p.file), [...got.map((p) => p.file)].sort((a, b) => a - b), 'files in order');
});

test('a file that cannot be read: the pieces before it, then its error naming it; close() afterwards leaves no fd', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'segment-pieces-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const { files, contents } = segments(dir, [3 * MiB, 3 * MiB]);
  rmSync(files[1]!.path);
  const pieces = new SegmentPieces(files, 0);
  const got: Buffer[] = [];
  await assert.rejects(async () => {
    for (let p = await pieces.next(); p !== null; p = await pieces.next()) got.push(Buffer.from(p.data));
  }, new RegExp(`cannot read ${files[1]!.path}: .*ENOENT`));
  assert.deepEqual(Buffer.concat(got), contents[0], 'the first file whole before the error');
  await pieces.close();
  assert.deepEqual(openUnder(dir), [], 'no fd left open');
});

test('closed early, with reads in flight: no fd left open', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'segment-pieces-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const { files } = segments(dir, [8 * MiB, 8 * MiB]);
  const pieces = new SegmentPieces(files, 0);
  assert.ok((await pieces.next()) !== null);
  assert.ok(openUnder(dir).length > 0, 'reads still in flight');
  await pieces.close();
  assert.deepEqual(openUnder(dir), []);
});
