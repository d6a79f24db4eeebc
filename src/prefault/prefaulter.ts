// The prefault engine's facade: the agent offers every decoded record in LSN
// order and reports the follower's replay LSN; we bring the blocks replay is
// about to need into the page cache, a window ahead of it: by hinting them to
// the kernel (posix_fadvise WILLNEED) or by reading them (pread).
// Read-only by construction: files are opened O_RDONLY, never created,
// written, truncated or locked, and the process never chdir()s into PGDATA.
import type { WalRecord } from '../wal/types.ts';
import { FileHandles, blockFit, type FileHandleStats, type OpenFile } from './file-handles.ts';
import { HintCoalescer } from './hint-coalescer.ts';
import { NearHints } from './near-hints.ts';
import { BlockReader } from './io.ts';
import { SegmentPaths } from './paths.ts';
import { BlockPlanner, DEFAULT_RESIDENT, FSM_FORK, VM_FORK, type ResidentPages } from './planner.ts';
import type { ResidencyProbe } from './page-residency.ts';
import type { IoMethod, ResolvedIoMethod, WillneedHint } from './willneed.ts';
import { emptySkipCounts, type SkipCounts } from './skip.ts';
import { ReadaheadWindow } from './window.ts';

export interface PrefaultOptions {
  pgdata: string;
  blockSize: number;
  majorVersion: number;
  catalogVersion: number;
  /** Prefault records up to this many WAL bytes ahead of replay (agent default 32 MiB). */
  readaheadBytes: number;
  /** At most this many distinct pages outstanding ahead of replay (agent default 16384). */
  maxPagesAhead: number;
  /** Concurrent preads (agent default 64; the libuv pool must be sized to match: sizeThreadpool). */
  ioConcurrency: number;
  /** How blocks are brought in (resolveIoMethod); default pread. */
  ioMethod?: ResolvedIoMethod | undefined;
  /** Cap on cached fds (default: RLIMIT_NOFILE soft limit minus headroom). */
  maxOpenFiles?: number | undefined;
  observeReadSeconds?: ((s: number) => void) | undefined;
  /** What the follower and this process keep in memory: how far back a page still counts as resident (default DEFAULT_RESIDENT). */
  resident?: ResidentPages;
  /** Checks whether a hinted page was resident already (page-residency.ts); null/absent = not checked. */
  residencyProbe?: ResidencyProbe | null;
  /** A file found missing is not retried for this long (default 1 s). */
  missingTtlMs?: number;
}

export interface PrefaultStats {
  /** records offered */
  records: number;
  /** records already behind replay when their turn came (not prefaulted) */
  recordsBehind: number;
  /** blocks accepted for reading (queued) */
  requested: number;
  /** preads submitted, or hints given */
  issued: number;
  /** preads finished, or hints the kernel accepted */
  completed: number;
  skipped: SkipCounts;
  /** read jobs waiting for an I/O slot */
  queued: number;
  /** preads running */
  inFlight: number;
  aheadPages: number;
  /** head record LSN minus replay LSN */
  aheadBytes: number;
  fileHandle: FileHandleStats;
  readErrors: number;
  ioConcurrency: number;
  ioMethod: IoMethod;
  /** Hinted pages found resident / not resident beforehand (one hint in RESIDENCY_SAMPLE checked, counted for RESIDENCY_SAMPLE). */
  hintedResident: number;
  hintedNotResident: number;
  /** Pages hinted a second time shortly before replay (near-hints.ts). */
  nearHints: number;
}

/** Check one hint in this many for residency: keeps the check's cost (~0.8 us, like the hint) near 4 % of a page's. */
export const RESIDENCY_SAMPLE = 4;

export class Prefaulter {
  readonly stats: PrefaultStats;
  private readonly paths: SegmentPaths;
  private readonly handles: FileHandles;
  private readonly reader: BlockReader;
  private readonly window: ReadaheadWindow;
  private readonly planner: BlockPlanner;
  private readonly blockSize: number;
  private hint: WillneedHint | null;
  private readonly hints: HintCoalescer;
  /** Second hints near replay (near-hints.ts) go out apart: issued/completed count first hints only. */
  private readonly secondHints: HintCoalescer;
  private readonly takeWaiting = (rec: WalRecord): void => this.planRecord(rec);
  private readonly passedByReplay = (rec: WalRecord): void => this.planner.passed(rec);
  private readonly probe: ResidencyProbe | null;
  /** checkResidency(false): the probe is skipped (a recovery prefetch, short of CPU). */
  private probing = true;
  private hintsUntilProbe = 1;
  private readonly near: NearHints;
  private planningLsn = 0; // the record being planned: its hinted pages queue for a second hint
  private readonly hintAgain = (path: string, offset: number): void => {
    const file = this.handles.cached(path);
    if (file !== undefined) this.secondHints.add(file, offset);
  };

  constructor(opts: PrefaultOptions) {
    this.blockSize = opts.blockSize;
    this.hint = opts.ioMethod?.hint ?? null;
    this.probe = opts.residencyProbe ?? null;
    this.paths = new SegmentPaths({
      pgdata: opts.pgdata,
      blockSize: opts.blockSize,
      majorVersion: opts.majorVersion,
      catalogVersion: opts.catalogVersion,
    });
    this.handles = new FileHandles({
      maxOpenFiles: opts.maxOpenFiles,
      ...(opts.missingTtlMs !== undefined ? { missingTtlMs: opts.missingTtlMs } : {}),
    });
    this.window = new ReadaheadWindow({ readaheadBytes: opts.readaheadBytes, maxPagesAhead: opts.maxPagesAhead });
    this.stats = {
      records: 0,
      recordsBehind: 0,
      requested: 0,
      issued: 0,
      completed: 0,
      skipped: emptySkipCounts(),
      queued: 0,
      inFlight: 0,
      aheadPages: 0,
      aheadBytes: 0,
      fileHandle: this.handles.stats,
      readErrors: 0,
      ioConcurrency: opts.ioConcurrency,
      ioMethod: this.hint !== null ? 'willneed' : 'pread',
      hintedResident: 0,
      hintedNotResident: 0,
      nearHints: 0,
    };
    this.near = new NearHints(Math.max(1024, opts.maxPagesAhead * 2));
    // The reader keeps issued/completed/inFlight/readErrors live in this.stats.
    this.reader = new BlockReader(
      { blockSize: opts.blockSize, concurrency: opts.ioConcurrency, observeReadSeconds: opts.observeReadSeconds },
      this.stats,
    );
    const handles = this.handles;
    const paths = this.paths;
    // Runs of adjacent blocks: one hint per run, at most 128 KiB (the kernel's default readahead).
    this.hints = new HintCoalescer(this.hint, opts.blockSize, 128 * 1024, (f) => handles.release(f), (errno, _file, _offset, blocks) =>
      this.hinted(errno, blocks),
    );
    this.secondHints = new HintCoalescer(this.hint, opts.blockSize, 128 * 1024, (f) => handles.release(f), (errno) => {
      if (errno !== 0) this.stats.readErrors++;
    });
    const resident = opts.resident ?? DEFAULT_RESIDENT;
    this.planner = new BlockPlanner(
      // 2 slots per page remembered (reach is half a memory) keeps collisions rare; capped at 2^18 slots (7.3 MiB).
      { recentSlots: Math.min(1 << 18, Math.max(4096, opts.maxPagesAhead * 4, resident.sharedBuffers, resident.pageCache)), resident, blockSize: opts.blockSize },
      this.stats.skipped,
      (spc, db, rel, fork, block) => this.requestRead(spc, db, rel, fork, block),
      {
        relationDropped: (spc, db, rel) => handles.closeRelation(spc, db, rel),
        databaseDropped: (db) => {
          handles.closeDatabase(db);
          paths.forgetDatabase(db);
        },
      },
    );
  }

  /** Offer the next decoded record (LSN order). Reads are queued, never awaited. */
  offer(rec: WalRecord): void {
    this.stats.records++;
    const admitted = this.window.admit(rec, this.passedByReplay);
    if (admitted !== null) this.planRecord(admitted);
    this.syncWindowStats();
  }

  /** False while a record waits for replay to advance or the pages-ahead budget is spent. */
  wantsMore(): boolean {
    return this.window.wantsMore();
  }

  /** The follower's replay LSN: retires pages behind it and admits waiting records. */
  setReplayLsn(lsn: bigint): void {
    // Events replay has applied first, so records admitted now are judged on what is still ahead.
    this.planner.retire(lsn);
    this.window.setReplayLsn(lsn, this.takeWaiting, this.passedByReplay);
    if (this.hint !== null) {
      this.near.due(lsn, this.hintAgain);
      this.stats.nearHints = this.near.given;
    }
    this.syncWindowStats();
  }

  /** New memory figures (the follower's shared_buffers, our cgroup's room). */
  setResident(r: ResidentPages): void {
    this.planner.setResident(r);
  }

  /** The follower's shared_buffers (pages) became known (read off its shared memory during a recovery). */
  setSharedBuffers(pages: number): void {
    this.planner.setSharedBuffers(pages);
  }

  setIoConcurrency(n: number): void {
    this.reader.setConcurrency(n);
    this.stats.ioConcurrency = n;
  }

  /** Check hinted pages for residency (off while PostgreSQL recovers: a syscall per RESIDENCY_SAMPLE hints, on the thread racing replay). */
  checkResidency(on: boolean): void {
    this.probing = on;
  }

  /** Switch between hints and reads (SIGHUP); blocks already queued use the new one. */
  setIoMethod(m: ResolvedIoMethod): void {
    this.hint = m.hint;
    this.hints.setHint(m.hint);
    this.secondHints.setHint(m.hint);
    this.stats.ioMethod = m.hint !== null ? 'willneed' : 'pread';
  }

  /**
   * A new feeder takes over from another position (the agent's hand-over from
   * recovery to the SQL path): forget the window, keep the recently read pages
   * and open files, so pages already brought in are not read again.
   */
  restartFeed(): void {
    this.window.reset();
    this.syncWindowStats();
  }

  /** Resolves when every queued read has finished. */
  async drain(): Promise<void> {
    this.hints.flush();
    this.secondHints.flush();
    await this.reader.idle();
    this.stats.queued = this.reader.queued;
  }

  /**
   * Drop queued reads, wait for running ones, close every fd and forget the
   * window (use while PostgreSQL is down or the node is a primary; feed again
   * from the new replay position afterwards).
   */
  async closeAll(): Promise<void> {
    this.hints.flush();
    this.secondHints.flush();
    this.reader.clear();
    await this.reader.idle();
    this.window.reset();
    this.near.clear();
    this.planner.clear();
    this.paths.clear();
    await this.handles.closeAll();
    this.syncWindowStats();
    this.stats.queued = this.reader.queued;
  }

  private planRecord(rec: WalRecord): void {
    if (rec.blocks.length === 0 && rec.events.length === 0) return;
    this.planningLsn = rec.lsn;
    const reads = this.planner.plan(rec);
    this.window.addPages(rec.lsn, reads);
  }

  private requestRead(spc: number, db: number, rel: number, fork: number, block: number): void {
    let path: string;
    try {
      path = this.paths.pathOf(spc, db, rel, fork, block);
    } catch {
      // Only an impossible fork number gets here; a decoder bug must not stop the agent.
      this.stats.readErrors++;
      return;
    }
    const offset = this.paths.offsetOf(block);
    this.stats.requested++;
    // Hints are synchronous end to end (open, fstat, fadvise on this thread):
    // no job, promise or closure per block, and the first hint goes out with
    // the first record instead of after an open() on the threadpool.
    // A heap's free space map or visibility map may not exist (a small or never vacuumed table):
    // the planner asks for their pages anyway (planner.ts), so a missing one is no skip worth counting.
    const quiet = fork === FSM_FORK || fork === VM_FORK;
    if (this.hint !== null && this.hintNow(path, offset, spc, db, rel, quiet)) return;
    this.reader.schedule(() => this.readOne(path, offset, spc, db, rel, quiet));
    this.stats.queued = this.reader.queued;
  }

  private async readOne(path: string, offset: number, spc: number, db: number, rel: number, quiet: boolean): Promise<void> {
    let file: OpenFile | null = null;
    try {
      if (this.handles.isMissing(path, performance.now())) {
        this.skip('missing_file', quiet);
        return;
      }
      const got = this.handles.acquire(path, spc, db, rel);
      file = got instanceof Promise ? await got : got;
      let fit = blockFit(file, offset, this.blockSize);
      if (fit === 'recheck') {
        const now = performance.now();
        await this.handles.refreshSize(file!, now);
        fit = blockFit(file, offset, this.blockSize, now);
      }
      if (fit !== 'ok') {
        this.skip(fit, quiet);
        return;
      }
      this.stats.queued = this.reader.queued;
      if (this.hint !== null) this.hintBlock(file!, offset);
      else await this.reader.readBlock(file!.fd, offset);
    } catch {
      // open/fstat failures other than ENOENT (EACCES, EMFILE, ...): count and carry on.
      this.stats.readErrors++;
    } finally {
      if (file !== null) this.handles.release(file);
    }
  }

  /** Hint one block now; false only when an asynchronous open of its file is under way (then queue it). */
  private hintNow(path: string, offset: number, spc: number, db: number, rel: number, quiet: boolean): boolean {
    let file: OpenFile | null | undefined = this.handles.cached(path);
    try {
      if (file === undefined) {
        if (this.handles.isMissing(path, performance.now())) return this.skip('missing_file', quiet);
        const opened = this.handles.openNow(path, spc, db, rel);
        if (opened === 'opening') return false;
        file = opened;
      }
      let fit = blockFit(file, offset, this.blockSize);
      if (fit === 'recheck') {
        const now = performance.now();
        this.handles.refreshSizeNow(file!, now);
        fit = blockFit(file, offset, this.blockSize, now);
      }
      if (fit !== 'ok') return this.skip(fit, quiet);
    } catch {
      // open/fstat failures other than ENOENT (EACCES, EMFILE, ...): count and carry on.
      this.stats.readErrors++;
      return true;
    }
    this.hintBlock(file!, offset);
    return true;
  }

  /** Count a block not read (a refreshed size that still falls short is past EOF); true: the block is dealt with. */
  private skip(reason: 'missing_file' | 'beyond_eof' | 'recheck', quiet: boolean): true {
    if (!quiet) this.stats.skipped[reason === 'recheck' ? 'beyond_eof' : reason]++;
    return true;
  }

  private hintBlock(file: OpenFile, offset: number): void {
    this.stats.issued++;
    if (this.hint !== null) this.near.add(this.planningLsn, file.path, offset);
    if (this.probe !== null && this.probing && --this.hintsUntilProbe === 0) this.checkResident(file.fd, offset);
    this.hints.add(file, offset);
  }

  private hinted(errno: number, blocks: number): void {
    if (errno === 0) this.stats.completed += blocks;
    else this.stats.readErrors++;
  }

  /** Before a sampled hint: was the page in the page cache already (the hint saved replay nothing)? */
  private checkResident(fd: number, offset: number): void {
    this.hintsUntilProbe = RESIDENCY_SAMPLE;
    const r = this.probe!(fd, offset);
    if (r === 1) this.stats.hintedResident += RESIDENCY_SAMPLE;
    else if (r === 0) this.stats.hintedNotResident += RESIDENCY_SAMPLE;
  }

  private syncWindowStats(): void {
    this.stats.aheadPages = this.window.aheadPages;
    this.stats.aheadBytes = this.window.aheadBytes;
    this.stats.recordsBehind = this.window.behind;
  }
}
