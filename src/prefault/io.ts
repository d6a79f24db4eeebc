// Concurrent block-sized preads through a p-queue, into a reused pool of
// Buffers (the bytes are thrown away: the point is the page cache fill).
//
// Node runs fs calls on libuv's threadpool (default 4 threads), so more than
// 4 concurrent preads need a bigger pool: see threadpool.ts.
import { read } from 'node:fs';
import PQueue from 'p-queue';

export interface BlockReaderOptions {
  blockSize: number;
  concurrency: number;
  observeReadSeconds?: ((seconds: number) => void) | undefined;
}

export interface IoStats {
  /** preads submitted */
  issued: number;
  /** preads that returned */
  completed: number;
  /** preads running now */
  inFlight: number;
  readErrors: number;
}

/** Runs read jobs with bounded concurrency and preads one block into a pooled buffer. */
export class BlockReader {
  readonly queue: PQueue;
  /** Live counters; pass an object to have them kept in a larger stats record. */
  readonly stats: IoStats;
  /** The last read error, for logs ("what failed"). */
  lastError: Error | null = null;
  private readonly blockSize: number;
  private readonly pool: Buffer[] = [];
  private readonly observe: ((seconds: number) => void) | undefined;

  constructor(opts: BlockReaderOptions, stats: IoStats = { issued: 0, completed: 0, inFlight: 0, readErrors: 0 }) {
    this.stats = stats;
    this.blockSize = opts.blockSize;
    this.queue = new PQueue({ concurrency: positive(opts.concurrency, 'ioConcurrency') });
    this.observe = opts.observeReadSeconds;
  }

  setConcurrency(n: number): void {
    this.queue.concurrency = positive(n, 'ioConcurrency');
  }

  get concurrency(): number {
    return this.queue.concurrency;
  }

  /** Jobs waiting for a slot. */
  get queued(): number {
    return this.queue.size;
  }

  /** Queue a job; jobs never reject (they count their own failures). */
  schedule(job: () => Promise<void>): void {
    void this.queue.add(job);
  }

  /** pread one block at position; resolves with the bytes read (0 past EOF). Counts errors instead of throwing. */
  readBlock(fd: number, position: number): Promise<number> {
    const buf = this.pool.pop() ?? Buffer.allocUnsafe(this.blockSize);
    const started = performance.now();
    this.stats.issued++;
    this.stats.inFlight++;
    return new Promise((resolve) => {
      read(fd, buf, 0, this.blockSize, position, (err, bytes) => {
        this.stats.inFlight--;
        this.pool.push(buf);
        if (err) {
          this.stats.readErrors++;
          this.lastError = err;
          resolve(0);
          return;
        }
        this.stats.completed++;
        this.observe?.((performance.now() - started) / 1000);
        resolve(bytes);
      });
    });
  }

  /** Drop jobs not yet started. */
  clear(): void {
    this.queue.clear();
  }

  /** Resolves when nothing is queued or running. */
  async idle(): Promise<void> {
    await this.queue.onIdle();
  }
}

function positive(n: number, what: string): number {
  if (!Number.isInteger(n) || n < 1) throw new Error(`${what} must be a positive integer, got ${n}`);
  return n;
}
