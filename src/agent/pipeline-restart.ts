// When the running WAL pipeline must start over: replay overtook it (its
// records are useless), or the follower moved to another timeline or upstream.
import type { FollowerStatus } from '../follower/index.ts';
import type { WalSourceKind } from '../wal-source/source.ts';
import { formatLsn } from '../lsn.ts';
import { replayOvertook } from './readahead.ts';
import { followerUpstream } from './upstream.ts';

export interface RunningPipeline {
  decodedLsn: bigint | null;
  timeline: number | null;
  /** host:port of the follower's upstream when the pipeline started. */
  upstream: string | null;
  sourceKind: WalSourceKind | null;
  /** A stream may be tried now (source = "stream", no local spell running). */
  streamAllowed: boolean;
  /** primary_conninfo is configured: the follower's upstream does not matter. */
  upstreamConfigured: boolean;
  readaheadBytes: number;
}

/** Why to restart (message '' = say nothing), or null to keep going. */
export function pipelineRestartReason(s: FollowerStatus, p: RunningPipeline): { message: string; fields: object } | null {
  if (replayOvertook(s.replayLsn, p.decodedLsn, p.readaheadBytes)) {
    return { message: 'replay overtook the prefaulter; skipping ahead', fields: { replayLsn: formatLsn(s.replayLsn!), decodedLsn: formatLsn(p.decodedLsn!) } };
  }
  if (s.timeline !== null && p.timeline !== null && s.timeline !== p.timeline && p.sourceKind === 'local') {
    return { message: '', fields: {} };
  }
  const up = followerUpstream(s);
  // Reading the local pg_wal only because no upstream was known (its walreceiver
  // was down, e.g. the primary restarted): stream again once it is back.
  if (up && p.upstream === null && p.sourceKind === 'local' && p.streamAllowed) {
    return { message: 'the follower has an upstream again; streaming from it', fields: { upstream: up } };
  }
  if (!p.upstreamConfigured && up && p.upstream && up !== p.upstream) {
    return { message: 'the follower changed upstream; following', fields: { from: p.upstream, to: up } };
  }
  return null;
}
