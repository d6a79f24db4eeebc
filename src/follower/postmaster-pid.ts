// PGDATA/postmaster.pid (miscadmin.h LOCK_FILE_LINE_*): the postmaster's PID,
// port and socket directory, and (PG 10+) its status on line 8, which says
// without a connection attempt whether PostgreSQL accepts connections yet.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * Line 8: PM_STATUS_STARTING/STOPPING/READY/STANDBY ("ready   " is padded).
 * "ready" means connections are accepted (a primary, or a hot standby once
 * consistent); "standby" means up but refusing connections (hot_standby = off:
 * what pg_ctl start waits for).
 */
export type PostmasterStatus = 'starting' | 'stopping' | 'ready' | 'standby';

export interface PostmasterPid {
  pid: number;
  dataDir: string;
  /** Postmaster start, from line 3 (epoch seconds). */
  startedAt: Date | null;
  port: number | null;
  /** First unix_socket_directories entry; null when there is none. */
  socketDir: string | null;
  listenAddress: string | null;
  /** null: the line is not written yet (the postmaster writes it after shared memory). */
  status: PostmasterStatus | null;
}

const STATUSES: readonly string[] = ['starting', 'stopping', 'ready', 'standby'];

/** Parse postmaster.pid text; null when it has no PID line (being written, or not a lock file). */
export function parsePostmasterPid(text: string): PostmasterPid | null {
  const lines = text.split('\n');
  const pid = Number(lines[0]?.trim());
  if (!Number.isInteger(pid) || pid === 0) return null;
  const num = (s: string | undefined) => (s && /^\d+$/.test(s.trim()) ? Number(s.trim()) : null);
  const start = num(lines[2]);
  const status = lines[7]?.trim() ?? '';
  return {
    // A single-user backend writes its PID negated.
    pid: Math.abs(pid),
    dataDir: lines[1] ?? '',
    startedAt: start === null ? null : new Date(start * 1000),
    port: num(lines[3]),
    socketDir: lines[4]?.trim() ? lines[4].trim() : null,
    listenAddress: lines[5]?.trim() ? lines[5].trim() : null,
    status: STATUSES.includes(status) ? (status as PostmasterStatus) : null,
  };
}

/** Read PGDATA/postmaster.pid; null when absent (PostgreSQL not running) or unreadable. */
export async function readPostmasterPid(dataDir: string): Promise<PostmasterPid | null> {
  try {
    return parsePostmasterPid(await readFile(join(dataDir, 'postmaster.pid'), 'utf8'));
  } catch {
    return null;
  }
}

/** Whether this status means PostgreSQL accepts connections (a primary or a consistent hot standby). */
export function acceptsConnections(pm: PostmasterPid | null): boolean {
  return pm?.status === 'ready';
}
