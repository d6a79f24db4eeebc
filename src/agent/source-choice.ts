// Which WAL source a pipeline reads: the agent's own replication stream from
// the upstream, or the follower's local pg_wal (source = "local", no upstream
// known, or for a while after the upstream said it no longer has the WAL).
import { join } from 'node:path';
import type { Log } from '../log.ts';
import type { Config } from '../config/schema.ts';
import type { Follower, FollowerFacts, FollowerStatus } from '../follower/index.ts';
import { LocalSource } from '../wal-source/local.ts';
import type { WalSource } from '../wal-source/source.ts';
import { ReplicationError } from '../replication/errors.ts';
import { TimelineEnded } from '../wal-source/source.ts';
import { formatLsn } from '../lsn.ts';
import { sleep } from '../sleep.ts';
import type { Backoff } from './backoff.ts';
import { errInfo } from './session-helpers.ts';
import type { AgentSnapshot } from './states.ts';
import { localReadLimit } from './readahead.ts';
import { upstreamConnOptions } from './upstream.ts';

/** How long the local pg_wal is read after the upstream removed the WAL we need. */
const LOCAL_AFTER_WAL_REMOVED_MS = 60_000;

export interface SourceRequest {
  cfg: Config;
  facts: FollowerFacts;
  status: FollowerStatus;
  follower: Follower | null;
  /** The latest follower status (the local reader's limit moves with it). */
  latestStatus: () => FollowerStatus | null;
  startLsn: bigint;
  timeline: number;
  signal: AbortSignal;
  /** Told the upstream (host:port) before connecting to it, so /status names it while connecting. */
  onUpstream: (upstream: string | null) => void;
}

export interface OpenedSource {
  source: WalSource;
  /** host:port streamed from, or null for the local pg_wal. */
  upstream: string | null;
}

export class SourceChoice {
  private localUntil = 0; // read the local pg_wal until this time (ms)

  constructor(private readonly log: Log) {}

  /** The upstream no longer has the WAL we need: read the local pg_wal for a while. */
  upstreamLacksWal(): void {
    this.localUntil = Date.now() + LOCAL_AFTER_WAL_REMOVED_MS;
  }

  /** Whether a stream may be tried now (source = "stream" and no local spell running). */
  streamAllowed(cfg: Config): boolean {
    return cfg.source === 'stream' && Date.now() >= this.localUntil;
  }

  async open(r: SourceRequest): Promise<OpenedSource> {
    if (this.streamAllowed(r.cfg)) {
      const conn = await upstreamConnOptions(r.cfg, r.status, r.follower);
      if (conn) {
        r.onUpstream(`${conn.host}:${conn.port}`);
        // Loaded on first use: start-up (and a recovery prefetch) does not need the replication client.
        const { StreamSource } = await import('../wal-source/stream.ts');
        const source = await StreamSource.open({
          conn,
          startLsn: r.startLsn,
          timeline: r.timeline,
          slot: r.cfg.replicationSlot,
          statusIntervalMs: r.cfg.statusIntervalMs,
          signal: r.signal,
        });
        const upstream = `${conn.host}:${conn.port}`;
        this.log.info({ upstream, startLsn: formatLsn(r.startLsn), timeline: r.timeline }, 'streaming WAL from the upstream');
        return { source, upstream };
      }
      this.log.warn('no upstream known (pg_stat_wal_receiver is empty and primary_conninfo unset); reading the local pg_wal');
    }
    r.onUpstream(null);
    this.log.info({ startLsn: formatLsn(r.startLsn), timeline: r.timeline }, 'reading WAL from the local pg_wal');
    const source = new LocalSource({
      pgWalDir: join(r.cfg.pgdata || r.facts.dataDirectory, 'pg_wal'),
      startLsn: r.startLsn,
      timeline: r.timeline,
      segmentSize: r.facts.segmentSize,
      pollIntervalMs: r.cfg.pollIntervalMs,
      limit: () => localReadLimit(r.latestStatus(), r.cfg.readaheadBytes),
      signal: r.signal,
    });
    return { source, upstream: null };
  }
}

export interface PipelineErrorContext {
  log: Log;
  snap: AgentSnapshot;
  sources: SourceChoice;
  upstreamBackoff: Backoff;
  /** The session's: a stop or restart cuts the backoff short. */
  signal: AbortSignal;
}

/** After a pipeline failed: follow a timeline switch at once, read pg_wal if the upstream lacks the WAL, else back off. */
export async function afterPipelineError(e: unknown, c: PipelineErrorContext): Promise<void> {
  if (e instanceof TimelineEnded) {
    c.log.info({ nextTimeline: e.nextTimeline, at: formatLsn(e.nextTimelineStart) }, 'upstream switched timeline; following');
    return;
  }
  c.snap.reconnects.upstream++;
  if (e instanceof ReplicationError && e.code === 'WAL_REMOVED') {
    c.sources.upstreamLacksWal();
    c.log.warn({ err: errInfo(e) }, 'the upstream no longer has the WAL we need; reading the local pg_wal for a while');
    return;
  }
  const delay = c.upstreamBackoff.next();
  if (e instanceof ReplicationError) c.log.warn({ err: errInfo(e), code: e.code, retryInMs: delay }, 'replication connection failed');
  else c.log.warn({ err: errInfo(e), retryInMs: delay }, 'WAL pipeline failed');
  await sleep(delay, c.signal);
}
