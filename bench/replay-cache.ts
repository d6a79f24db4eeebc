// Page-cache control for the standby's relation files: evict them (cold
// variants), read them in (the cached variant), and measure residency.
import { execFileSync, spawnSync } from 'node:child_process';
import { closeSync, openSync, readdirSync, readSync, statSync } from 'node:fs';
import { join } from 'node:path';

/** Regular files under the data directory's relation folders (base/, global/, pg_tblspc targets). */
export function relationFiles(dataDir: string): string[] {
  const out: string[] = [];
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (entry.isFile()) out.push(path);
    }
  };
  for (const sub of ['base', 'global']) walk(join(dataDir, sub));
  return out;
}

/**
 * Evicts the files from the page cache. Writes dirty pages back first
 * (fsync=off leaves them dirty; DONTNEED skips dirty pages), then asks for
 * POSIX_FADV_DONTNEED on each file through dd (iflag=nocache count=0).
 * Only these files: the rest of the machine (other users, the WAL the
 * walsender reads) keeps its cache, so variants differ only in the table.
 */
export function evict(files: string[]): void {
  execFileSync('sync');
  // One shell for all files keeps this to a single spawn.
  const script = 'for f in "$@"; do dd if="$f" iflag=nocache count=0 status=none 2>/dev/null; done';
  for (let i = 0; i < files.length; i += 500) {
    const r = spawnSync('sh', ['-c', script, 'evict', ...files.slice(i, i + 500)], { stdio: ['ignore', 'ignore', 'pipe'] });
    if (r.status !== 0) throw new Error(`evicting standby files from the page cache failed: ${r.stderr?.toString()}`);
  }
}

/** Reads every file once so its pages are resident (the cached variant). */
export function warm(files: string[]): void {
  const buf = Buffer.allocUnsafe(1 << 20);
  for (const f of files) {
    let fd: number;
    try {
      fd = openSync(f, 'r');
    } catch {
      continue; // a file dropped by replay meanwhile
    }
    try {
      let pos = 0;
      for (;;) {
        const n = readSync(fd, buf, 0, buf.length, pos);
        if (n <= 0) break;
        pos += n;
      }
    } finally {
      closeSync(fd);
    }
  }
}

/** Resident and total bytes of the files, per fincore(1). */
export function residency(files: string[]): { residentBytes: number; totalBytes: number } {
  let totalBytes = 0;
  const existing: string[] = [];
  for (const f of files) {
    try {
      totalBytes += statSync(f).size;
      existing.push(f);
    } catch {
      // gone
    }
  }
  let residentBytes = 0;
  for (let i = 0; i < existing.length; i += 500) {
    const out = execFileSync('fincore', ['--bytes', '--noheadings', '--raw', '--output', 'RES', ...existing.slice(i, i + 500)], { encoding: 'utf8' });
    for (const line of out.split('\n')) if (line.trim()) residentBytes += Number(line.trim());
  }
  return { residentBytes, totalBytes };
}
