// Concurrent block-sized preads through a p-queue, into a reused pool of
// Buffers (the bytes are thrown away: the point is the page cache fill).
//
// Node runs fs calls on libuv's threadpool (default 4 threads), so more than
// 4 concurrent preads need a bigger pool: see threadpool.ts.
import { read } from 'node:fs';
import PQueue from 'p-queue';
import { Fifo } from '../fifo.ts';

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

/**
 * Runs read jobs with bounded concurrency and preads one block into a pooled
 * buffer. p-queue bounds the concurrency, but it holds only the "lanes" (at
 * most `concurrency` long-running jobs, each taking reads from a plain FIFO
 * until it is empty): a p-queue job per read costs several promises and
 * events each, which at tens of thousands of reads a second was most of the
 * agent's CPU.
 */
export class BlockReader {
  readonly queue: PQueue;
  private readonly pending = new Fifo<() => Promise<void>>();
  private lanes = 0;
  /** Live counters; pass an object to have them kept in a larger stats record. */
  readonly stats: IoStats;
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
    this.startLanes();
  }

  get concurrency(): number {
    return this.queue.concurrency;
  }

  /** Jobs waiting for a slot. */
  get queued(): number {
    return this.pending.length;
  }

  /** Queue a job; jobs never reject (they count their own failures). */
  schedule(job: () => Promise<void>): void {
    this.pending.push(job);
    this.startLanes();
  }

  private startLanes(): void {
    while (this.lanes < this.queue.concurrency && this.queued > this.lanes - this.busy) {
      this.lanes++;
      void this.queue.add(() => this.lane());
    }
  }

  // Lanes between two jobs (taking the next one) are not busy; a new job
  // needs a new lane only when every lane is busy.
  private busy = 0;

  private async lane(): Promise<void> {
    try {
      for (;;) {
        if (this.lanes > this.queue.concurrency) return; // concurrency was lowered
        const job = this.pending.shift();
        if (job === undefined) return;
        this.busy++;
        try {
          await job();
        } finally {
          this.busy--;
        }
      }
    } finally {
      // Runs in the same turn as the empty shift(), so a job scheduled later always finds lanes < concurrency or a lane still looping.
      this.lanes--;
    }
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
    this.pending.clear();
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
