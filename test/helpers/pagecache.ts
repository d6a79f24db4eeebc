// Page-cache control for tests: evict a file's cached pages and ask which
// pages are resident, with the same tools an operator would use.
import { execFileSync } from 'node:child_process';
import { closeSync, openSync, readSync, fstatSync, fsyncSync } from 'node:fs';

/**
 * Drop a file's pages from the page cache (dd iflag=nocache count=0 ->
 * POSIX_FADV_DONTNEED). Dirty pages are not dropped, and the test servers
 * run with fsync=off, so write the file back first.
 */
export function evict(path: string): void {
  const fd = openSync(path, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  execFileSync('dd', [`if=${path}`, 'iflag=nocache', 'count=0', 'status=none']);
}

/** Bytes of a file resident in the page cache (util-linux fincore). */
export function residentBytes(path: string): number {
  const out = execFileSync('fincore', ['--bytes', '--noheadings', '--raw', '--output', 'RES', path], { encoding: 'utf8' });
  return Number(out.trim());
}

/** Reads a file fully (warms its pages). */
export function warm(path: string): void {
  const fd = openSync(path, 'r');
  try {
    const buf = Buffer.allocUnsafe(1 << 20);
    const size = fstatSync(fd).size;
    for (let off = 0; off < size; off += buf.length) readSync(fd, buf, 0, buf.length, off);
  } finally {
    closeSync(fd);
  }
}

/**
 * residentBytes once at least `bytes` are resident, or after `ms`: pages
 * hinted with posix_fadvise(WILLNEED) arrive asynchronously, after the hint.
 */
export async function residentBytesSettled(path: string, bytes: number, ms = 10_000): Promise<number> {
  const until = Date.now() + ms;
  let got = residentBytes(path);
  while (got < bytes && Date.now() < until) {
    await new Promise((r) => setTimeout(r, 50));
    got = residentBytes(path);
  }
  return got;
}
