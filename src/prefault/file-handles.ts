// A bounded LRU of read-only file descriptors for relation segment files.
// Only ever opens with O_RDONLY (plus O_NOATIME where the kernel permits):
// never creates, writes, truncates or locks anything. A file that does not
// exist (dropped relation, segment not yet extended) is counted as missing
// and remembered briefly, so a burst of blocks for it costs one open().
import { close, closeSync, constants, fstat, fstatSync, open, openSync, readFileSync } from 'node:fs';

export interface OpenFile {
  readonly path: string;
  readonly fd: number;
  /** File size from fstat at open (or the last refresh). */
  size: number;
  /** performance.now() of that fstat. */
  sizeAt: number;
  /** Reads using the fd right now; it is closed only at 0. */
  refs: number;
  /** Evicted or closed while in use: close on last release. */
  closing: boolean;
  readonly spcOid: number;
  readonly dbOid: number;
  readonly relNumber: number;
}

export interface FileHandleStats {
  /** acquire() served from an open fd */
  hits: number;
  /** acquire() that had to open() (or found the path missing) */
  misses: number;
  /** fds currently open */
  open: number;
  /** opens that failed with ENOENT */
  missing: number;
  /** fds closed to stay within capacity */
  evictions: number;
}

export interface FileHandlesOptions {
  /** Upper bound on open fds; default: the RLIMIT_NOFILE soft limit minus headroom. */
  maxOpenFiles?: number | undefined;
  /** How long a missing path is remembered (default 1000 ms). */
  missingTtlMs?: number;
}

/** The soft RLIMIT_NOFILE of this process, from /proc/self/limits; null if unknown. */
export function openFileSoftLimit(): number | null {
  try {
    const line = readFileSync('/proc/self/limits', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('Max open files'));
    const soft = line?.slice('Max open files'.length).trim().split(/\s+/)[0];
    if (soft === undefined || soft === 'unlimited') return soft === 'unlimited' ? 1_048_576 : null;
    const n = Number(soft);
    return Number.isFinite(n) ? n : null;
  } catch {
    return null;
  }
}

/** fds we may keep: the soft limit minus headroom for sockets, logs, WAL files and libraries. */
export function defaultFileCapacity(softLimit: number | null): number {
  const soft = softLimit ?? 1024;
  const headroom = Math.max(64, Math.floor(soft / 4));
  return Math.max(8, soft - headroom);
}

interface Opening {
  waiters: number;
  done: Promise<OpenFile | null> | null;
  spcOid: number;
  dbOid: number;
  relNumber: number;
  /** Its relation or database was dropped while the open ran: close the fd on release, keep nothing. */
  dropped: boolean;
}

/** Files whose size was checked this recently are trusted for beyond-EOF decisions. */
const SIZE_FRESH_MS = 500;

/**
 * Whether a block can be read, from what is known of its file (null: it does
 * not exist): 'ok', a skip reason, or 'recheck' when it lies past the size we
 * saw long enough ago that the file may have grown (replay extends relations):
 * refresh the size and ask again (with the refresh's time as now). The one
 * rule for the sync and async paths.
 */
export function blockFit(file: OpenFile | null, offset: number, blockSize: number, now?: number): 'ok' | 'missing_file' | 'beyond_eof' | 'recheck' {
  if (file === null) return 'missing_file';
  if (offset + blockSize <= file.size) return 'ok';
  // The clock is read only here: most blocks lie inside the size already known.
  return (now ?? performance.now()) - file.sizeAt < SIZE_FRESH_MS ? 'beyond_eof' : 'recheck';
}

const O_NOATIME: number = (constants as { O_NOATIME?: number }).O_NOATIME ?? 0;

function openReadOnly(path: string, flags: number): Promise<number> {
  return new Promise((resolve, reject) => open(path, flags, (err, fd) => (err ? reject(err) : resolve(fd))));
}

function sizeOf(fd: number): Promise<number> {
  return new Promise((resolve, reject) => fstat(fd, (err, st) => (err ? reject(err) : resolve(st.size))));
}

function setSize(f: OpenFile, size: number, now: number): void {
  f.size = size;
  f.sizeAt = now;
}

function closeFd(fd: number): Promise<void> {
  return new Promise((resolve) => close(fd, () => resolve()));
}

export class FileHandles {
  readonly capacity: number;
  readonly stats: FileHandleStats = { hits: 0, misses: 0, open: 0, missing: 0, evictions: 0 };
  /** Insertion order is recency order: the first entry is the least recently used. */
  private readonly lru = new Map<string, OpenFile>();
  /** Open files by relNumber, so dropping many relations costs O(their files), not O(all fds). */
  private readonly byRel = new Map<number, Set<OpenFile>>();
  /** Opens in progress and how many acquire() calls wait on each. */
  private readonly opening = new Map<string, Opening>();
  private readonly missingUntil = new Map<string, number>();
  private readonly missingTtlMs: number;
  private readonly pendingCloses = new Set<Promise<void>>();
  private flags = constants.O_RDONLY | O_NOATIME;
  /** Bumped by closeAll(): opens that finish afterwards are not kept. */
  private generation = 0;

  constructor(opts: FileHandlesOptions = {}) {
    const byLimit = defaultFileCapacity(openFileSoftLimit());
    this.capacity = Math.max(1, Math.min(opts.maxOpenFiles ?? byLimit, byLimit));
    this.missingTtlMs = opts.missingTtlMs ?? 1000;
  }

  /** The path failed with ENOENT less than missingTtlMs ago. */
  isMissing(path: string, now: number): boolean {
    const until = this.missingUntil.get(path);
    if (until === undefined) return false;
    if (now < until) return true;
    this.missingUntil.delete(path);
    return false;
  }

  /** An fd for path with refs incremented (call release()), or null if the file does not exist. */
  acquire(path: string, spcOid: number, dbOid: number, relNumber: number): OpenFile | Promise<OpenFile | null> {
    const hit = this.cached(path);
    if (hit !== undefined) {
      hit.refs++;
      return hit;
    }
    this.stats.misses++;
    let o = this.opening.get(path);
    if (o === undefined) {
      o = { waiters: 0, done: null, spcOid, dbOid, relNumber, dropped: false };
      this.opening.set(path, o);
      o.done = this.openFile(path, spcOid, dbOid, relNumber, o);
    }
    o.waiters++;
    return o.done!;
  }

  /**
   * The open fd for path, if cached, counted as a hit and made most recent,
   * without a reference: only for a caller that uses it synchronously (a hint)
   * and never yields before it is done.
   */
  cached(path: string): OpenFile | undefined {
    const hit = this.lru.get(path);
    if (hit === undefined) return undefined;
    this.stats.hits++;
    this.lru.delete(path);
    this.lru.set(path, hit);
    return hit;
  }

  release(f: OpenFile): void {
    f.refs--;
    if (f.refs === 0 && f.closing) this.closeNow(f);
  }

  /** Re-read the size of a file that may have grown since it was opened. */
  async refreshSize(f: OpenFile, now: number): Promise<void> {
    setSize(f, await sizeOf(f.fd), now);
  }

  /** Close the fds of a relation (all forks and segments): it was dropped, its space must be freed. */
  closeRelation(spcOid: number, dbOid: number, relNumber: number): void {
    // An open under way (a queued read's) would publish the fd of the dropped file after this.
    for (const o of this.opening.values()) if (o.relNumber === relNumber && o.dbOid === dbOid && o.spcOid === spcOid) o.dropped = true;
    const files = this.byRel.get(relNumber);
    if (files === undefined) return;
    for (const f of [...files]) {
      if (f.dbOid === dbOid && f.spcOid === spcOid) this.retire(f);
    }
  }

  /** Close the fds of every relation of a database (it was dropped). */
  closeDatabase(dbOid: number): void {
    for (const o of this.opening.values()) if (o.dbOid === dbOid) o.dropped = true;
    for (const f of this.lru.values()) if (f.dbOid === dbOid) this.retire(f);
  }

  /** Close every fd; fds in use close as their reads finish. Resolves when all are closed. */
  async closeAll(): Promise<void> {
    this.generation++;
    for (const f of [...this.lru.values()]) this.retire(f);
    this.missingUntil.clear();
    await Promise.all([...this.opening.values()].map((o) => o.done?.catch(() => null)));
    while (this.pendingCloses.size > 0) await Promise.all([...this.pendingCloses]);
  }

  /**
   * Open path now, on this thread (for hints, which are synchronous anyway):
   * the fd with no reference held, null when the file does not exist, or
   * 'opening' when an asynchronous open of it is under way (use acquire()).
   */
  openNow(path: string, spcOid: number, dbOid: number, relNumber: number): OpenFile | null | 'opening' {
    if (this.opening.has(path)) return 'opening';
    this.stats.misses++;
    let fd: number;
    try {
      try {
        fd = openSync(path, this.flags);
      } catch (e) {
        if (!this.noatimeRefused(e)) throw e;
        fd = openSync(path, this.flags);
      }
    } catch (e) {
      if (this.rememberMissing(path, e)) return null;
      throw e;
    }
    this.stats.open++;
    let size: number;
    try {
      size = fstatSync(fd).size;
    } catch (e) {
      closeSync(fd);
      this.stats.open--;
      throw e;
    }
    return this.publish({ path, fd, size, sizeAt: performance.now(), refs: 0, closing: false, spcOid, dbOid, relNumber });
  }

  /** refreshSize on this thread. */
  refreshSizeNow(f: OpenFile, now: number): void {
    setSize(f, fstatSync(f.fd).size, now);
  }

  private async openFile(path: string, spcOid: number, dbOid: number, relNumber: number, o: Opening): Promise<OpenFile | null> {
    const generation = this.generation;
    try {
      let fd: number;
      try {
        fd = await openReadOnly(path, this.flags);
      } catch (e) {
        if (!this.noatimeRefused(e)) throw e;
        fd = await openReadOnly(path, this.flags);
      }
      this.stats.open++;
      let size: number;
      try {
        size = await sizeOf(fd);
      } catch (e) {
        await closeFd(fd);
        this.stats.open--;
        throw e;
      }
      // Every waiter holds a reference from the moment the fd is published, so
      // an eviction before their continuations run cannot close it under them.
      const f: OpenFile = { path, fd, size, sizeAt: performance.now(), refs: o.waiters, closing: false, spcOid, dbOid, relNumber };
      if (generation !== this.generation || o.dropped) {
        f.closing = true; // closeAll() ran meanwhile, or the file's relation was dropped: close on release, keep nothing
        return f;
      }
      return this.publish(f);
    } catch (e) {
      if (this.rememberMissing(path, e)) return null;
      throw e;
    } finally {
      this.opening.delete(path);
    }
  }

  // O_NOATIME needs file ownership or CAP_FOWNER; on EPERM fall back to plain O_RDONLY for good (true: retry).
  private noatimeRefused(e: unknown): boolean {
    if ((e as NodeJS.ErrnoException).code !== 'EPERM' || (this.flags & O_NOATIME) === 0) return false;
    this.flags = constants.O_RDONLY;
    return true;
  }

  /** ENOENT: remember the path as missing for a while and return true. */
  private rememberMissing(path: string, e: unknown): boolean {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') return false;
    this.stats.missing++;
    this.missingUntil.set(path, performance.now() + this.missingTtlMs);
    if (this.missingUntil.size > 100_000) this.missingUntil.clear();
    return true;
  }

  private publish(f: OpenFile): OpenFile {
    this.lru.set(f.path, f);
    let files = this.byRel.get(f.relNumber);
    if (files === undefined) this.byRel.set(f.relNumber, (files = new Set()));
    files.add(f);
    this.evictOverCapacity();
    return f;
  }

  private evictOverCapacity(): void {
    for (const f of this.lru.values()) {
      if (this.lru.size <= this.capacity) return;
      this.stats.evictions++;
      this.retire(f);
    }
  }

  private retire(f: OpenFile): void {
    if (this.lru.get(f.path) === f) this.lru.delete(f.path);
    const files = this.byRel.get(f.relNumber);
    if (files !== undefined && files.delete(f) && files.size === 0) this.byRel.delete(f.relNumber);
    if (f.closing) return;
    f.closing = true;
    if (f.refs === 0) this.closeNow(f);
  }

  private closeNow(f: OpenFile): void {
    const p = closeFd(f.fd).then(() => {
      this.stats.open--;
      this.pendingCloses.delete(p);
    });
    this.pendingCloses.add(p);
  }
}
