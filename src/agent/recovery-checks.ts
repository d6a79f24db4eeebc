// When the recovery prefetch runs, and when what it reads is not the
// cluster it started on any more: decided from PGDATA and /proc alone
// (follower/recovery-progress.ts), before PostgreSQL accepts connections.
import type { RecoveryProgress } from '../follower/recovery-progress.ts';

/** The copy of the cluster a recovery pipeline reads. */
export interface ReadingFrom {
  pgdata: string;
  systemIdentifier: bigint;
  /** pg_control's device:inode: another file there is another copy of the cluster (a new base backup). */
  controlFileId: string | undefined;
}

/** Whether PostgreSQL will replay (or is replaying) WAL without accepting connections. */
export function recoveryWanted(p: RecoveryProgress): boolean {
  // No postmaster.pid: PostgreSQL is not running (stopped, even "immediate",
  // removes it): hold no file until it starts; it writes the file at once.
  if (p.postmasterAlive === false) return false;
  if (p.acceptsConnections && p.postmasterAlive === true) return false;
  if (p.recovery !== 'none') return true;
  // "in production" without a live postmaster seen: a crash (a SIGKILLed
  // postmaster, a pod or node kill, leaves "ready" in postmaster.pid), or one we cannot see: the
  // SQL attempt running alongside tells, and a primary closes everything.
  return p.control.state === 'in production' && p.postmasterAlive !== true;
}

/**
 * Why the pipeline's files are not this PGDATA's any more, or null. A new
 * base backup of the same cluster keeps the system identifier: its
 * pg_control is another file (PostgreSQL rewrites its own in place), and the
 * handles held are on the old copy's files (deleted, or moved away).
 */
export function replacement(pipe: ReadingFrom, pgdata: string, p: RecoveryProgress): string | null {
  if (pipe.pgdata !== pgdata) return 'pgdata now names another directory';
  if (pipe.systemIdentifier !== p.control.systemIdentifier) return 'another system identifier';
  if (pipe.controlFileId !== undefined && p.control.fileId !== undefined && pipe.controlFileId !== p.control.fileId) {
    return 'global/pg_control is another file: a new copy of the cluster, e.g. a new base backup';
  }
  return null;
}

/**
 * The end-of-recovery checkpoint, seen from a pipeline that ran through the
 * recovery: for the moment it takes pg_control says "shut down"
 * (CreateCheckPoint treats CHECKPOINT_END_OF_RECOVERY as a shutdown one)
 * while the postmaster still starts. Without the startup process in view it
 * looks like a clean start with nothing to replay; stopping there closed
 * every file and the next look ("in production", not ready yet) started a
 * new pipeline from the redo point (CI caught it on PG 18, processes out of
 * view). A clean start never has a pipeline running: it began with "shut
 * down" and so started none.
 */
export function endOfRecoveryCheckpoint(p: RecoveryProgress): boolean {
  const pm = p.postmaster;
  return p.control.state === 'shut down' && p.postmasterAlive !== false && pm !== null && (pm.status === 'starting' || pm.status === null);
}
