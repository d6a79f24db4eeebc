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
import type { Follower, FollowerFacts, FollowerStatus } from '../follower/index.ts';
import { CatchUpEstimate } from '../follower/catch-up.ts';
import { FollowerConnectError } from '../follower/connect-error.ts';
import { checkDataDirectory, resolveIoMethod, type MemoryPlan, type Prefaulter, type ResolvedIoMethod } from '../prefault/index.ts';
import type { WalSource } from '../wal-source/source.ts';
import { sleep } from '../sleep.ts';
import { Backoff } from './backoff.ts';
import { DecodeLoop, ReplayTicks } from './decode-loop.ts';
import { waitForFollower } from './follower-wait.ts';
import { LogThrottle } from './log-throttle.ts';
import { pipelineStartLsn } from './readahead.ts';
import { pipelineRestartReason } from './pipeline-restart.ts';
import { SourceChoice, afterPipelineError } from './source-choice.ts';
import { BuiltinPrefetchAdvice } from './builtin-prefetch.ts';
import { answerWithin, errInfo, followerConnectOptions, followerRetryBounds } from './session-helpers.ts';
import { applyFollowerStatus, clearUpstream, initialSnapshot, type AgentSnapshot, type AgentState } from './states.ts';
import { statusView } from './status-view.ts';
import { agentValue } from './status-value.ts';
import { RecoveryPrefetch } from './recovery.ts';
import { newPrefaulter, planWindow } from './prefaulter-factory.ts';
import { followerUpstream } from './upstream.ts';

export type { AgentSnapshot, AgentState, RmgrCounts } from './states.ts';

/** Retry delay while the follower answers "the database system is starting up", for at most this many retries (1 s). */
const STARTING_UP_RETRY_MS = 25;
const STARTING_UP_QUICK_RETRIES = 40;
/** WAL page size the pipeline aligns its start to (wal_block_size; PostgreSQL's default, the embedded servers'). */
const WAL_PAGE_SIZE = 8192;
/** An upstream session that lasted this long was healthy: the reconnect backoff starts over. */
const UPSTREAM_HEALTHY_MS = 10_000;

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
  private readonly prefetchAdvice: BuiltinPrefetchAdvice;
  /** Prefaulting before PostgreSQL accepts connections (recovery.ts). */
  private readonly recovery: RecoveryPrefetch;

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
  private readonly replayTicks = new ReplayTicks();

  /** Consecutive "starting up" refusals retried quickly. */
  private quickRetries = 0;
  // While PostgreSQL is down every retry fails the same way: logged once a minute, not every retry.
  private readonly sessionEndLog = new LogThrottle(60_000);
  /** Replay's rate and the catch-up ETA, from the polls. */
  readonly catchUp = new CatchUpEstimate();
  /** The window and reach as sized for the current prefaulter (memory-budget.ts). */
  memory: MemoryPlan | null = null;

  /** Throws when io_method = "willneed" is set but cannot be loaded here. */
  constructor(cfg: Config, log: Logger, opts: AgentOptions = {}) {
    this.cfg = cfg;
    this.log = log;
    this.observeReadSeconds = opts.observeReadSeconds;
    this.io = resolveIoMethod(cfg.ioMethod);
    this.followerBackoff = new Backoff(...followerRetryBounds(cfg));
    this.upstreamBackoff = new Backoff(cfg.reconnectMinMs, cfg.reconnectMaxMs);
    this.sources = new SourceChoice(log);
    this.prefetchAdvice = new BuiltinPrefetchAdvice(log);
    this.recovery = new RecoveryPrefetch({
      cfg: () => this.cfg,
      io: () => this.io,
      observeReadSeconds: this.observeReadSeconds,
      snap: this.snap,
      log,
      sessionUp: () => this.facts !== null,
      onChange: () => {
        if (this.facts === null && (this.snap.state === 'waiting_for_postgres' || this.snap.state === 'recovering')) this.setState(this.idleState());
      },
    });
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
    this.recovery.reconfigure(this.io, next.ioConcurrency);
    const changed = SESSION_FIELDS.filter((k) => prev[k] !== next[k]);
    if (changed.length) {
      this.log.info({ changed }, 'configuration changed; restarting the session');
      this.sessionController?.abort();
    } else {
      this.log.info('configuration reloaded');
    }
  }

  /** Resolves once start-up is settled (recovery.ts): then load what the first hint does not need. */
  get startupSettled(): Promise<void> {
    return this.recovery.settled;
  }

  /** A plain JSON view for /status and the status command. */
  statusJson(): Record<string, unknown> {
    return statusView(this.snap, this.cfg, this.io.method, agentValue(this.snap.prefault, this.catchUp, this.memory), this.memory?.window.maxPagesAhead ?? null);
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

  /** No SQL session: prefaulting a recovery, or just waiting. */
  private idleState(): AgentState {
    return this.recovery.active ? 'recovering' : 'waiting_for_postgres';
  }

  private async loop(): Promise<void> {
    const stop = this.stopController.signal;
    // Started before the first SQL attempt: recovery begins as PostgreSQL starts, and each millisecond counts.
    const recovering = this.recovery.run(stop);
    await this.recovery.settled;
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
    await recovering;
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
    if (!this.stopController.signal.aborted) this.setState(this.idleState());
  }

  private async closePrefaulter(): Promise<void> {
    await this.prefaulter?.closeAll().catch(() => {});
    this.prefaulter = null;
    this.snap.prefault = null;
  }

  // One connection to the follower: poll it, and run WAL pipelines while it is a standby.
  private async session(signal: AbortSignal): Promise<void> {
    this.setState(this.idleState());
    const cfg = this.cfg;
    // Loaded on first use: the SQL client is not needed to start prefaulting a recovery.
    const { Follower } = await import('../follower/follower.ts');
    const follower = await Follower.connect(followerConnectOptions(cfg));
    this.follower = follower;
    this.facts = await answerWithin(follower.facts(), cfg.connectTimeoutMs, 'the follower facts query');
    await checkDataDirectory(cfg.pgdata || this.facts.dataDirectory, Math.floor(this.facts.serverVersionNum / 10000));
    this.followerBackoff.reset();
    this.log.info(
      { serverVersionNum: this.facts.serverVersionNum, dataDirectory: this.facts.dataDirectory, blockSize: this.facts.blockSize },
      'connected to the follower',
    );
    await this.prefetchAdvice.check(follower, cfg.connectTimeoutMs);
    let pipeline: Promise<void> | null = null;
    while (!signal.aborted) {
      // A follower that stops answering (frozen connection, hung server) must end the
      // session, closing our handles, rather than stall the state machine.
      const status = await answerWithin(follower.status(), cfg.connectTimeoutMs, 'the follower status query');
      this.onStatus(status);
      if (!status.inRecovery) {
        await this.recovery.stop(); // crash recovery ended: a primary
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
      await this.replayTicks.pause(this.cfg.pollIntervalMs, signal); // sooner while a decode loop waits for replay
    }
    this.pipelineController?.abort();
    if (pipeline) await pipeline;
  }

  private onStatus(s: FollowerStatus): void {
    this.status = s;
    applyFollowerStatus(this.snap, s, this.source?.upstreamEnd() ?? null);
    this.catchUp.observe(s.inRecovery ? s.replayLsn : null, this.snap.lagBytes, Date.now());
    if (s.replayLsn !== null && this.prefaulter) this.prefaulter.setReplayLsn(s.replayLsn);
    if (s.replayLsn !== null && s.inRecovery && this.recovery.active) this.recovery.setReplayLsn(s.replayLsn);
    this.snap.prefault = this.prefaulter?.stats ?? null;
    this.replayTicks.tick();
  }

  private shouldRestartPipeline(s: FollowerStatus): boolean {
    const reason = pipelineRestartReason(s, {
      decodedLsn: this.decodeLoop?.decoder.nextRecordLsn ?? null,
      timeline: this.pipelineTimeline,
      upstream: this.pipelineUpstream,
      sourceKind: this.source?.kind ?? null,
      streamAllowed: this.sources.streamAllowed(this.cfg),
      upstreamConfigured: this.cfg.primaryConninfo !== '',
      readaheadBytes: this.cfg.readaheadBytes,
    });
    if (reason?.message) this.log.info(reason.fields, reason.message);
    return reason !== null;
  }

  private ensurePrefaulter(facts: FollowerFacts): Prefaulter {
    if (this.prefaulter) return this.prefaulter;
    const cfg = this.cfg;
    this.memory = planWindow(cfg, facts.blockSize, facts.sharedBuffersBytes, this.log);
    // Hand-over from the recovery prefetch: the same prefaulter, so what it brought in is not read again.
    const pgdata = cfg.pgdata || facts.dataDirectory;
    const layout = { pgdata, blockSize: facts.blockSize, majorVersion: Math.floor(facts.serverVersionNum / 10000), catalogVersion: facts.catalogVersion };
    this.prefaulter = this.recovery.release(pgdata) ?? newPrefaulter(cfg, layout, this.io, this.memory, this.observeReadSeconds);
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
    let healthySince = 0;
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
        healthySince = Date.now(); // the backoff resets only once the session has lasted (see the catch)
      }
      if (signal.aborted) return;
      this.decodeLoop = new DecodeLoop({
        source,
        startLsn,
        segmentSize: facts.segmentSize,
        blockSize: facts.blockSize,
        readaheadBytes: this.cfg.readaheadBytes,
        prefaulter: this.ensurePrefaulter(facts),
        snap: this.snap,
        log: this.log,
        nextReplayUpdate: (s) => this.replayTicks.next(s),
        replayLsn: () => this.status?.replayLsn ?? null,
        setState: (st) => this.setState(st),
        signal,
      });
      await this.decodeLoop.run();
    } catch (e) {
      if (signal.aborted) return;
      // Sessions that break soon after the handshake keep the backoff growing.
      if (healthySince && Date.now() - healthySince >= UPSTREAM_HEALTHY_MS && this.snap.state !== 'wal_undecodable') this.upstreamBackoff.reset();
      await afterPipelineError(e, { log: this.log, snap: this.snap, sources: this.sources, upstreamBackoff: this.upstreamBackoff, signal: sessionSignal });
    } finally {
      sessionSignal.removeEventListener('abort', onSession);
      await this.source?.close().catch(() => {});
      this.source = null;
      this.decodeLoop = null;
      this.snap.upstreamConnected = false;
      if (this.pipelineController === controller) this.pipelineController = null;
      if (this.snap.state === 'streaming' || this.snap.state === 'wal_undecodable') this.setState('following');
    }
  }
}
