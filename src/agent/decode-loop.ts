// The decode loop: WAL chunks from a source through the decoder into the
// prefaulter, counting records and bytes per resource manager, waiting when
// the prefaulter is as far ahead of replay as it may go.
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import type { Logger } from 'pino';
import type { Prefaulter } from '../prefault/index.ts';
import { WalDecoder } from '../wal/decoder.ts';
import type { WalRecord } from '../wal/types.ts';
import type { WalSource } from '../wal-source/source.ts';
import { formatLsn } from '../lsn.ts';
import { LogThrottle } from './log-throttle.ts';
import type { AgentSnapshot } from './states.ts';

/** Longest stretch of decoding and prefaulting before other events get a turn. */
const SLICE_MS = 10;

export interface DecodeLoopOptions {
  source: WalSource;
  startLsn: bigint;
  segmentSize: number;
  prefaulter: Prefaulter;
  snap: AgentSnapshot;
  log: Logger;
  /** Resolves at the next replay-position update (or when signal aborts). */
  nextReplayUpdate: (signal: AbortSignal) => Promise<void>;
  signal: AbortSignal;
  /** Every decoded record (the recovery prefetch's replay estimate counts their reads). */
  onRecord?: (rec: WalRecord) => void;
  /** Called once, at the agent's first hint (snap.firstHintMs set). */
  onFirstHint?: () => void;
}

export class DecodeLoop {
  readonly decoder: WalDecoder;
  // One line per 10 s at most: a corrupt stretch must not flood the logs.
  private readonly errorLog = new LogThrottle(10_000);

  constructor(private readonly o: DecodeLoopOptions) {
    this.decoder = new WalDecoder({ startLsn: o.startLsn, segmentSize: o.segmentSize });
  }

  /** Runs until the source ends or fails (throws) or signal aborts. */
  async run(): Promise<void> {
    const { source, prefaulter, snap, signal } = this.o;
    const decoder = this.decoder;
    let expected = this.o.startLsn;
    let sliceStart = performance.now();
    for await (const chunk of source) {
      if (signal.aborted) return;
      // Buffered chunks arrive as microtasks: without a macrotask yield now and
      // then, a burst would hold off /healthz (a liveness probe), /metrics and
      // the replay-position polls that move the window, for its whole length.
      if (performance.now() - sliceStart > SLICE_MS) {
        await yieldToEventLoop();
        sliceStart = performance.now();
        if (signal.aborted) return;
      }
      if (chunk.lsn !== expected) {
        throw new Error(`WAL source jumped from ${formatLsn(expected)} to ${formatLsn(chunk.lsn)}; restarting`);
      }
      expected += BigInt(chunk.data.length);
      snap.streamLsn = expected;
      decoder.push(chunk.data);
      for (;;) {
        const item = decoder.next();
        if (item === null) break;
        if ('kind' in item) {
          this.onDecodeError(item.lsn, item.message);
          continue;
        }
        let c = snap.walByRmgr.get(item.rmgrName);
        if (!c) snap.walByRmgr.set(item.rmgrName, (c = { records: 0, bytes: 0 }));
        c.records++;
        c.bytes += item.totalLength;
        snap.decodedLsn = item.endLsn;
        this.o.onRecord?.(item);
        prefaulter.offer(item);
        if (snap.firstHintMs === null && prefaulter.stats.issued > 0) this.onFirstHint();
        while (!prefaulter.wantsMore()) {
          await this.o.nextReplayUpdate(signal);
          if (signal.aborted) return;
        }
      }
      // Bytes not written yet (the end of WAL in pg_wal): the decoder wants them again once they are.
      if (source.rewind && decoder.inputLsn < expected) {
        expected = decoder.inputLsn;
        source.rewind(expected);
      }
    }
  }

  // performance.now() counts from process start: the start-up figure (issue #15: at most 300 ms).
  private onFirstHint(): void {
    const snap = this.o.snap;
    snap.firstHintMs = Math.round(performance.now());
    this.o.log.info({ sinceProcessStartMs: snap.firstHintMs, state: snap.state }, 'first prefault hint issued');
    this.o.onFirstHint?.();
  }

  private onDecodeError(lsn: bigint, message: string): void {
    const snap = this.o.snap;
    snap.decodeErrors++;
    if (this.errorLog.due()) this.o.log.warn({ lsn: formatLsn(lsn), decodeErrors: snap.decodeErrors }, `WAL decode error: ${message}`);
  }
}

/** Wakes decode loops waiting for replay to move (each follower status poll). */
export class ReplayTicks {
  private waiters: (() => void)[] = [];

  tick(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }

  /** Resolves at the next tick, or when signal aborts. */
  next(signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      if (signal.aborted) return resolve();
      const done = () => {
        signal.removeEventListener('abort', done);
        resolve();
      };
      this.waiters.push(done);
      signal.addEventListener('abort', done, { once: true });
    });
  }
}
