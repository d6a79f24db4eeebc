// The agent: ties follower tracking, a WAL source, the decoder and the
// prefaulter together, and keeps doing so through everything a Patroni /
// operator pod goes through (PostgreSQL down, promotion, failover, timeline
// switches, upstream loss). States:
//   waiting_for_postgres -> primary_idle | following -> streaming
import { join } from 'node:path';
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import type { Logger } from 'pino';
import type { Config } from '../config/schema.ts';
import { CatchUpEstimate, Follower, FollowerConnectError, type FollowerFacts, type FollowerStatus } from '../follower/index.ts';
import { Prefaulter, checkDataDirectory, planMemory, residencyProbeOrNull, resolveIoMethod, type MemoryPlan, type PrefaultStats, type ResolvedIoMethod } from '../prefault/index.ts';
import { parseConninfo, resolveConnOptions, type ConnOptions } from '../replication/conninfo.ts';
import { ReplicationError } from '../replication/errors.ts';
import { WalDecoder } from '../wal/decoder.ts';
import { formatLsn } from '../lsn.ts';
import { Backoff, sleep } from './backoff.ts';
import { waitForFollower } from './follower-wait.ts';
import { LocalSource } from './local-source.ts';
import { StreamSource } from './stream-source.ts';
import { TimelineEnded, type WalSource } from './wal-source.ts';
import { resolvePassword, resolveReplicationPassword } from '../config/secrets.ts';
import { agentValue, type AgentValue } from './status-value.ts';

/** Retry delay while the follower answers "the database system is starting up", for at most this many retries (1 s). */
const STARTING_UP_RETRY_MS = 25;
const STARTING_UP_QUICK_RETRIES = 40;
/** Longest stretch of decoding and prefaulting before other events get a turn. */
const PUMP_SLICE_MS = 10;

export type AgentState = 'waiting_for_postgres' | 'primary_idle' | 'following' | 'streaming' | 'stopped';

export interface RmgrCounts {
  records: number;
  bytes: number;
}

export interface AgentSnapshot {
  state: AgentState;
  role: 'primary' | 'standby' | 'unknown';
  timeline: number | null;
  upstream: string | null;
  source: 'stream' | 'local' | null;
  upstreamConnected: boolean;
  replayLsn: bigint | null;
  receiveLsn: bigint | null;
  streamLsn: bigint | null;
  decodedLsn: bigint | null;
  replayTimestamp: Date | null;
  replayPaused: boolean;
  lagBytes: number;
  lagSeconds: number;
  decodeErrors: number;
  walByRmgr: Map<string, RmgrCounts>;
  reconnects: { follower: number; upstream: number };
  prefault: PrefaultStats | null;
  lastTick: number;
  startedAt: number;
}

export class Agent {
  private cfg: Config;
  private readonly log: Logger;
  private readonly stopController = new AbortController();
  private sessionController: AbortController | null = null;
  private pipelineController: AbortController | null = null;
  private follower: Follower | null = null;
  private facts: FollowerFacts | null = null;
  private status: FollowerStatus | null = null;
  private prefaulter: Prefaulter | null = null;
  private source: WalSource | null = null;
  private decoder: WalDecoder | null = null;
  private readonly followerBackoff: Backoff;
  private readonly upstreamBackoff: Backoff;
  private replayWaiters: (() => void)[] = [];
  private localUntil = 0; // fall back to local pg_wal until this time (ms)
  private runPromise: Promise<void> | null = null;
  /** Consecutive "starting up" refusals retried quickly. */
  private quickRetries = 0;
  private decodeErrorLogAt = 0;
  readonly snap: AgentSnapshot;
  /** How pages are brought in; resolved once here so a bad io_method fails at start, not at the first page. */
  private io: ResolvedIoMethod;
  /** Replay's rate and the catch-up ETA, from the polls. */
  readonly catchUp = new CatchUpEstimate();
  /** The window and reach as sized for the current prefaulter (memory-budget.ts). */
  memory: MemoryPlan | null = null;

  /** Throws when io_method = "willneed" is set but cannot be loaded here. */
  constructor(cfg: Config, log: Logger) {
    this.cfg = cfg;
    this.log = log;
    this.io = resolveIoMethod(cfg.ioMethod);
    this.followerBackoff = new Backoff(...followerRetryBounds(cfg));
    this.upstreamBackoff = new Backoff(cfg.reconnectMinMs, cfg.reconnectMaxMs);
    const now = Date.now();
    this.snap = {
      state: 'waiting_for_postgres',
      role: 'unknown',
      timeline: null,
      upstream: null,
      source: null,
      upstreamConnected: false,
      replayLsn: null,
      receiveLsn: null,
      streamLsn: null,
      decodedLsn: null,
      replayTimestamp: null,
      replayPaused: false,
      lagBytes: 0,
      lagSeconds: 0,
      decodeErrors: 0,
      walByRmgr: new Map(),
      reconnects: { follower: 0, upstream: 0 },
      prefault: null,
      lastTick: now,
      startedAt: now,
    };
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

  /** Applies a reloaded config: live where possible, else restarts the session. */
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
    const restartKeys: (keyof Config)[] = [
      'pgdata', 'host', 'port', 'username', 'database', 'password', 'passwordFile', 'primaryConninfo', 'replicationUser',
      'replicationPassword', 'replicationPasswordFile', 'sslmode', 'sslrootcert', 'applicationName', 'replicationSlot',
      'source', 'readaheadBytes', 'maxPagesAhead', 'maxOpenFiles', 'statusIntervalMs', 'connectTimeoutMs',
    ];
    const changed = restartKeys.filter((k) => prev[k] !== next[k]);
    if (changed.length) {
      this.log.info({ changed }, 'configuration changed; restarting the session');
      this.sessionController?.abort();
    } else {
      this.log.info('configuration reloaded');
    }
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

  // While PostgreSQL is down every retry fails the same way: log the first
  // failure and then once a minute, not every retry.
  private sessionErrorLoggedAt = 0;
  private lastSessionError = '';
  private logSessionEnd(e: unknown): void {
    const err = errInfo(e);
    const now = Date.now();
    if (err.message !== this.lastSessionError || now - this.sessionErrorLoggedAt > 60_000) {
      this.log.warn({ err, retries: this.followerBackoff.attempts }, 'session ended; retrying');
      this.lastSessionError = err.message;
      this.sessionErrorLoggedAt = now;
    }
  }

  private async teardownSession(): Promise<void> {
    await this.source?.close().catch(() => {});
    this.source = null;
    this.snap.upstreamConnected = false;
    await this.prefaulter?.closeAll().catch(() => {});
    this.prefaulter = null;
    await this.follower?.close().catch(() => {});
    this.follower = null;
    this.facts = null;
    this.snap.role = 'unknown';
    this.snap.prefault = null;
    if (!this.stopController.signal.aborted) this.setState('waiting_for_postgres');
  }

  // One connection to the follower: poll it, and run WAL pipelines while it is a standby.
  private async session(signal: AbortSignal): Promise<void> {
    this.setState('waiting_for_postgres');
    const cfg = this.cfg;
    const password = resolvePassword(cfg, process.env);
    const follower = await Follower.connect({
      host: cfg.host,
      port: cfg.port,
      user: cfg.username,
      database: cfg.database,
      password,
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
          await this.prefaulter?.closeAll();
          this.prefaulter = null;
          this.snap.prefault = null;
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
      await sleep(this.cfg.pollIntervalMs, signal);
    }
    this.pipelineController?.abort();
    if (pipeline) await pipeline;
  }

  // Both prefetchers hint the same pages: twice the I/O requests and CPU for
  // no gain (docs/benchmarks.md, prefaulter+builtin). Said once per setting
  // value, not on every reconnect.
  private builtinPrefetchAdvised = '';
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
    this.snap.lastTick = Date.now();
    this.snap.role = s.inRecovery ? 'standby' : 'primary';
    this.snap.timeline = s.timeline;
    this.snap.replayLsn = s.replayLsn;
    this.snap.receiveLsn = s.receiveLsn;
    this.snap.replayTimestamp = s.replayTimestamp;
    this.snap.replayPaused = s.replayPaused;
    const upstreamEnd = this.source?.upstreamEnd() ?? null;
    let head = s.receiveLsn ?? 0n;
    if (upstreamEnd !== null && upstreamEnd > head) head = upstreamEnd;
    this.snap.lagBytes = s.replayLsn !== null && head > s.replayLsn ? Number(head - s.replayLsn) : 0;
    this.snap.lagSeconds =
      this.snap.lagBytes > 0 && s.replayTimestamp ? Math.max(0, (Date.now() - s.replayTimestamp.getTime()) / 1000) : 0;
    this.catchUp.observe(s.inRecovery ? s.replayLsn : null, this.snap.lagBytes, Date.now());
    if (s.replayLsn !== null && this.prefaulter) this.prefaulter.setReplayLsn(s.replayLsn);
    this.snap.prefault = this.prefaulter?.stats ?? null;
    const waiters = this.replayWaiters;
    this.replayWaiters = [];
    for (const w of waiters) w();
  }

  // Restart when replay overtook us (our records are useless) or the follower
  // moved to another timeline or upstream.
  private pipelineTimeline: number | null = null;
  private pipelineUpstream: string | null = null;
  private shouldRestartPipeline(s: FollowerStatus): boolean {
    const decoded = this.decoder?.nextRecordLsn ?? null;
    if (s.replayLsn !== null && decoded !== null && s.replayLsn - decoded > BigInt(this.cfg.readaheadBytes) * 2n) {
      this.log.info({ replayLsn: formatLsn(s.replayLsn), decodedLsn: formatLsn(decoded) }, 'replay overtook the prefaulter; skipping ahead');
      return true;
    }
    if (s.timeline !== null && this.pipelineTimeline !== null && s.timeline !== this.pipelineTimeline && this.source?.kind === 'local') {
      return true;
    }
    const up = s.upstream ? `${s.upstream.host}:${s.upstream.port}` : null;
    // Reading the local pg_wal only because no upstream was known (its walreceiver
    // was down, e.g. the primary restarted): stream again once it is back.
    if (up && this.pipelineUpstream === null && this.source?.kind === 'local' && this.cfg.source === 'stream' && Date.now() >= this.localUntil) {
      this.log.info({ upstream: up }, 'the follower has an upstream again; streaming from it');
      return true;
    }
    if (!this.cfg.primaryConninfo && up && this.pipelineUpstream && up !== this.pipelineUpstream) {
      this.log.info({ from: this.pipelineUpstream, to: up }, 'the follower changed upstream; following');
      return true;
    }
    return false;
  }

  private waitForTick(signal: AbortSignal): Promise<void> {
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

  private ensurePrefaulter(): Prefaulter {
    if (this.prefaulter) return this.prefaulter;
    const facts = this.facts!;
    const cfg = this.cfg;
    const memory = planMemory(cfg.maxPagesAhead, facts.blockSize, facts.sharedBuffersBytes);
    if (memory.window.warning) this.log.warn({ memory: memory.budget }, memory.window.warning);
    this.log.info({ maxPagesAhead: memory.window.maxPagesAhead, setting: cfg.maxPagesAhead, memory: memory.budget, resident: memory.resident }, 'readahead window sized');
    this.memory = memory;
    this.prefaulter = new Prefaulter({
      pgdata: cfg.pgdata || facts.dataDirectory,
      blockSize: facts.blockSize,
      majorVersion: Math.floor(facts.serverVersionNum / 10000),
      catalogVersion: facts.catalogVersion,
      readaheadBytes: cfg.readaheadBytes,
      maxPagesAhead: memory.window.maxPagesAhead,
      resident: memory.resident,
      residencyProbe: residencyProbeOrNull(),
      ioConcurrency: cfg.ioConcurrency,
      ioMethod: this.io,
      maxOpenFiles: cfg.maxOpenFiles || undefined,
      observeReadSeconds: this.observeReadSeconds,
    });
    // /status must show the handles it opens from its first read on.
    this.snap.prefault = this.prefaulter.stats;
    return this.prefaulter;
  }

  /** Set by the CLI to feed the pread latency histogram. */
  observeReadSeconds: ((s: number) => void) | undefined;

  // Decode WAL from one source and feed the prefaulter, until the source
  // ends, fails, or the session asks for a restart.
  private async runPipeline(status: FollowerStatus, sessionSignal: AbortSignal): Promise<void> {
    const controller = new AbortController();
    this.pipelineController = controller;
    const onSession = () => controller.abort();
    sessionSignal.addEventListener('abort', onSession, { once: true });
    const signal = controller.signal;
    const facts = this.facts!;
    const replay = status.replayLsn ?? status.receiveLsn ?? 0n;
    const page = BigInt(8192);
    const startLsn = replay - (replay % page);
    const timeline = status.timeline ?? 1;
    this.pipelineTimeline = timeline;
    this.pipelineUpstream = status.upstream ? `${status.upstream.host}:${status.upstream.port}` : null;
    try {
      const useLocal = this.cfg.source === 'local' || Date.now() < this.localUntil;
      let source: WalSource;
      if (useLocal) {
        source = this.openLocal(startLsn, timeline, facts, signal);
      } else {
        const conn = await this.upstreamConnOptions(status);
        if (!conn) {
          this.log.warn('no upstream known (pg_stat_wal_receiver is empty and primary_conninfo unset); reading the local pg_wal');
          source = this.openLocal(startLsn, timeline, facts, signal);
        } else {
          this.snap.upstream = `${conn.host}:${conn.port}`;
          source = await StreamSource.open({
            conn,
            startLsn,
            timeline,
            slot: this.cfg.replicationSlot,
            statusIntervalMs: this.cfg.statusIntervalMs,
            signal,
          });
          this.snap.upstreamConnected = true;
          this.upstreamBackoff.reset();
          this.log.info({ upstream: this.snap.upstream, startLsn: formatLsn(startLsn), timeline }, 'streaming WAL from the upstream');
        }
      }
      this.source = source;
      this.snap.source = source.kind;
      if (signal.aborted) return;
      await this.pump(source, startLsn, facts, signal);
    } catch (e) {
      if (signal.aborted) return;
      await this.onPipelineError(e, sessionSignal);
    } finally {
      sessionSignal.removeEventListener('abort', onSession);
      await this.source?.close().catch(() => {});
      this.source = null;
      this.decoder = null;
      this.snap.upstreamConnected = false;
      if (this.pipelineController === controller) this.pipelineController = null;
      if (this.snap.state === 'streaming') this.setState('following');
    }
  }

  private openLocal(startLsn: bigint, timeline: number, facts: FollowerFacts, signal: AbortSignal): LocalSource {
    this.snap.upstream = null;
    this.log.info({ startLsn: formatLsn(startLsn), timeline }, 'reading WAL from the local pg_wal');
    return new LocalSource({
      pgWalDir: join(this.cfg.pgdata || facts.dataDirectory, 'pg_wal'),
      startLsn,
      timeline,
      segmentSize: facts.segmentSize,
      pollIntervalMs: this.cfg.pollIntervalMs,
      limit: () => this.status?.receiveLsn ?? (this.status?.replayLsn != null ? this.status.replayLsn + BigInt(this.cfg.readaheadBytes) : null),
      signal,
    });
  }

  private async onPipelineError(e: unknown, signal: AbortSignal): Promise<void> {
    if (e instanceof TimelineEnded) {
      this.log.info({ nextTimeline: e.nextTimeline, at: formatLsn(e.nextTimelineStart) }, 'upstream switched timeline; following');
      return;
    }
    if (e instanceof ReplicationError) {
      this.snap.reconnects.upstream++;
      if (e.code === 'WAL_REMOVED') {
        this.localUntil = Date.now() + 60_000;
        this.log.warn({ err: errInfo(e) }, 'the upstream no longer has the WAL we need; reading the local pg_wal for a while');
        return;
      }
      const delay = this.upstreamBackoff.next();
      this.log.warn({ err: errInfo(e), code: e.code, retryInMs: delay }, 'replication connection failed');
      await sleep(delay, signal);
      return;
    }
    const delay = this.upstreamBackoff.next();
    this.snap.reconnects.upstream++;
    this.log.warn({ err: errInfo(e), retryInMs: delay }, 'WAL pipeline failed');
    await sleep(delay, signal);
  }

  private async upstreamConnOptions(status: FollowerStatus): Promise<ConnOptions | null> {
    const cfg = this.cfg;
    let partial: Partial<ConnOptions>;
    if (cfg.primaryConninfo) {
      partial = parseConninfo(cfg.primaryConninfo);
    } else {
      // The follower's own primary_conninfo has the password (pg_stat_wal_receiver
      // masks it) and exists before its WAL receiver connects; the receiver
      // says where it really streams from (Patroni rewrites the setting on failover).
      const setting = await this.follower?.primaryConninfo();
      const fromSetting = setting ? parseConninfoOrNull(setting) : null;
      if (status.upstream) {
        partial = parseConninfoOrNull(status.upstream.conninfo) ?? {};
        delete partial.password;
        partial.host = status.upstream.host || partial.host;
        partial.port = status.upstream.port || partial.port;
        if (fromSetting?.password && (fromSetting.user ?? partial.user) === partial.user) partial.password = fromSetting.password;
      } else if (fromSetting?.host) {
        partial = fromSetting;
      } else {
        return null;
      }
    }
    if (cfg.replicationUser) partial.user = cfg.replicationUser;
    // A configured replication password wins; else the conninfo's; else ~/.pgpass.
    if (cfg.replicationPassword || cfg.replicationPasswordFile || !partial.password) {
      const password = resolveReplicationPassword(
        cfg,
        { host: partial.host ?? '', port: partial.port ?? 5432, user: partial.user ?? cfg.username },
        process.env,
      );
      if (password) partial.password = password;
    }
    if (cfg.sslrootcert) partial.sslrootcert = cfg.sslrootcert;
    if (cfg.sslmode && !cfg.primaryConninfo) partial.sslmode = cfg.sslmode as ConnOptions['sslmode'];
    partial.applicationName = cfg.applicationName;
    partial.connectTimeoutMs = cfg.connectTimeoutMs;
    delete partial.dbname;
    return resolveConnOptions(partial);
  }

  private async pump(source: WalSource, startLsn: bigint, facts: FollowerFacts, signal: AbortSignal): Promise<void> {
    const decoder = new WalDecoder({ startLsn, segmentSize: facts.segmentSize });
    this.decoder = decoder;
    const prefaulter = this.ensurePrefaulter();
    if (this.status?.replayLsn != null) prefaulter.setReplayLsn(this.status.replayLsn);
    let expected = startLsn;
    let sliceStart = performance.now();
    for await (const chunk of source) {
      if (signal.aborted) return;
      // Buffered chunks arrive as microtasks: without a macrotask yield now and
      // then, a burst would hold off /healthz (a liveness probe), /metrics and
      // the replay-position polls that move the window, for its whole length.
      if (performance.now() - sliceStart > PUMP_SLICE_MS) {
        await yieldToEventLoop();
        sliceStart = performance.now();
        if (signal.aborted) return;
      }
      if (chunk.lsn !== expected) {
        throw new Error(`WAL source jumped from ${formatLsn(expected)} to ${formatLsn(chunk.lsn)}; restarting`);
      }
      expected += BigInt(chunk.data.length);
      this.snap.streamLsn = expected;
      if (this.snap.state !== 'streaming') this.setState('streaming');
      decoder.push(chunk.data);
      for (;;) {
        const item = decoder.next();
        if (item === null) break;
        if ('kind' in item) {
          this.onDecodeError(item.lsn, item.message);
          continue;
        }
        let c = this.snap.walByRmgr.get(item.rmgrName);
        if (!c) this.snap.walByRmgr.set(item.rmgrName, (c = { records: 0, bytes: 0 }));
        c.records++;
        c.bytes += item.totalLength;
        this.snap.decodedLsn = item.endLsn;
        prefaulter.offer(item);
        while (!prefaulter.wantsMore()) {
          await this.waitForTick(signal);
          if (signal.aborted) return;
        }
      }
    }
  }

  private onDecodeError(lsn: bigint, message: string): void {
    this.snap.decodeErrors++;
    const now = Date.now();
    // One line per 10 s at most: a corrupt stretch must not flood the logs.
    if (now - this.decodeErrorLogAt > 10_000) {
      this.decodeErrorLogAt = now;
      this.log.warn({ lsn: formatLsn(lsn), decodeErrors: this.snap.decodeErrors }, `WAL decode error: ${message}`);
    }
  }

  /** A plain JSON view for /status and the status command. */
  statusJson(): Record<string, unknown> {
    const s = this.snap;
    const lsn = (v: bigint | null) => (v === null ? null : formatLsn(v));
    const p = s.prefault;
    return {
      state: s.state,
      role: s.role,
      timeline: s.timeline,
      upstream: s.upstream,
      source: s.source,
      upstreamConnected: s.upstreamConnected,
      replayLsn: lsn(s.replayLsn),
      receiveLsn: lsn(s.receiveLsn),
      streamLsn: lsn(s.streamLsn),
      decodedLsn: lsn(s.decodedLsn),
      replayPaused: s.replayPaused,
      replayTimestamp: s.replayTimestamp?.toISOString() ?? null,
      lagBytes: s.lagBytes,
      lagSeconds: s.lagSeconds,
      aheadBytes: p?.aheadBytes ?? 0,
      aheadPages: p?.aheadPages ?? 0,
      ...valueJson(this),
      decodeErrors: s.decodeErrors,
      walRecords: [...s.walByRmgr.values()].reduce((a, c) => a + c.records, 0),
      walBytes: [...s.walByRmgr.values()].reduce((a, c) => a + c.bytes, 0),
      prefault: p ? { ...p } : null,
      reconnects: { ...s.reconnects },
      settings: {
        ioConcurrency: this.cfg.ioConcurrency,
        ioMethod: this.io.method,
        readaheadBytes: this.cfg.readaheadBytes,
        maxPagesAhead: this.memory?.window.maxPagesAhead ?? this.cfg.maxPagesAhead,
        maxPagesAheadSetting: this.cfg.maxPagesAhead,
        source: this.cfg.source,
        logLevel: this.cfg.logLevel,
      },
      uptimeSeconds: (Date.now() - s.startedAt) / 1000,
    };
  }

  /** Liveness: the main loop ticked recently (or is legitimately waiting on backoff). */
  healthy(): boolean {
    return Date.now() - this.snap.lastTick < 30_000 + this.cfg.reconnectMaxMs;
  }

}

/** What prefaulting is worth and what memory it has, for /status (status-value.ts). */
function valueJson(agent: Agent): AgentValue {
  return agentValue(agent.snap.prefault, agent.catchUp, agent.memory);
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

function parseConninfoOrNull(text: string): Partial<ConnOptions> | null {
  try {
    return parseConninfo(text);
  } catch {
    return null;
  }
}

function errInfo(e: unknown): { message: string; code?: string } {
  if (e instanceof Error) return { message: e.message, code: (e as { code?: string }).code };
  return { message: String(e) };
}
