// The decode loop: WAL chunks from a source through the decoder into the
// prefaulter, counting records and bytes per resource manager, waiting when
// the prefaulter is as far ahead of replay as it may go.
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import type { Log } from '../log.ts';
import type { Prefaulter } from '../prefault/index.ts';
import { WalDecoder } from '../wal/decoder.ts';
import { DecodeHealth } from '../wal/decode-health.ts';
import type { WalRecord } from '../wal/types.ts';
import type { WalSource } from '../wal-source/source.ts';
import { formatLsn } from '../lsn.ts';
import { LogThrottle } from './log-throttle.ts';
import type { AgentSnapshot, AgentState } from './states.ts';

/** Longest stretch of decoding and prefaulting before other events get a turn. */
const SLICE_MS = 10;
/** How far past replay + readahead_bytes the loop may read (one XLogData burst). */
const AHEAD_SLACK_BYTES = 1024n * 1024n;

export interface DecodeLoopOptions {
  source: WalSource;
  startLsn: bigint;
  segmentSize: number;
  blockSize: number;
  /** XLOG_BLCKSZ (wal_block_size, or pg_control's xlog_blcksz): the WAL page size. */
  walPageSize: number;
  readaheadBytes: number;
  prefaulter: Prefaulter;
  snap: AgentSnapshot;
  log: Log;
  /** Resolves at the next replay-position update (or when signal aborts). */
  nextReplayUpdate: (signal: AbortSignal) => Promise<void>;
  /** The follower's replay position as last polled (null: unknown). */
  replayLsn: () => bigint | null;
  setState: (state: AgentState) => void;
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
  private readonly health = new DecodeHealth();

  constructor(private readonly o: DecodeLoopOptions) {
    // The stream carries only WAL the upstream flushed after checking it, and the
    // follower checks every CRC again at replay: verifying it here too would be
    // half our decode CPU. Local files can hold torn or recycled pages: check them.
    this.decoder = walDecoderFor(o, o.source.kind !== 'stream');
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
      // Records carry LSNs as numbers: snap.decodedLsn (a bigint) is set from this before anything else may run.
      let decodedEnd = -1;
      for (;;) {
        const item = decoder.next();
        if (item === null) break;
        if ('kind' in item) {
          this.onDecodeError(item.lsn, item.message);
          this.health.error(BigInt(item.lsn));
          continue;
        }
        this.health.record();
        if (snap.state === 'wal_undecodable') this.o.setState('streaming');
        let c = snap.walByRmgr.get(item.rmgrName);
        if (!c) snap.walByRmgr.set(item.rmgrName, (c = { records: 0, bytes: 0 }));
        c.records++;
        c.bytes += item.totalLength;
        decodedEnd = item.endLsn;
        this.o.onRecord?.(item);
        prefaulter.offer(item);
        if (snap.firstHintMs === null && prefaulter.stats.issued > 0) this.onFirstHint();
        if (!prefaulter.wantsMore()) {
          snap.decodedLsn = BigInt(decodedEnd);
          do {
            await this.o.nextReplayUpdate(signal);
            if (signal.aborted) return;
          } while (!prefaulter.wantsMore());
        }
      }
      if (decodedEnd >= 0) snap.decodedLsn = BigInt(decodedEnd);
      // Bytes not written yet (the end of WAL in pg_wal): the decoder wants them again once they are.
      if (source.rewind && decoder.inputLsn < expected) {
        expected = decoder.inputLsn;
        source.rewind(expected);
      }
      if (snap.state === 'streaming' && this.health.undecodable(expected)) this.onUndecodable(expected);
      // Inside a record larger than the window (up to 1 GiB) nothing is offered, so
      // wantsMore() never stops us: read no further ahead of replay than the window.
      const limit = BigInt(this.o.readaheadBytes) + AHEAD_SLACK_BYTES;
      for (let replay = this.o.replayLsn(); replay !== null && expected - replay > limit; replay = this.o.replayLsn()) {
        await this.o.nextReplayUpdate(signal);
        if (signal.aborted) return;
      }
    }
  }

  private onUndecodable(at: bigint): void {
    this.o.setState('wal_undecodable');
    const { fromLsn, errors } = this.health.stretch;
    const from = fromLsn === null ? '?' : formatLsn(fromLsn);
    this.o.log.error(
      { fromLsn: fromLsn === null ? null : from, streamLsn: formatLsn(at), errors, source: this.o.source.kind },
      `no WAL record decodes since ${from} (${errors} decode errors): nothing is prefaulted; `
        + "check that the upstream is this cluster's primary (or a standby of it) running PostgreSQL 13-18 with the same wal_segment_size, "
        + 'and that nothing between (proxy, pooler) alters the bytes',
    );
  }

  // performance.now() counts from process start: the start-up figure (issue #15: at most 300 ms).
  private onFirstHint(): void {
    const snap = this.o.snap;
    snap.firstHintMs = Math.round(performance.now());
    this.o.log.info({ sinceProcessStartMs: snap.firstHintMs, state: snap.state }, 'first prefault hint issued');
    this.o.onFirstHint?.();
  }

  private onDecodeError(lsn: number, message: string): void {
    const snap = this.o.snap;
    snap.decodeErrors++;
    if (this.errorLog.due()) this.o.log.warn({ lsn: formatLsn(lsn), decodeErrors: snap.decodeErrors }, `WAL decode error: ${message}`);
  }
}

export { ReplayTicks } from './replay-ticks.ts';

/** The decoder for WAL laid out as the server says (page, segment and block size). */
export function walDecoderFor(o: Pick<DecodeLoopOptions, 'startLsn' | 'segmentSize' | 'blockSize' | 'walPageSize'>, verifyCrc: boolean): WalDecoder {
  return new WalDecoder({ startLsn: o.startLsn, segmentSize: o.segmentSize, blockSize: o.blockSize, pageSize: o.walPageSize, verifyCrc });
}
