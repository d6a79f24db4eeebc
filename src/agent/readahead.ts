// How far ahead of replay the agent's WAL reading may run, as decisions the
// state machine asks about (the prefaulter itself bounds the pages ahead).
import type { FollowerStatus } from '../follower/index.ts';

/** Replay is this far past what we decoded: our records are useless, skip ahead. */
export function replayOvertook(replayLsn: bigint | null, decodedLsn: bigint | null, readaheadBytes: number): boolean {
  return replayLsn !== null && decodedLsn !== null && replayLsn - decodedLsn > BigInt(readaheadBytes) * 2n;
}

/** How far the local pg_wal may be read: what the follower received, else readahead past replay, else unknown. */
export function localReadLimit(status: FollowerStatus | null, readaheadBytes: number): bigint | null {
  if (status?.receiveLsn != null) return status.receiveLsn;
  return status?.replayLsn != null ? status.replayLsn + BigInt(readaheadBytes) : null;
}

/** Where reading starts: the WAL page holding the replay position (the decoder needs a page header). */
export function pipelineStartLsn(status: FollowerStatus, walPageSize: number): bigint {
  const replay = status.replayLsn ?? status.receiveLsn ?? 0n;
  return replay - (replay % BigInt(walPageSize));
}
