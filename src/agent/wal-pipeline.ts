// One WAL pipeline: a source (source-choice.ts) opened at the WAL page holding
// the follower's replay position, read through the decode loop into the
// prefaulter until it ends, fails, or the session stops or restarts it. After
// a failure it does what afterPipelineError says (follow a timeline switch,
// read the local pg_wal, back off) before it counts as done.
import type { Log } from '../log.ts';
import type { Config } from '../config/schema.ts';
import type { Follower, FollowerFacts, FollowerStatus } from '../follower/index.ts';
import type { Prefaulter } from '../prefault/index.ts';
import type { WalSource } from '../wal-source/source.ts';
import type { Backoff } from './backoff.ts';
import { DecodeLoop, type ReplayTicks } from './decode-loop.ts';
import { pipelineRestartReason } from './pipeline-restart.ts';
import { pipelineStartLsn } from './readahead.ts';
import { afterPipelineError, type SourceChoice } from './source-choice.ts';
import type { AgentSnapshot, AgentState } from './states.ts';
import { followerUpstream } from './upstream.ts';

/** An upstream session that lasted this long was healthy: the reconnect backoff starts over. */
const UPSTREAM_HEALTHY_MS = 10_000;

/** What a pipeline works with, from the agent and its session. */
export interface PipelineContext {
  cfg: Config;
  facts: FollowerFacts;
  follower: Follower;
  log: Log;
  snap: AgentSnapshot;
  sources: SourceChoice;
  upstreamBackoff: Backoff;
  replayTicks: ReplayTicks;
  /** The follower's status as last polled. */
  latestStatus: () => FollowerStatus | null;
  /** The session's prefaulter, made on first use. */
  prefaulter: () => Prefaulter;
  setState: (state: AgentState) => void;
}

export class WalPipeline {
  private readonly controller = new AbortController();
  private source: WalSource | null = null;
  private decodeLoop: DecodeLoop | null = null;
  private readonly timeline: number;
  /** The follower's upstream (host:port) when the pipeline started. */
  private readonly upstream: string | null;
  /** Resolves when the pipeline has ended (failures are handled inside: logged, backed off). */
  readonly done: Promise<void>;

  /** Starts at once; aborted with sessionSignal too. */
  constructor(
    private readonly c: PipelineContext,
    status: FollowerStatus,
    sessionSignal: AbortSignal,
  ) {
    this.timeline = status.timeline ?? 1;
    this.upstream = followerUpstream(status);
    this.done = this.run(status, sessionSignal);
  }

  /** The source is up (the replication stream started, or the local reader runs). */
  get started(): boolean {
    return this.source?.started ?? false;
  }

  /** The upstream's WAL end as its stream last said, or null. */
  upstreamEnd(): bigint | null {
    return this.source?.upstreamEnd() ?? null;
  }

  /** Whether this pipeline must start over for the follower's new status (logs why). */
  shouldRestart(s: FollowerStatus, cfg: Config): boolean {
    const reason = pipelineRestartReason(s, {
      decodedLsn: this.decodeLoop?.decoder.nextRecordLsn ?? null,
      timeline: this.timeline,
      upstream: this.upstream,
      sourceKind: this.source?.kind ?? null,
      streamAllowed: this.c.sources.streamAllowed(cfg),
      upstreamConfigured: cfg.primaryConninfo !== '',
      readaheadBytes: cfg.readaheadBytes,
    });
    if (reason?.message) this.c.log.info(reason.fields, reason.message);
    return reason !== null;
  }

  abort(): void {
    this.controller.abort();
  }

  /** Closes the source, which ends a read waiting on it (stop must not wait for WAL). */
  async closeSource(): Promise<void> {
    await this.source?.close().catch(() => {});
  }

  private async run(status: FollowerStatus, sessionSignal: AbortSignal): Promise<void> {
    const { c, controller } = this;
    const onSession = () => controller.abort();
    sessionSignal.addEventListener('abort', onSession, { once: true });
    const signal = controller.signal;
    let healthySince = 0;
    try {
      const startLsn = pipelineStartLsn(status, c.facts.walBlockSize);
      const { source, upstream } = await c.sources.open({
        cfg: c.cfg,
        facts: c.facts,
        status,
        follower: c.follower,
        latestStatus: c.latestStatus,
        startLsn,
        timeline: this.timeline,
        signal,
        onUpstream: (u) => (c.snap.upstream = u),
      });
      this.source = source;
      c.snap.source = source.kind;
      if (upstream !== null) {
        c.snap.upstreamConnected = true;
        healthySince = Date.now(); // the backoff resets only once the session has lasted (see the catch)
      }
      if (signal.aborted) return;
      this.decodeLoop = new DecodeLoop({
        source,
        startLsn,
        segmentSize: c.facts.segmentSize,
        blockSize: c.facts.blockSize,
        walPageSize: c.facts.walBlockSize,
        readaheadBytes: c.cfg.readaheadBytes,
        prefaulter: c.prefaulter(),
        snap: c.snap,
        log: c.log,
        nextReplayUpdate: (s) => c.replayTicks.next(s),
        replayLsn: () => c.latestStatus()?.replayLsn ?? null,
        setState: c.setState,
        signal,
      });
      await this.decodeLoop.run();
    } catch (e) {
      if (signal.aborted) return;
      // Sessions that break soon after the handshake keep the backoff growing.
      if (healthySince && Date.now() - healthySince >= UPSTREAM_HEALTHY_MS && c.snap.state !== 'wal_undecodable') c.upstreamBackoff.reset();
      await afterPipelineError(e, { log: c.log, snap: c.snap, sources: c.sources, upstreamBackoff: c.upstreamBackoff, signal: sessionSignal });
    } finally {
      sessionSignal.removeEventListener('abort', onSession);
      await this.closeSource();
      this.source = null;
      this.decodeLoop = null;
      c.snap.upstreamConnected = false;
      if (c.snap.state === 'streaming' || c.snap.state === 'wal_undecodable') c.setState('following');
    }
  }
}
