// Where PostgreSQL's recovery is, from PGDATA and /proc alone, for the time
// before it accepts connections (crash recovery of a primary, a standby
// starting up until consistent, a standby with hot_standby = off): the
// position to read local WAL from and prefault ahead of, the timeline and
// geometry a local pg_wal reader needs, and when to hand over to the SQL path.
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { readControlFile, type ControlFile } from './control-file.ts';
import { acceptsConnections, type PostmasterPid } from './postmaster-pid.ts';
import { findStartupProcess, type StartupLookup } from './startup-process.ts';
import { newestTimeline, readTimelineHistory, timelineAt, type TimelineSpan } from './timeline-history.ts';

/**
 * - `crash`: a primary replays from its last checkpoint (pg_control is not
 *   "shut down", no standby.signal/recovery.signal);
 * - `archive`: a standby or a point-in-time recovery (a signal file, or
 *   pg_control "in archive recovery");
 * - `none`: a cleanly shut down primary, or a running one: nothing to replay.
 */
export type RecoveryKind = 'crash' | 'archive' | 'none';

export interface RecoveryProgress {
  control: ControlFile;
  postmaster: PostmasterPid | null;
  startup: StartupLookup;
  recovery: RecoveryKind;
  /** PostgreSQL is running (postmaster.pid present) and does not accept connections yet. */
  recovering: boolean;
  /**
   * The postmaster named in postmaster.pid runs: true when seen in /proc,
   * false when there is no postmaster.pid, null when its processes are not
   * visible (then a SIGKILLed postmaster's stale file cannot be told apart).
   */
  postmasterAlive: boolean | null;
  /**
   * postmaster.pid says "ready" and the postmaster is not known dead: hand
   * over to the SQL path now. A SIGKILL leaves "ready" behind, so when
   * postmasterAlive is null this is a hint to try SQL, not a certainty.
   */
  acceptsConnections: boolean;
  /**
   * Replay is at or after this LSN: the start of the segment the startup
   * process has open, or the redo point of the last checkpoint (where replay
   * begins) when that process is not visible.
   */
  replayLsn: bigint;
  replaySource: 'startup-process' | 'redo-point';
  /** The startup process was found: replayLsn follows replay. */
  progressVisible: boolean;
  /** Why progress is not visible and how to make it so; null when visible. */
  notVisibleReason: string | null;
  /** Timeline of the WAL at replayLsn (the file name's first 8 hex digits). */
  timeline: number;
  /** The timeline recovery heads for and its ancestry, from pg_wal's history files. */
  history: TimelineSpan[];
  segmentSize: number;
  blockSize: number;
  /** Replay must reach this before a standby is consistent (0: none). */
  minRecoveryPoint: bigint;
}

/**
 * One look at PGDATA: pg_control, postmaster.pid, the startup process, the
 * signal files and timeline history. Throws ControlFileError when pg_control
 * cannot be used (log it and keep waiting for PostgreSQL the SQL way).
 */
export async function readRecoveryProgress(dataDir: string, opts: { procDir?: string } = {}): Promise<RecoveryProgress> {
  // The signal files are looked at beside pg_control: each await is a trip through libuv's pool, before a crash recovery's first hint.
  const [control, standbySignal, recoverySignal] = await Promise.all([readControlFile(dataDir), exists(join(dataDir, 'standby.signal')), exists(join(dataDir, 'recovery.signal'))]);
  const startup = await findStartupProcess(dataDir, { segmentSize: control.xlogSegSize, procDir: opts.procDir });
  const postmaster = startup.postmaster;
  const signalled = standbySignal || recoverySignal;
  const postmasterAlive = startup.kind === 'startup' || startup.kind === 'none' ? true : postmaster === null ? false : null;
  const ready = acceptsConnections(postmaster) && postmasterAlive !== false;
  const recovery = recoveryKind(control, signalled, postmaster, startup);
  const redo = control.checkPointCopy.redo;

  let replayLsn = redo;
  let replaySource: RecoveryProgress['replaySource'] = 'redo-point';
  let timeline = control.checkPointCopy.timeline;
  if (startup.kind === 'startup' && startup.segmentStartLsn !== null && startup.segmentStartLsn >= redo - BigInt(control.xlogSegSize)) {
    replayLsn = startup.segmentStartLsn > redo ? startup.segmentStartLsn : redo;
    replaySource = 'startup-process';
    timeline = startup.timeline!;
  }

  const pgWal = join(dataDir, 'pg_wal');
  // A standby follows the newest timeline (recovery_target_timeline = latest,
  // the default since 12); a primary's crash recovery stays on its own.
  const target = recovery === 'archive' ? Math.max(timeline, await newestTimeline(pgWal)) : timeline;
  const history = await readTimelineHistory(pgWal, target).catch(() => [{ timeline: target, end: null }]);
  if (replaySource === 'redo-point' && history.some((s) => s.timeline === timeline)) timeline = timelineAt(history, replayLsn);

  const visible = startup.kind === 'startup' || (startup.kind === 'none' && ready);
  return {
    control,
    postmaster,
    startup,
    recovery,
    recovering: postmasterAlive !== false && !ready && recovery !== 'none',
    postmasterAlive,
    acceptsConnections: ready,
    replayLsn,
    replaySource,
    progressVisible: startup.kind === 'startup',
    notVisibleReason: visible ? null : startup.kind === 'not-visible' ? startup.detail : 'the postmaster has no startup process yet',
    timeline,
    history,
    segmentSize: control.xlogSegSize,
    blockSize: control.blcksz,
    minRecoveryPoint: control.minRecoveryPoint,
  };
}

function recoveryKind(control: ControlFile, signalled: boolean, pm: PostmasterPid | null, startup: StartupLookup): RecoveryKind {
  if (signalled || control.state === 'in archive recovery' || control.state === 'shut down in recovery') return 'archive';
  if (control.state === 'in crash recovery') return 'crash';
  // "in production" with a postmaster still starting, or with none at all:
  // it was not shut down cleanly, so the next start replays from the redo point.
  // "shutting down" while starting: the end-of-recovery checkpoint.
  if (control.state === 'shut down') return startup.kind === 'startup' ? 'crash' : 'none';
  if (pm === null) return 'crash';
  // No status line yet: a postmaster still writing its file at start-up, as "starting".
  return pm.status === 'starting' || pm.status === null || startup.kind === 'startup' ? 'crash' : 'none';
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * Where a reader of local WAL should stop for now: `readaheadBytes` past
 * replay. A position from the startup process is a segment's start and replay
 * may be anywhere in that segment, so the window gets one segment more. The
 * decoder finds the real end of WAL (unwritten or recycled pages) on its own.
 */
export function recoveryWindowEnd(p: Pick<RecoveryProgress, 'replayLsn' | 'replaySource' | 'segmentSize'>, readaheadBytes: number): bigint {
  const slack = p.replaySource === 'startup-process' ? BigInt(p.segmentSize) : 0n;
  return p.replayLsn + slack + BigInt(readaheadBytes);
}
