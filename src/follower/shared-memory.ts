// shared_buffers without SQL. While PostgreSQL recovers it answers no query,
// but its main shared memory segment is mapped into every one of its
// processes, and shared_buffers is nearly all of it: on PostgreSQL 13-18 the
// segment is ~1.04 x shared_buffers (the buffer descriptors, wal_buffers at
// 1/32 of it) plus ~57 KB per backend slot (lock tables, PGPROC; the settings
// that size them are in pg_control): 20.6 MB at 16 MB, 139-144 MB at 128 MB,
// 1070-1080 MB at 1 GB with max_connections = 100, ~23 MB more at 500. Read
// from /proc/<pid>/maps, which needs what /proc/<pid>/io needs (the same
// user, or CAP_SYS_PTRACE).
import { readFile } from 'node:fs/promises';

/** Per buffer: the page, its descriptor, lookup entry and the other per-buffer arrays. */
const PER_PAGE_FACTOR = 1.026;
/** wal_buffers by default: 1/32 of shared_buffers, at most 16 MB. */
const WAL_SHARE = 1 / 32;
const WAL_MAX = 16 * 1024 * 1024;
/** Per backend slot, less the lock tables: PGPROC and the other per-process arrays. */
const PER_BACKEND_BYTES = 36 * 1024;
/** Per lock table entry (the lock and process-lock hash tables): 64 a backend by default. */
const PER_LOCK_BYTES = 340;
/** What the per-backend figures overstate at few backends (the fit through 100 and 500 connections). */
const BACKEND_OFFSET = 3 * 1024 * 1024;

/** The settings pg_control records that size shared memory besides shared_buffers. */
export interface BackendSettings {
  maxConnections: number;
  maxWorkerProcesses: number;
  maxWalSenders: number;
  maxPreparedXacts: number;
  maxLocksPerXact: number;
}

// The main segment by shared_memory_type: mmap (default: anonymous shared,
// shown as /dev/zero), the same in huge pages, or sysv. Dynamic shared memory
// (/dev/shm/PostgreSQL.*) is not shared_buffers.
const MAIN_SEGMENT = /^\/dev\/zero \(deleted\)$|^\/anon_hugepage \(deleted\)$|^\/SYSV[0-9a-fA-F]+ \(deleted\)$/;

/** The largest shared mapping that can be the main segment, in bytes; null when there is none. */
export function mainSegmentBytes(maps: string): number | null {
  let best = 0;
  for (const line of maps.split('\n')) {
    // start-end perms offset dev inode [path]
    const m = /^([0-9a-f]+)-([0-9a-f]+) [r-][w-][x-]s \S+ \S+ \d+\s+(.*)$/.exec(line);
    if (!m || !MAIN_SEGMENT.test(m[3]!.trim())) continue;
    const bytes = Number(BigInt(`0x${m[2]}`) - BigInt(`0x${m[1]}`));
    if (bytes > best) best = bytes;
  }
  return best > 0 ? best : null;
}

/**
 * shared_buffers in pages, from the main segment's size less what the
 * backend slots take: within -3 % to +4 % on 13-17 from 16 MB to 1 GB at
 * 100 to 500 connections; on 18 (its asynchronous I/O tables) +1 % at 1 GB
 * to +18 % at 16 MB; high by wal_buffers set above its default.
 */
export function sharedBufferPagesFromSegment(segmentBytes: number, blockSize: number, s: BackendSettings): number {
  // MaxBackends: connections, autovacuum launcher and workers (3 by default), background workers, WAL senders.
  const backends = s.maxConnections + 4 + s.maxWorkerProcesses + s.maxWalSenders;
  const fixed = Math.max(0, backends * PER_BACKEND_BYTES + (backends + s.maxPreparedXacts) * s.maxLocksPerXact * PER_LOCK_BYTES - BACKEND_OFFSET);
  const rest = Math.max(0, segmentBytes - fixed);
  let bytes = rest / (PER_PAGE_FACTOR + WAL_SHARE);
  if (bytes * WAL_SHARE > WAL_MAX) bytes = (rest - WAL_MAX) / PER_PAGE_FACTOR;
  return Math.max(16, Math.floor(bytes / blockSize));
}

/** shared_buffers in pages of the PostgreSQL that process `pid` belongs to; null when its maps cannot be read. */
export async function readSharedBufferPages(pid: number, blockSize: number, settings: BackendSettings, procDir = '/proc'): Promise<number | null> {
  let maps: string;
  try {
    maps = await readFile(`${procDir}/${pid}/maps`, 'utf8');
  } catch {
    return null;
  }
  const bytes = mainSegmentBytes(maps);
  return bytes === null ? null : sharedBufferPagesFromSegment(bytes, blockSize, settings);
}
