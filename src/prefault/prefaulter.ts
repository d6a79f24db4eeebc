// The prefault engine's facade: the agent offers every decoded record in LSN
// order and reports the follower's replay LSN; we bring the blocks replay is
// about to need into the page cache, a window ahead of it: by hinting them to
// the kernel (posix_fadvise WILLNEED) or by reading them (pread).
// Read-only by construction: files are opened O_RDONLY, never created,
// written, truncated or locked, and the process never chdir()s into PGDATA.
import type { WalRecord } from '../wal/types.ts';
import { FileHandles, type FileHandleStats, type OpenFile } from './file-handles.ts';
import { BlockReader } from './io.ts';
import { SegmentPaths } from './paths.ts';
import { BlockPlanner } from './planner.ts';
import type { ResolvedIoMethod, WillneedHint } from './willneed.ts';
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
  /** How long a read block is not read again (default 10 s). */
  recentTtlMs?: number;
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
  ioMethod: 'willneed' | 'pread';
}

/** Files whose size was checked this recently are trusted for beyond-EOF decisions. */
const SIZE_FRESH_MS = 500;

export class Prefaulter {
  readonly stats: PrefaultStats;
  private readonly paths: SegmentPaths;
  private readonly handles: FileHandles;
  private readonly reader: BlockReader;
  private readonly window: ReadaheadWindow;
  private readonly planner: BlockPlanner;
  private readonly blockSize: number;
  private hint: WillneedHint | null;
  private readonly takeWaiting = (rec: WalRecord): void => this.planRecord(rec, this.coarseNow());
  /** A clock for the recent-read TTL (seconds long): read every 64 records and at every replay poll, not per record. */
  private clockMs = performance.now();
  private clockUses = 0;

  constructor(opts: PrefaultOptions) {
    this.blockSize = opts.blockSize;
    this.hint = opts.ioMethod?.hint ?? null;
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
    };
    // The reader keeps issued/completed/inFlight/readErrors live in this.stats.
    this.reader = new BlockReader(
      { blockSize: opts.blockSize, concurrency: opts.ioConcurrency, observeReadSeconds: opts.observeReadSeconds },
      this.stats,
    );
    const handles = this.handles;
    const paths = this.paths;
    this.planner = new BlockPlanner(
      // 4 slots per page ahead keeps collisions rare; capped at 2^18 slots (7 MiB).
      { recentSlots: Math.min(1 << 18, Math.max(4096, opts.maxPagesAhead * 4)), recentTtlMs: opts.recentTtlMs ?? 10_000 },
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
    const admitted = this.window.admit(rec);
    if (admitted !== null) this.planRecord(admitted, this.coarseNow());
    this.syncWindowStats();
  }

  /** False while a record waits for replay to advance or the pages-ahead budget is spent. */
  wantsMore(): boolean {
    return this.window.wantsMore();
  }

  /** The follower's replay LSN: retires pages behind it and admits waiting records. */
  setReplayLsn(lsn: bigint): void {
    this.clockMs = performance.now();
    // Events replay has applied first, so records admitted now are judged on what is still ahead.
    this.planner.retire(lsn);
    this.window.setReplayLsn(lsn, this.takeWaiting);
    this.syncWindowStats();
  }

  setIoConcurrency(n: number): void {
    this.reader.setConcurrency(n);
    this.stats.ioConcurrency = n;
  }

  /** Switch between hints and reads (SIGHUP); blocks already queued use the new one. */
  setIoMethod(m: ResolvedIoMethod): void {
    this.hint = m.hint;
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
    await this.reader.idle();
    this.stats.queued = this.reader.queued;
  }

  /**
   * Drop queued reads, wait for running ones, close every fd and forget the
   * window (use while PostgreSQL is down or the node is a primary; feed again
   * from the new replay position afterwards).
   */
  async closeAll(): Promise<void> {
    this.reader.clear();
    await this.reader.idle();
    this.window.reset();
    this.planner.clear();
    this.paths.clear();
    await this.handles.closeAll();
    this.syncWindowStats();
    this.stats.queued = this.reader.queued;
  }

  private coarseNow(): number {
    if ((++this.clockUses & 63) === 0) this.clockMs = performance.now();
    return this.clockMs;
  }

  private planRecord(rec: WalRecord, now: number): void {
    if (rec.blocks.length === 0 && rec.events.length === 0) return;
    const reads = this.planner.plan(rec, now);
    this.window.addPages(rec.lsn, reads);
  }

  private requestRead(spc: number, db: number, rel: number, fork: number, block: number): void {
    let path: string;
    try {
      path = this.paths.pathOf(spc, db, rel, fork, block);
    } catch (e) {
      // Only an impossible fork number gets here; a decoder bug must not stop the agent.
      this.stats.readErrors++;
      this.reader.lastError = e instanceof Error ? e : new Error(String(e));
      return;
    }
    const offset = this.paths.offsetOf(block);
    this.stats.requested++;
    // Hints are synchronous end to end (open, fstat, fadvise on this thread):
    // no job, promise or closure per block, and the first hint goes out with
    // the first record instead of after an open() on the threadpool.
    if (this.hint !== null && this.hintNow(path, offset, spc, db, rel)) return;
    this.reader.schedule(() => this.readOne(path, offset, spc, db, rel));
    this.stats.queued = this.reader.queued;
  }

  private async readOne(path: string, offset: number, spc: number, db: number, rel: number): Promise<void> {
    const skipped = this.stats.skipped;
    let file: OpenFile | null = null;
    try {
      if (this.handles.isMissing(path, performance.now())) {
        skipped.missing_file++;
        return;
      }
      const got = this.handles.acquire(path, spc, db, rel);
      file = got instanceof Promise ? await got : got;
      if (file === null) {
        skipped.missing_file++;
        return;
      }
      if (offset + this.blockSize > file.size) {
        // The file may have grown since we looked (replay extends relations).
        const now = performance.now();
        if (now - file.sizeAt < SIZE_FRESH_MS || offset + this.blockSize > (await this.handles.refreshSize(file, now))) {
          skipped.beyond_eof++;
          return;
        }
      }
      this.stats.queued = this.reader.queued;
      if (this.hint !== null) this.hintBlock(file.fd, offset, path);
      else await this.reader.readBlock(file.fd, offset);
    } catch (e) {
      // open/fstat failures other than ENOENT (EACCES, EMFILE, ...): count and carry on.
      this.reader.stats.readErrors++;
      this.reader.lastError = e instanceof Error ? e : new Error(String(e));
    } finally {
      if (file !== null) this.handles.release(file);
    }
  }

  /** Hint one block now; false only when an asynchronous open of its file is under way (then queue it). */
  private hintNow(path: string, offset: number, spc: number, db: number, rel: number): boolean {
    const skipped = this.stats.skipped;
    let file: OpenFile | null | 'opening' | undefined = this.handles.cached(path);
    try {
      if (file === undefined) {
        const now = performance.now();
        if (this.handles.isMissing(path, now)) {
          skipped.missing_file++;
          return true;
        }
        file = this.handles.openNow(path, spc, db, rel);
        if (file === 'opening') return false;
        if (file === null) {
          skipped.missing_file++;
          return true;
        }
      }
      if (offset + this.blockSize > file.size) {
        // The file may have grown since we looked (replay extends relations).
        const now = performance.now();
        if (now - file.sizeAt < SIZE_FRESH_MS || offset + this.blockSize > this.handles.refreshSizeNow(file, now)) {
          skipped.beyond_eof++;
          return true;
        }
      }
    } catch (e) {
      // open/fstat failures other than ENOENT (EACCES, EMFILE, ...): count and carry on.
      this.stats.readErrors++;
      this.reader.lastError = e instanceof Error ? e : new Error(String(e));
      return true;
    }
    this.hintBlock(file.fd, offset, path);
    return true;
  }

  private hintBlock(fd: number, offset: number, path: string): void {
    this.stats.issued++;
    const errno = this.hint!(fd, offset, this.blockSize);
    if (errno === 0) {
      this.stats.completed++;
      return;
    }
    this.stats.readErrors++;
    this.reader.lastError = new Error(`posix_fadvise(WILLNEED) on ${path} at ${offset} failed with errno ${errno}`);
  }

  /** The last read/open error, for logs. */
  get lastError(): Error | null {
    return this.reader.lastError;
  }

  private syncWindowStats(): void {
    this.stats.aheadPages = this.window.aheadPages;
    this.stats.aheadBytes = this.window.aheadBytes;
    this.stats.recordsBehind = this.window.behind;
  }
}
