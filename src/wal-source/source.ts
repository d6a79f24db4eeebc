// Where the agent's WAL bytes come from: its own replication stream from the
// upstream, or the follower's own pg_wal directory. Both yield contiguous
// chunks starting at the requested LSN.
export interface WalChunk {
  lsn: bigint;
  data: Buffer;
}

import { WAL_SOURCE_KINDS, type WalSourceKind } from '../options.ts';

export { WAL_SOURCE_KINDS, type WalSourceKind };

export interface WalSource extends AsyncIterable<WalChunk> {
  readonly kind: WalSourceKind;
  /** True once WAL can flow: the replication stream is up (CopyBoth started), or the local reader runs. */
  readonly started: boolean;
  /** Latest WAL position known to exist upstream (stream) or null. */
  upstreamEnd(): bigint | null;
  close(): Promise<void>;
  /** Local sources: read again from lsn (the decoder met bytes not written yet there). */
  rewind?(lsn: bigint): void;
}

/** Thrown by a stream source when the upstream's timeline ended under us. */
export class TimelineEnded extends Error {
  constructor(
    readonly nextTimeline: number,
    readonly nextTimelineStart: bigint,
  ) {
    super(`upstream timeline ended; next timeline ${nextTimeline}`);
  }
}
