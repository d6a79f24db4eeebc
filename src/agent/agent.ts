// The agent's state machine: ties follower tracking, a WAL source, the decode
// loop and the prefaulter together, and keeps doing so through everything a
// Patroni / operator pod goes through (PostgreSQL down, promotion, failover,
// timeline switches, upstream loss). States and their meaning: states.ts and
// README "How it works". The work is done by named collaborators:
//   openFollowerSession (follower-session.ts)  connect to the follower, read its facts
//   FollowerRetry (follower-retry.ts)   how long until the next follower attempt
//   WalPipeline (wal-pipeline.ts)       one WAL source through the decode loop into the prefaulter
//   SourceChoice (source-choice.ts)     which WAL source, opened how (upstream.ts: where and as whom)
//   RecoveryPrefetch (recovery.ts)      prefaulting before PostgreSQL accepts connections
//   statusView (status-view.ts)         the /status JSON
import type { Log } from '../log.ts';
import { SESSION_FIELDS, type Config } from '../config/schema.ts';
import type { Follower, FollowerFacts, FollowerStatus } from '../follower/index.ts';
import { CatchUpEstimate } from '../follower/catch-up.ts';
import { resolveIoMethod, type MemoryPlan, type Prefaulter, type ResolvedIoMethod } from '../prefault/index.ts';
import { sleep } from '../sleep.ts';
import { Backoff } from './backoff.ts';
import { ReplayTicks } from './decode-loop.ts';
import { openFollowerSession } from './follower-session.ts';
import { FollowerRetry } from './follower-retry.ts';
import { waitForFollower } from './follower-wait.ts';
import { LogThrottle } from './log-throttle.ts';
import { SourceChoice } from './source-choice.ts';
import { BuiltinPrefetchAdvice } from './builtin-prefetch.ts';
import { answerWithin, errInfo } from './session-helpers.ts';
import { applyFollowerStatus, clearUpstream, initialSnapshot, type AgentSnapshot, type AgentState } from './states.ts';
import { statusView } from './status-view.ts';
import { agentValue } from './status-value.ts';
import { RecoveryPrefetch } from './recovery.ts';
import { newPrefaulter, planWindow } from './prefaulter-factory.ts';
import { WalPipeline } from './wal-pipeline.ts';

export type { AgentSnapshot, AgentState, RmgrCounts } from './states.ts';

export interface AgentOptions {
  /** Feeds the pread latency histogram (io_method pread). */
  observeReadSeconds?: ((seconds: number) => void) | undefined;
}

export class Agent {
  readonly snap: AgentSnapshot = initialSnapshot();
  private cfg: Config;
  private readonly log: Log;
  private readonly observeReadSeconds: ((seconds: number) => void) | undefined;
  /** How pages are brought in; resolved once here so a bad io_method fails at start, not at the first page. */
  private io: ResolvedIoMethod;
  private readonly followerRetry: FollowerRetry;
  private readonly upstreamBackoff: Backoff;
  private readonly sources: SourceChoice;
  private readonly prefetchAdvice: BuiltinPrefetchAdvice;
  /** Prefaulting before PostgreSQL accepts connections (recovery.ts). */
  private readonly recovery: RecoveryPrefetch;

  private readonly stopController = new AbortController();
  private sessionController: AbortController | null = null;
  private runPromise: Promise<void> | null = null;

  // The current session (one follower connection) and pipeline (one WAL source).
  private follower: Follower | null = null;
  private facts: FollowerFacts | null = null;
  private status: FollowerStatus | null = null;
  private prefaulter: Prefaulter | null = null;
  private pipeline: WalPipeline | null = null;
  private readonly replayTicks = new ReplayTicks();

  // While PostgreSQL is down every retry fails the same way: logged once a minute, not every retry.
  private readonly sessionEndLog = new LogThrottle(60_000);
  /** Replay's rate and the catch-up ETA, from the polls. */
  readonly catchUp = new CatchUpEstimate();
  /** The window and reach as sized for the current prefaulter (memory-budget.ts). */
  memory: MemoryPlan | null = null;

  /** Throws when io_method = "willneed" is set but cannot be loaded here. */
  constructor(cfg: Config, log: Log, opts: AgentOptions = {}) {
    this.cfg = cfg;
    this.log = log;
    this.observeReadSeconds = opts.observeReadSeconds;
    this.io = resolveIoMethod(cfg.ioMethod);
    this.followerRetry = new FollowerRetry(cfg);
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
    this.pipeline?.abort();
    await this.pipeline?.closeSource();
    await this.runPromise;
  }

  /** Applies a reloaded config: live where possible, else (keys marked restartsSession in config/schema.ts) restarts the session. */
  reload(next: Config): void {
    const prev = this.cfg;
    this.cfg = next;
    this.followerRetry.reconfigure(next);
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
      await this.recovery.untilConnectable(stop); // no 57P03 attempts while a recovery in view refuses them
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
        await this.teardownSession(failure !== null);
      }
      if (!stop.aborted) {
        this.snap.reconnects.follower++;
        await waitForFollower(this.cfg.host, this.cfg.port, this.followerRetry.delayAfter(failure), stop);
      }
    }
    await recovering;
    this.snap.state = 'stopped';
  }

  private logSessionEnd(e: unknown): void {
    const err = errInfo(e);
    if (this.sessionEndLog.due(err.message)) this.log.warn({ err, retries: this.followerRetry.attempts }, 'session ended; retrying');
  }

  private async teardownSession(failed: boolean): Promise<void> {
    // No session from here on: a recovery that is starting (PostgreSQL just crashed) is prefaulted at once.
    this.facts = null;
    this.recovery.wake();
    // A session that failed (the follower stopped answering) leaves its pipeline running: it ends with the session.
    const pipeline = this.pipeline;
    this.pipeline = null;
    pipeline?.abort();
    await pipeline?.closeSource();
    clearUpstream(this.snap);
    await this.closePrefaulter();
    // After a failure the connection is dead: waiting for its queries held the recovery prefetch back 2 s.
    await this.follower?.close(failed ? 0 : 2).catch(() => {});
    this.follower = null;
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
    const { follower, facts } = await openFollowerSession(cfg, this.log);
    this.follower = follower;
    this.facts = facts;
    this.followerRetry.reset();
    await this.prefetchAdvice.check(follower, cfg.connectTimeoutMs);
    while (!signal.aborted) {
      // A follower that stops answering (frozen connection, hung server) must end the
      // session, closing our handles, rather than stall the state machine.
      const status = await answerWithin(follower.status(), cfg.connectTimeoutMs, 'the follower status query');
      this.onStatus(status);
      if (!status.inRecovery) {
        await this.recovery.stop(); // crash recovery ended: a primary
        await this.endPipeline();
        if (this.snap.state !== 'primary_idle') {
          await this.closePrefaulter();
          clearUpstream(this.snap); // a primary streams from nobody
          this.setState('primary_idle');
        }
        // Polled slowly, but a crash (the connection closes) is seen at once: its recovery is prefaulted from the start.
        await Promise.race([sleep(Math.max(1000, cfg.pollIntervalMs), signal), follower.closed]);
        continue;
      }
      if (!this.pipeline) {
        this.setState('following');
        this.startPipeline(status, signal);
      } else if (this.pipeline.shouldRestart(status, this.cfg)) {
        this.pipeline.abort();
      }
      // `streaming` = WAL can flow (the replication stream is up, or the local reader runs), not "WAL arrived".
      if (this.pipeline?.started && this.snap.state === 'following') this.setState('streaming');
      await this.replayTicks.pause(this.cfg.pollIntervalMs, signal); // sooner while a decode loop waits for replay
    }
    await this.endPipeline();
  }

  // Decode WAL from one source and feed the prefaulter, until the source
  // ends, fails, or the session asks for a restart (wal-pipeline.ts).
  private startPipeline(status: FollowerStatus, sessionSignal: AbortSignal): void {
    const pipeline = new WalPipeline(
      {
        cfg: this.cfg,
        facts: this.facts!,
        follower: this.follower!,
        log: this.log,
        snap: this.snap,
        sources: this.sources,
        upstreamBackoff: this.upstreamBackoff,
        replayTicks: this.replayTicks,
        latestStatus: () => this.status,
        prefaulter: () => this.ensurePrefaulter(this.facts!),
        setState: (st) => this.setState(st),
      },
      status,
      sessionSignal,
    );
    this.pipeline = pipeline;
    void pipeline.done.finally(() => {
      if (this.pipeline === pipeline) this.pipeline = null;
    });
  }

  private async endPipeline(): Promise<void> {
    const pipeline = this.pipeline;
    if (!pipeline) return;
    pipeline.abort();
    await pipeline.done;
  }

  private onStatus(s: FollowerStatus): void {
    this.status = s;
    applyFollowerStatus(this.snap, s, this.pipeline?.upstreamEnd() ?? null);
    this.catchUp.observe(s.inRecovery ? s.replayLsn : null, this.snap.lagBytes, Date.now());
    if (s.replayLsn !== null && this.prefaulter) this.prefaulter.setReplayLsn(s.replayLsn);
    if (s.replayLsn !== null && s.inRecovery && this.recovery.active) this.recovery.setReplayLsn(s.replayLsn);
    this.snap.prefault = this.prefaulter?.stats ?? null;
    this.replayTicks.tick();
  }

  private ensurePrefaulter(facts: FollowerFacts): Prefaulter {
    if (this.prefaulter) return this.prefaulter;
    const cfg = this.cfg;
    this.memory = planWindow(cfg, facts.blockSize, facts.sharedBuffersBytes, this.log);
    // Hand-over from the recovery prefetch: the same prefaulter, so what it brought in is not read again.
    const pgdata = cfg.pgdata || facts.dataDirectory;
    const layout = { pgdata, blockSize: facts.blockSize, majorVersion: Math.floor(facts.serverVersionNum / 10000), catalogVersion: facts.catalogVersion };
    const kept = this.recovery.release(pgdata);
    kept?.setResident(this.memory.resident); // shared_buffers was unknown while recovering (no SQL)
    this.prefaulter = kept ?? newPrefaulter(cfg, layout, this.io, this.memory, this.observeReadSeconds);
    // /status must show the handles it opens from its first read on.
    this.snap.prefault = this.prefaulter.stats;
    if (this.status?.replayLsn != null) this.prefaulter.setReplayLsn(this.status.replayLsn);
    return this.prefaulter;
  }
}
