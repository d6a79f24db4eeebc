// The agent's state machine: ties follower tracking, a WAL source, the decode
// loop and the prefaulter together, and keeps doing so through everything a
// Patroni / operator pod goes through (PostgreSQL down, promotion, failover,
// timeline switches, upstream loss). States and their meaning: states.ts and
// README "How it works". The work is done by named collaborators:
//   SourceChoice (source-choice.ts)  which WAL source, opened how (upstream.ts: where and as whom)
//   DecodeLoop (decode-loop.ts)      source -> decoder -> prefaulter, per-rmgr counts
//   statusView (status-view.ts)      the /status JSON
import type { Logger } from 'pino';
import { SESSION_FIELDS, type Config } from '../config/schema.ts';
import { followerPassword } from '../credentials.ts';
import { Follower, FollowerConnectError, type FollowerFacts, type FollowerStatus } from '../follower/index.ts';
import { Prefaulter, checkDataDirectory, resolveIoMethod, type ResolvedIoMethod } from '../prefault/index.ts';
import { ReplicationError } from '../replication/errors.ts';
import { TimelineEnded, type WalSource } from '../wal-source/source.ts';
import { formatLsn } from '../lsn.ts';
import { sleep } from '../sleep.ts';
import { Backoff } from './backoff.ts';
import { DecodeLoop } from './decode-loop.ts';
import { waitForFollower } from './follower-wait.ts';
import { LogThrottle } from './log-throttle.ts';
import { pipelineStartLsn, replayOvertook } from './readahead.ts';
import { SourceChoice } from './source-choice.ts';
import { clearUpstream, initialSnapshot, type AgentSnapshot, type AgentState } from './states.ts';
import { statusView } from './status-view.ts';
import { followerUpstream } from './upstream.ts';

export type { AgentSnapshot, AgentState, RmgrCounts } from './states.ts';

/** Retry delay while the follower answers "the database system is starting up", for at most this many retries (1 s). */
const STARTING_UP_RETRY_MS = 25;
const STARTING_UP_QUICK_RETRIES = 40;
/** WAL page size the pipeline aligns its start to (wal_block_size; PostgreSQL's default, the embedded servers'). */
const WAL_PAGE_SIZE = 8192;

export interface AgentOptions {
  /** Feeds the pread latency histogram (io_method pread). */
  observeReadSeconds?: ((seconds: number) => void) | undefined;
}

export class Agent {
  readonly snap: AgentSnapshot = initialSnapshot();
  private cfg: Config;
  private readonly log: Logger;
  private readonly observeReadSeconds: ((seconds: number) => void) | undefined;
  /** How pages are brought in; resolved once here so a bad io_method fails at start, not at the first page. */
  private io: ResolvedIoMethod;
  private readonly followerBackoff: Backoff;
  private readonly upstreamBackoff: Backoff;
  private readonly sources: SourceChoice;

  private readonly stopController = new AbortController();
  private sessionController: AbortController | null = null;
  private pipelineController: AbortController | null = null;
  private runPromise: Promise<void> | null = null;

  // The current session (one follower connection) and pipeline (one WAL source).
  private follower: Follower | null = null;
  private facts: FollowerFacts | null = null;
  private status: FollowerStatus | null = null;
  private prefaulter: Prefaulter | null = null;
  private source: WalSource | null = null;
  private decodeLoop: DecodeLoop | null = null;
  private pipelineTimeline: number | null = null;
  private pipelineUpstream: string | null = null;
  private replayWaiters: (() => void)[] = [];

  /** Consecutive "starting up" refusals retried quickly. */
  private quickRetries = 0;
  // While PostgreSQL is down every retry fails the same way: logged once a minute, not every retry.
  private readonly sessionEndLog = new LogThrottle(60_000);
  /** recovery_prefetch value last advised about (said once per value, not on every reconnect). */
  private builtinPrefetchAdvised = '';

  /** Throws when io_method = "willneed" is set but cannot be loaded here. */
  constructor(cfg: Config, log: Logger, opts: AgentOptions = {}) {
    this.cfg = cfg;
    this.log = log;
    this.observeReadSeconds = opts.observeReadSeconds;
    this.io = resolveIoMethod(cfg.ioMethod);
    this.followerBackoff = new Backoff(...followerRetryBounds(cfg));
    this.upstreamBackoff = new Backoff(cfg.reconnectMinMs, cfg.reconnectMaxMs);
    this.sources = new SourceChoice(log);
  }

  /** How pages are brought in now (io_method as resolved). */
  get ioMethod(): ResolvedIoMethod {
    return this.io;
  }

  get state(): AgentState {
    return this.snap.state;
  }

  /** Runs until stop(). Never throws: every failure is logged and retried. */
  start(): Promise<void> {
    this.runPromise ??= this.loop();
    return this.runPromise;
  }

  /** Stops streaming, closes every file handle and connection. */
  async stop(): Promise<void> {
    this.stopController.abort();
    this.sessionController?.abort();
    this.pipelineController?.abort();
    await this.source?.close().catch(() => {});
    await this.runPromise;
  }

  /** Applies a reloaded config: live where possible, else (keys marked restartsSession in config/schema.ts) restarts the session. */
  reload(next: Config): void {
    const prev = this.cfg;
    this.cfg = next;
    this.followerBackoff.setBounds(...followerRetryBounds(next));
    this.upstreamBackoff.setBounds(next.reconnectMinMs, next.reconnectMaxMs);
    if (next.ioConcurrency !== prev.ioConcurrency) this.prefaulter?.setIoConcurrency(next.ioConcurrency);
    if (next.ioMethod !== prev.ioMethod) {
      try {
        this.io = resolveIoMethod(next.ioMethod);
        this.prefaulter?.setIoMethod(this.io);
        this.log.info({ ioMethod: this.io.method, fallbackReason: this.io.fallbackReason ?? undefined }, `io_method now ${this.io.method}`);
      } catch (e) {
        this.log.error({ err: { message: (e as Error).message } }, `keeping io_method ${this.io.method}`);
      }
    }
    const changed = SESSION_FIELDS.filter((k) => prev[k] !== next[k]);
    if (changed.length) {
      this.log.info({ changed }, 'configuration changed; restarting the session');
      this.sessionController?.abort();
    } else {
      this.log.info('configuration reloaded');
    }
  }

  /** A plain JSON view for /status and the status command. */
  statusJson(): Record<string, unknown> {
    return statusView(this.snap, this.cfg, this.io.method);
  }

  /** Liveness: the main loop ticked recently (or is legitimately waiting on backoff). */
  healthy(): boolean {
    return Date.now() - this.snap.lastTick < 30_000 + this.cfg.reconnectMaxMs;
  }

  private setState(state: AgentState): void {
    if (this.snap.state !== state) {
      this.log.info({ from: this.snap.state, to: state }, `state ${state}`);
      this.snap.state = state;
    }
  }

  private async loop(): Promise<void> {
    const stop = this.stopController.signal;
    while (!stop.aborted) {
      this.snap.lastTick = Date.now();
      this.sessionController = new AbortController();
      const onStop = () => this.sessionController?.abort();
      stop.addEventListener('abort', onStop, { once: true });
      let failure: unknown = null;
      try {
        await this.session(this.sessionController.signal);
      } catch (e) {
        failure = e;
        if (!stop.aborted) this.logSessionEnd(e);
      } finally {
        stop.removeEventListener('abort', onStop);
        await this.teardownSession();
      }
      if (!stop.aborted && !this.follower) {
        this.snap.reconnects.follower++;
        // 57P03 ("starting up"): the server is about to accept connections, ask again soon; but only
        // for a while, since the same code also means "hot_standby = off" or "shutting down", for good.
        const startingUp = failure instanceof FollowerConnectError && failure.startingUp;
        this.quickRetries = startingUp ? this.quickRetries + 1 : 0;
        const delay = startingUp && this.quickRetries <= STARTING_UP_QUICK_RETRIES ? STARTING_UP_RETRY_MS : this.followerBackoff.next();
        await waitForFollower(this.cfg.host, this.cfg.port, delay, stop);
      }
    }
    this.snap.state = 'stopped';
  }

  private logSessionEnd(e: unknown): void {
    const err = errInfo(e);
    if (this.sessionEndLog.due(err.message)) this.log.warn({ err, retries: this.followerBackoff.attempts }, 'session ended; retrying');
  }

  private async teardownSession(): Promise<void> {
    await this.source?.close().catch(() => {});
    this.source = null;
    clearUpstream(this.snap);
    await this.closePrefaulter();
    await this.follower?.close().catch(() => {});
    this.follower = null;
    this.facts = null;
    this.snap.role = 'unknown';
    if (!this.stopController.signal.aborted) this.setState('waiting_for_postgres');
  }

  private async closePrefaulter(): Promise<void> {
    await this.prefaulter?.closeAll().catch(() => {});
    this.prefaulter = null;
    this.snap.prefault = null;
  }

  // One connection to the follower: poll it, and run WAL pipelines while it is a standby.
  private async session(signal: AbortSignal): Promise<void> {
    this.setState('waiting_for_postgres');
    const cfg = this.cfg;
    const follower = await Follower.connect({
      host: cfg.host,
      port: cfg.port,
      user: cfg.username,
      database: cfg.database,
      password: followerPassword(cfg, process.env),
      connectTimeoutMs: cfg.connectTimeoutMs,
      applicationName: `${cfg.applicationName}_monitor`,
    });
    this.follower = follower;
    this.facts = await answerWithin(follower.facts(), cfg.connectTimeoutMs, 'the follower facts query');
    await checkDataDirectory(cfg.pgdata || this.facts.dataDirectory, Math.floor(this.facts.serverVersionNum / 10000));
    this.followerBackoff.reset();
    this.log.info(
      { serverVersionNum: this.facts.serverVersionNum, dataDirectory: this.facts.dataDirectory, blockSize: this.facts.blockSize },
      'connected to the follower',
    );
    await this.adviseOnBuiltinPrefetch(follower);
    let pipeline: Promise<void> | null = null;
    while (!signal.aborted) {
      // A follower that stops answering (frozen connection, hung server) must end the
      // session, closing our handles, rather than stall the state machine.
      const status = await answerWithin(follower.status(), cfg.connectTimeoutMs, 'the follower status query');
      this.onStatus(status);
      if (!status.inRecovery) {
        if (pipeline) {
          this.pipelineController?.abort();
          await pipeline;
          pipeline = null;
        }
        if (this.snap.state !== 'primary_idle') {
          await this.closePrefaulter();
          clearUpstream(this.snap); // a primary streams from nobody
          this.setState('primary_idle');
        }
        await sleep(Math.max(1000, cfg.pollIntervalMs), signal);
        continue;
      }
      if (!pipeline) {
        this.setState('following');
        pipeline = this.runPipeline(status, signal).finally(() => {
          pipeline = null;
        });
      } else if (this.shouldRestartPipeline(status)) {
        this.pipelineController?.abort();
      }
      // `streaming` = WAL can flow (the replication stream is up, or the local reader runs), not "WAL arrived".
      if (this.source?.started && this.snap.state === 'following') this.setState('streaming');
      await sleep(this.cfg.pollIntervalMs, signal);
    }
    this.pipelineController?.abort();
    if (pipeline) await pipeline;
  }

  // Both prefetchers hint the same pages: twice the I/O requests and CPU for
  // no gain (docs/benchmarks.md, prefaulter+builtin).
  private async adviseOnBuiltinPrefetch(follower: Follower): Promise<void> {
    const b = await answerWithin(follower.builtinPrefetch(), this.cfg.connectTimeoutMs, 'the recovery_prefetch query');
    const on = b !== null && (b.recoveryPrefetch === 'on' || b.recoveryPrefetch === 'try');
    const key = b === null ? '' : b.recoveryPrefetch;
    if (on && key !== this.builtinPrefetchAdvised) {
      this.log.warn(
        { recoveryPrefetch: b.recoveryPrefetch, maintenanceIoConcurrency: b.maintenanceIoConcurrency },
        `the follower's own recovery prefetcher is on (recovery_prefetch = ${b.recoveryPrefetch}): it hints the same pages as pg-prefaulter; `
          + 'set recovery_prefetch = off on the follower (replay was faster with it off next to pg-prefaulter, see docs/benchmarks.md)',
      );
    }
    this.builtinPrefetchAdvised = key;
  }

  private onStatus(s: FollowerStatus): void {
    this.status = s;
    const snap = this.snap;
    snap.lastTick = Date.now();
    snap.role = s.inRecovery ? 'standby' : 'primary';
    snap.timeline = s.timeline;
    snap.replayLsn = s.replayLsn;
    snap.receiveLsn = s.receiveLsn;
    snap.replayTimestamp = s.replayTimestamp;
    snap.replayPaused = s.replayPaused;
    const upstreamEnd = this.source?.upstreamEnd() ?? null;
    let head = s.receiveLsn ?? 0n;
    if (upstreamEnd !== null && upstreamEnd > head) head = upstreamEnd;
    snap.lagBytes = s.replayLsn !== null && head > s.replayLsn ? Number(head - s.replayLsn) : 0;
    snap.lagSeconds = snap.lagBytes > 0 && s.replayTimestamp ? Math.max(0, (Date.now() - s.replayTimestamp.getTime()) / 1000) : 0;
    if (s.replayLsn !== null && this.prefaulter) this.prefaulter.setReplayLsn(s.replayLsn);
    snap.prefault = this.prefaulter?.stats ?? null;
    const waiters = this.replayWaiters;
    this.replayWaiters = [];
    for (const w of waiters) w();
  }

  // Restart when replay overtook us (our records are useless) or the follower
  // moved to another timeline or upstream.
  private shouldRestartPipeline(s: FollowerStatus): boolean {
    const decoded = this.decodeLoop?.decoder.nextRecordLsn ?? null;
    if (replayOvertook(s.replayLsn, decoded, this.cfg.readaheadBytes)) {
      this.log.info({ replayLsn: formatLsn(s.replayLsn!), decodedLsn: formatLsn(decoded!) }, 'replay overtook the prefaulter; skipping ahead');
      return true;
    }
    if (s.timeline !== null && this.pipelineTimeline !== null && s.timeline !== this.pipelineTimeline && this.source?.kind === 'local') {
      return true;
    }
    const up = followerUpstream(s);
    // Reading the local pg_wal only because no upstream was known (its walreceiver
    // was down, e.g. the primary restarted): stream again once it is back.
    if (up && this.pipelineUpstream === null && this.source?.kind === 'local' && this.sources.streamAllowed(this.cfg)) {
      this.log.info({ upstream: up }, 'the follower has an upstream again; streaming from it');
      return true;
    }
    if (!this.cfg.primaryConninfo && up && this.pipelineUpstream && up !== this.pipelineUpstream) {
      this.log.info({ from: this.pipelineUpstream, to: up }, 'the follower changed upstream; following');
      return true;
    }
    return false;
  }

  /** Resolves at the next follower status (replay position) update, or when signal aborts. */
  private nextReplayUpdate(signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      if (signal.aborted) return resolve();
      const done = () => {
        signal.removeEventListener('abort', done);
        resolve();
      };
      this.replayWaiters.push(done);
      signal.addEventListener('abort', done, { once: true });
    });
  }

  private ensurePrefaulter(facts: FollowerFacts): Prefaulter {
    if (this.prefaulter) return this.prefaulter;
    const cfg = this.cfg;
    this.prefaulter = new Prefaulter({
      pgdata: cfg.pgdata || facts.dataDirectory,
      blockSize: facts.blockSize,
      majorVersion: Math.floor(facts.serverVersionNum / 10000),
      catalogVersion: facts.catalogVersion,
      readaheadBytes: cfg.readaheadBytes,
      maxPagesAhead: cfg.maxPagesAhead,
      ioConcurrency: cfg.ioConcurrency,
      ioMethod: this.io,
      maxOpenFiles: cfg.maxOpenFiles || undefined,
      observeReadSeconds: this.observeReadSeconds,
    });
    // /status must show the handles it opens from its first read on.
    this.snap.prefault = this.prefaulter.stats;
    if (this.status?.replayLsn != null) this.prefaulter.setReplayLsn(this.status.replayLsn);
    return this.prefaulter;
  }

  // Decode WAL from one source and feed the prefaulter, until the source
  // ends, fails, or the session asks for a restart.
  private async runPipeline(status: FollowerStatus, sessionSignal: AbortSignal): Promise<void> {
    const controller = new AbortController();
    this.pipelineController = controller;
    const onSession = () => controller.abort();
    sessionSignal.addEventListener('abort', onSession, { once: true });
    const signal = controller.signal;
    const facts = this.facts!;
    const startLsn = pipelineStartLsn(status, WAL_PAGE_SIZE);
    const timeline = status.timeline ?? 1;
    this.pipelineTimeline = timeline;
    this.pipelineUpstream = followerUpstream(status);
    try {
      const { source, upstream } = await this.sources.open({
        cfg: this.cfg,
        facts,
        status,
        follower: this.follower,
        latestStatus: () => this.status,
        startLsn,
        timeline,
        signal,
        onUpstream: (u) => (this.snap.upstream = u),
      });
      this.source = source;
      this.snap.source = source.kind;
      if (upstream !== null) {
        this.snap.upstreamConnected = true;
        this.upstreamBackoff.reset();
      }
      if (signal.aborted) return;
      this.decodeLoop = new DecodeLoop({
        source,
        startLsn,
        segmentSize: facts.segmentSize,
        prefaulter: this.ensurePrefaulter(facts),
        snap: this.snap,
        log: this.log,
        nextReplayUpdate: (s) => this.nextReplayUpdate(s),
        signal,
      });
      await this.decodeLoop.run();
    } catch (e) {
      if (signal.aborted) return;
      await this.onPipelineError(e, sessionSignal);
    } finally {
      sessionSignal.removeEventListener('abort', onSession);
      await this.source?.close().catch(() => {});
      this.source = null;
      this.decodeLoop = null;
      this.snap.upstreamConnected = false;
      if (this.pipelineController === controller) this.pipelineController = null;
      if (this.snap.state === 'streaming') this.setState('following');
    }
  }

  private async onPipelineError(e: unknown, signal: AbortSignal): Promise<void> {
    if (e instanceof TimelineEnded) {
      this.log.info({ nextTimeline: e.nextTimeline, at: formatLsn(e.nextTimelineStart) }, 'upstream switched timeline; following');
      return;
    }
    this.snap.reconnects.upstream++;
    if (e instanceof ReplicationError && e.code === 'WAL_REMOVED') {
      this.sources.upstreamLacksWal();
      this.log.warn({ err: errInfo(e) }, 'the upstream no longer has the WAL we need; reading the local pg_wal for a while');
      return;
    }
    const delay = this.upstreamBackoff.next();
    if (e instanceof ReplicationError) this.log.warn({ err: errInfo(e), code: e.code, retryInMs: delay }, 'replication connection failed');
    else this.log.warn({ err: errInfo(e), retryInMs: delay }, 'WAL pipeline failed');
    await sleep(delay, signal);
  }
}

/** Resolves as work does, or rejects once ms pass without an answer (work's late outcome is ignored). */
function answerWithin<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  work.catch(() => {}); // a late failure (the connection closed at teardown) is not unhandled
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} got no answer within ${ms} ms; reconnecting (raise connect_timeout if the follower is just slow)`)), ms);
  });
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}

// The follower is local: retrying its socket is cheap, and after a restart
// every moment without prefaulting is replay waiting on reads. So retry it
// quickly (at most every second); backoff is for the remote upstream.
function followerRetryBounds(cfg: Config): [number, number] {
  return [Math.min(cfg.reconnectMinMs, 100), Math.min(cfg.reconnectMaxMs, 1000)];
}

function errInfo(e: unknown): { message: string; code?: string } {
  if (e instanceof Error) return { message: e.message, code: (e as { code?: string }).code };
  return { message: String(e) };
}
