// Prefaulting while PostgreSQL replays WAL before it accepts connections:
// crash recovery of a primary, a standby starting up until it is consistent,
// a standby with hot_standby = off (never accepts connections). No SQL: the
// redo point, geometry and version come from PGDATA/global/pg_control and
// PG_VERSION, replay progress from the startup process's title in /proc
// (follower/recovery-progress.ts); WAL from the local pg_wal. Needs `pgdata`
// configured (without SQL nothing else says where the data directory is).
// The agent hands the prefaulter over to its SQL path once PostgreSQL
// answers (release()), so pages already brought in are not read again.
import { join } from 'node:path';
import type { Log } from '../log.ts';
import type { Config } from '../config/schema.ts';
import { ControlFileError } from '../follower/control-file.ts';
import { readRecoveryProgress, recoveryWindowEnd, type RecoveryProgress } from '../follower/recovery-progress.ts';
import type { Prefaulter, ResolvedIoMethod } from '../prefault/index.ts';
import { newPrefaulter, planWindow } from './prefaulter-factory.ts';
import { LocalSource } from '../wal-source/local.ts';
import { formatLsn } from '../lsn.ts';
import { DecodeLoop, ReplayTicks } from './decode-loop.ts';
import { replayOvertook } from './readahead.ts';
import { ReplayEstimate, readBytesOf } from './replay-estimate.ts';
import { readSharedBufferPages } from '../follower/shared-memory.ts';
import { endOfRecoveryCheckpoint, recoveryWanted, replacement, type ReadingFrom } from './recovery-checks.ts';
import { errInfo } from './session-helpers.ts';
import { ConnectGate, StartupSettle } from './recovery-startup.ts';
import type { AgentSnapshot } from './states.ts';

/** How long a pipeline waits for the SQL session to take it over once PostgreSQL accepts connections. */
const HANDOVER_GRACE_MS = 10_000;
/**
 * A running pipeline stops for a missing postmaster.pid only once every look
 * for this long found none: a postmaster replacing a stale one unlinks it and
 * writes a new one at once. (One second look 20 ms later was not enough: a
 * loaded machine delayed it into the next such gap once in CI.)
 */
const PID_FILE_GONE_MS = 200;
/** Progress not visible for this long (not just a stale postmaster.pid before the new postmaster writes its own): say so. */
const NOT_VISIBLE_WARN_MS = 2000;

export interface RecoveryHost {
  cfg(): Config;
  io(): ResolvedIoMethod;
  observeReadSeconds: ((seconds: number) => void) | undefined;
  snap: AgentSnapshot;
  log: Log;
  /** The SQL session is up: the pipeline runs on until release(), and its window follows setReplayLsn(). */
  sessionUp(): boolean;
  /** The pipeline started or stopped (the agent's state follows). */
  onChange(): void;
}

interface Pipeline extends ReadingFrom {
  controller: AbortController;
  prefaulter: Prefaulter;
  loop: DecodeLoop;
  done: Promise<void>;
  ended: boolean;
  /** Replay position last fed from PGDATA and /proc. */
  replay: bigint;
  estimate: ReplayEstimate;
  /** The startup process whose shared memory told shared_buffers (read once per process). */
  sizedBy: number;
}

export class RecoveryPrefetch {
  private pipe: Pipeline | null = null;
  private progress: RecoveryProgress | null = null;
  /** Replay LSN from SQL, once the session is up. */
  private sqlReplay: bigint | null = null;
  private readonly ticks = new ReplayTicks();
  private lastProblem = '';
  private saidNoPgdata = false;
  private saidNotVisible = false;
  /** When replay progress was first seen not visible (the warning waits: a starting postmaster rewrites postmaster.pid). */
  private notVisibleSince: number | null = null;
  /** When PostgreSQL was first seen accepting connections while a pipeline ran. */
  private readySince: number | null = null;
  /** When a running pipeline first found postmaster.pid missing (PID_FILE_GONE_MS). */
  private pidMissingSince: number | null = null;

  private readonly startup = new StartupSettle();
  /** Resolves once start-up is settled (recovery-startup.ts): then the agent loads what the first hint does not need. */
  readonly settled = this.startup.settled;
  private readonly connectGate = new ConnectGate();

  constructor(private readonly h: RecoveryHost) {}

  /** SQL attempts wait while a recovery in view refuses connections (recovery-startup.ts, ConnectGate). */
  untilConnectable(signal: AbortSignal): Promise<void> {
    return this.connectGate.wait(this.refusesConnections(), signal);
  }

  private refusesConnections(): boolean {
    const p = this.progress;
    return this.pipe !== null && p !== null && p.startup.kind === 'startup' && !p.acceptsConnections;
  }

  /** Aborted by wake(): ends the pause between polls; a new one for each pause. */
  private wakeUp = new AbortController();

  /** The SQL session ended (PostgreSQL may have just crashed): look at PGDATA now, not at the next poll. */
  wake(): void {
    this.wakeUp.abort(); // a wake during a poll leaves it aborted: the next pause is skipped
  }

  /** A recovery pipeline runs (the agent is `recovering` until the SQL path takes over). */
  get active(): boolean {
    return this.pipe !== null;
  }

  /** Polls PGDATA until signal aborts; never throws. */
  async run(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      const cfg = this.h.cfg();
      try {
        if (!cfg.pgdata) this.noPgdata();
        else if (this.pipe || !this.h.sessionUp()) await this.poll(cfg);
      } catch (e) {
        this.h.log.warn({ err: errInfo(e) }, 'recovery prefetch failed; retrying');
        await this.stop();
      }
      if (!this.pipe) this.startup.settle();
      if (!this.refusesConnections()) this.connectGate.open();
      // Every FAST_POLL_MS while the window is full (the decode loop waits for replay): at
      // poll_interval the window stood still for up to 100 ms while replay ran through it.
      if (!this.wakeUp.signal.aborted) await this.ticks.pause(cfg.pollIntervalMs, AbortSignal.any([signal, this.wakeUp.signal]));
      this.wakeUp = new AbortController();
    }
    await this.stop();
  }

  /** SIGHUP: io_method / io_concurrency apply to a running recovery prefetch too. */
  reconfigure(io: ResolvedIoMethod, ioConcurrency: number): void {
    this.pipe?.prefaulter.setIoMethod(io);
    this.pipe?.prefaulter.setIoConcurrency(ioConcurrency);
  }

  /** Replay position from SQL (the session is up, the hand-over not done yet). */
  setReplayLsn(lsn: bigint): void {
    this.sqlReplay = lsn;
    this.pipe?.prefaulter.setReplayLsn(lsn);
    this.ticks.tick();
  }

  /**
   * The SQL path takes over (the node is a standby): stop reading, keep the
   * prefaulter (its recent pages and open files), or null when none runs.
   */
  release(pgdata: string): Prefaulter | null {
    const pipe = this.pipe;
    if (!pipe) return null;
    this.pipe = null;
    pipe.controller.abort();
    this.freezeView(pipe);
    if (pipe.pgdata !== pgdata) {
      void pipe.done.then(() => pipe.prefaulter.closeAll());
      this.h.onChange();
      return null;
    }
    pipe.prefaulter.restartFeed();
    pipe.prefaulter.checkResidency(true);
    this.h.log.info({ prefaultsIssued: pipe.prefaulter.stats.issued }, 'PostgreSQL accepts connections; the SQL path takes over the recovery prefetch');
    this.h.onChange();
    return pipe.prefaulter;
  }

  /** Stops the pipeline and closes every file (the node is a primary, PGDATA went away, or the agent stops). */
  async stop(): Promise<void> {
    const pipe = this.pipe;
    if (!pipe) return;
    this.pipe = null;
    pipe.controller.abort();
    await pipe.done;
    this.freezeView(pipe);
    await pipe.prefaulter.closeAll().catch(() => {});
    if (this.h.snap.prefault === pipe.prefaulter.stats) this.h.snap.prefault = null;
    this.h.onChange();
  }

  /**
   * PostgreSQL accepts connections (a hot standby reached consistency): the
   * SQL session takes the prefaulter over as it connects (release()); keep it
   * until then, but not forever (SQL may be failing for another reason).
   */
  private awaitingHandOver(pipe: Pipeline | null, p: RecoveryProgress): boolean {
    if (!pipe || !p.acceptsConnections) {
      this.readySince = null;
      return false;
    }
    this.readySince ??= Date.now();
    return Date.now() - this.readySince < HANDOVER_GRACE_MS;
  }

  private noPgdata(): void {
    if (this.saidNoPgdata) return;
    this.saidNoPgdata = true;
    this.h.log.info('pgdata is not configured: the data directory is unknown until PostgreSQL accepts connections, so recovery (crash recovery, a standby starting up, hot_standby = off) is not prefaulted; set pgdata to prefault it');
  }

  private async poll(cfg: Config): Promise<void> {
    let p: RecoveryProgress;
    try {
      p = await readRecoveryProgress(cfg.pgdata);
    } catch (e) {
      const msg = e instanceof ControlFileError ? e.message : `reading the recovery state in ${cfg.pgdata} failed: ${errInfo(e).message}`;
      // Still torn after its retries: PostgreSQL is rewriting it; the pipeline keeps going, the next poll reads again.
      if (this.pipe && e instanceof ControlFileError && e.problem === 'torn') {
        this.h.log.debug({ pgdata: cfg.pgdata }, msg);
        return;
      }
      if (this.pipe) {
        this.h.log.warn({ pgdata: cfg.pgdata }, `${msg}; stopping the recovery prefetch and closing every file`);
        await this.stop();
      } else if (msg !== this.lastProblem) {
        this.h.log.warn({ pgdata: cfg.pgdata }, `${msg}; not prefaulting recovery, waiting for PostgreSQL to accept connections`);
      }
      this.lastProblem = msg;
      return;
    }
    this.lastProblem = '';
    if (this.pipe && p.postmasterAlive === false) {
      this.pidMissingSince ??= Date.now();
      if (Date.now() - this.pidMissingSince < PID_FILE_GONE_MS) return; // the next poll looks again
    } else this.pidMissingSince = null;
    this.progress = p;
    let pipe = this.pipe;
    const replaced = pipe === null ? null : replacement(pipe, cfg.pgdata, p);
    if (replaced !== null) {
      this.h.log.warn({ pgdata: cfg.pgdata }, `PGDATA was replaced (${replaced}): stopping the recovery prefetch and closing every file`);
      await this.stop();
      pipe = null;
    }
    const sessionUp = this.h.sessionUp();
    if (!sessionUp && !recoveryWanted(p) && !this.awaitingHandOver(pipe, p) && !(pipe && endOfRecoveryCheckpoint(p))) {
      if (pipe) {
        this.h.log.info({ controlState: p.control.state }, 'no recovery to prefault any more; closing every file');
        await this.stop();
      }
      return;
    }
    if (sessionUp && !pipe) return;
    // Replay moved back (PostgreSQL restarted from its redo point) or ran past what we read: start over there.
    if (pipe && (pipe.ended || (!sessionUp && p.replayLsn < pipe.replay - BigInt(p.segmentSize)) || replayOvertook(p.replayLsn, pipe.loop.decoder.nextRecordLsn, cfg.readaheadBytes))) {
      pipe.controller.abort();
      await pipe.done;
      pipe = this.pipe = this.startPipeline(p, cfg, pipe.prefaulter);
    }
    if (!pipe) {
      if (p.control.majorVersion === null) {
        const msg = `${join(cfg.pgdata, 'PG_VERSION')} is missing or unreadable: not prefaulting recovery`;
        if (msg !== this.lastProblem) this.h.log.warn(msg);
        this.lastProblem = msg;
        return;
      }
      pipe = this.pipe = this.startPipeline(p, cfg, null);
      this.h.log.info(
        { controlState: p.control.state, kind: p.recovery, redo: formatLsn(p.control.checkPointCopy.redo), replay: formatLsn(p.replayLsn), timeline: p.timeline, progressVisible: p.progressVisible },
        'PostgreSQL is recovering and refuses connections: prefaulting from the local pg_wal',
      );
      this.h.onChange();
    }
    const invisible = !p.progressVisible && p.startup.kind === 'not-visible' && p.startup.reason !== 'no-postmaster-pid';
    this.notVisibleSince = invisible ? (this.notVisibleSince ?? Date.now()) : null;
    if (invisible && !this.saidNotVisible && Date.now() - this.notVisibleSince! >= NOT_VISIBLE_WARN_MS) {
      this.saidNotVisible = true;
      this.h.log.warn({ reason: p.notVisibleReason }, `replay progress is not visible: prefaulting a bounded window (readahead_bytes, max_pages_ahead) from the redo point only. ${p.notVisibleReason}`);
    }
    if (!sessionUp) {
      const at = await this.replayEstimate(pipe, p);
      pipe.replay = at;
      pipe.prefaulter.setReplayLsn(at);
      this.h.snap.prefault = pipe.prefaulter.stats;
      this.h.snap.replayLsn = at;
      this.h.snap.timeline = p.timeline;
      this.h.snap.source = 'local';
    }
    this.updateView(pipe, p);
    this.ticks.tick();
  }

  /** Replay inside the title's segment (replay-estimate.ts), else the title's segment start or the redo point. */
  private async replayEstimate(pipe: Pipeline, p: RecoveryProgress): Promise<bigint> {
    if (p.startup.kind !== 'startup' || p.replaySource !== 'startup-process') return p.replayLsn;
    if (pipe.sizedBy !== p.startup.pid) await this.learnSharedBuffers(pipe, p.startup.pid, p);
    const read = await readBytesOf(p.startup.pid);
    return read === null ? p.replayLsn : pipe.estimate.observe(p.replayLsn, p.startup.pid, read);
  }

  /**
   * shared_buffers from the server's shared memory (no SQL answers yet): how
   * long replay keeps a page it read (the estimate) or wrote from an image or
   * initialised (the planner: later references need no hint). Until known,
   * the estimate assumes 128 MB and the planner hints such pages again.
   */
  private async learnSharedBuffers(pipe: Pipeline, pid: number, p: RecoveryProgress): Promise<void> {
    pipe.sizedBy = pid;
    const pages = await readSharedBufferPages(pid, p.blockSize, p.control);
    if (pages === null) return;
    pipe.estimate.setSharedBufferPages(pages);
    pipe.prefaulter.setSharedBuffers(pages);
    this.h.log.debug({ pid, sharedBuffersPages: pages }, 'shared_buffers read off the startup process\'s shared memory');
  }

  private startPipeline(p: RecoveryProgress, cfg: Config, kept: Prefaulter | null): Pipeline {
    const layout = { pgdata: cfg.pgdata, blockSize: p.blockSize, majorVersion: p.control.majorVersion!, catalogVersion: p.control.catalogVersionNo };
    let prefaulter = kept;
    if (!prefaulter) {
      prefaulter = newPrefaulter(cfg, layout, this.h.io(), planWindow(cfg, p.blockSize, 0, this.h.log), this.h.observeReadSeconds);
    }
    prefaulter.restartFeed();
    prefaulter.checkResidency(false);
    prefaulter.setReplayLsn(p.replayLsn);
    const start = p.replayLsn - (p.replayLsn % BigInt(p.control.xlogBlcksz));
    const controller = new AbortController();
    const source = new LocalSource({
      pgWalDir: join(cfg.pgdata, 'pg_wal'),
      startLsn: start,
      timeline: p.timeline,
      segmentSize: p.segmentSize,
      pollIntervalMs: cfg.pollIntervalMs,
      limit: () => this.readLimit(),
      signal: controller.signal,
    });
    const estimate = new ReplayEstimate(p.control.xlogBlcksz, p.blockSize, undefined, p.segmentSize);
    const loop = new DecodeLoop({
      source,
      startLsn: start,
      segmentSize: p.segmentSize,
      blockSize: p.blockSize,
      walPageSize: p.control.xlogBlcksz,
      readaheadBytes: cfg.readaheadBytes,
      prefaulter,
      snap: this.h.snap,
      log: this.h.log,
      nextReplayUpdate: (s) => this.ticks.next(s),
      replayLsn: () => this.h.snap.replayLsn,
      // The recovering state is the agent's; undecodable-stream detection is for streaming only.
      setState: () => {},
      signal: controller.signal,
      onFirstHint: () => this.startup.settleWhen(() => this.pipe?.prefaulter !== prefaulter || this.progress?.acceptsConnections === true),
      onRecord: (rec) => estimate.record(rec),
    });
    const pipe: Pipeline = { controller, systemIdentifier: p.control.systemIdentifier, controlFileId: p.control.fileId, pgdata: cfg.pgdata, prefaulter, loop, done: Promise.resolve(), ended: false, replay: p.replayLsn, estimate, sizedBy: 0 };
    pipe.done = loop
      .run()
      .catch((e: unknown) => {
        if (!controller.signal.aborted) this.h.log.warn({ err: errInfo(e) }, 'recovery prefetch pipeline failed; starting it again');
      })
      .finally(() => {
        pipe.ended = true;
        return source.close();
      });
    return pipe;
  }

  /** How far pg_wal may be read: readahead_bytes past replay as far as we know it (the decoder finds the end of WAL). */
  private readLimit(): bigint | null {
    const p = this.progress;
    if (!p) return null;
    const readahead = this.h.cfg().readaheadBytes;
    let limit = recoveryWindowEnd(p, readahead);
    if (this.sqlReplay !== null && this.sqlReplay + BigInt(readahead) > limit) limit = this.sqlReplay + BigInt(readahead);
    return limit;
  }

  private updateView(pipe: Pipeline, p: RecoveryProgress): void {
    this.h.snap.recovery = {
      controlState: p.control.state,
      // "none" with a stale "ready" postmaster.pid (recoveryWanted): a crash.
      kind: p.recovery === 'none' ? 'crash' : p.recovery,
      redoLsn: p.control.checkPointCopy.redo,
      replayLsn: pipe.replay,
      progressVisible: p.progressVisible,
      notVisibleReason: p.notVisibleReason,
      prefaultsIssued: pipe.prefaulter.stats.issued,
    };
  }

  private freezeView(pipe: Pipeline): void {
    if (this.h.snap.recovery) this.h.snap.recovery.prefaultsIssued = pipe.prefaulter.stats.issued;
  }
}
