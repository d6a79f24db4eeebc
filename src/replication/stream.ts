// The CopyBoth phase of START_REPLICATION ... PHYSICAL: XLogData and keepalives
// in, queued for the consumer with back-pressure through the socket, and the
// end of the command (end of timeline, error, close). Status updates and
// timeouts: stream-heartbeat.ts.
import type { BackendMessage } from 'pg-protocol/dist/messages.js';
import { serialize } from 'pg-protocol';
import { ReplicationError } from './errors.ts';
import { StreamHeartbeat } from './stream-heartbeat.ts';
import { Fifo } from '../fifo.ts';
import { asDataRow, asError } from './messages.ts';
import { parseLsn } from '../lsn.ts';
import type { ReplicationStream, StartReplicationOptions, StreamHost, StreamMessage } from './stream-api.ts';

export type { ReplicationStream, StartReplicationOptions, StreamHost, StreamMessage } from './stream-api.ts';

/** close(): how long the server may take to end the stream after our CopyDone. */
const CLOSE_GRACE_MS = 100;

type State = 'starting' | 'streaming' | 'ending' | 'closing' | 'done';

const CODE_COPY_DATA = 0x64; // 'd'
const CODE_COPY_DONE = 0x63; // 'c'
const CODE_COPY_BOTH = 0x57; // 'W'
const CODE_ERROR = 0x45; // 'E'
const CODE_READY = 0x5a; // 'Z'
const CODE_ROW_DESC = 0x54; // 'T'
const CODE_DATA_ROW = 0x44; // 'D'

interface Waiter {
  resolve: (r: IteratorResult<StreamMessage>) => void;
  reject: (e: unknown) => void;
}

export class PhysicalStream implements ReplicationStream {
  private state: State = 'starting';
  private received: bigint;
  private walEnd = 0n;
  private readonly queue = new Fifo<StreamMessage>();
  private queuedBytes = 0;
  private waiter: Waiter | null = null;
  private failure: ReplicationError | null = null;
  private failureDelivered = false;
  private userPaused = false;
  private autoPaused = false;
  private sentCopyDone = false;
  private closeRequested = false;
  private nextTimeline: { tli: number; start: bigint } | null = null;
  private readonly heartbeat: StreamHeartbeat;
  private readonly maxBuffered: number;
  private readonly finished: Promise<void>;
  private resolveFinished!: () => void;

  constructor(
    private readonly host: StreamHost,
    opts: StartReplicationOptions,
  ) {
    this.received = opts.startLsn;
    this.maxBuffered = opts.maxBufferedBytes ?? 4 * 1024 * 1024;
    const subject = {
      receivedLsn: () => this.received,
      streaming: () => this.state === 'streaming',
      copyDoneSent: () => this.sentCopyDone,
      reading: () => !(this.userPaused || this.autoPaused),
      done: () => this.state === 'done',
    };
    this.heartbeat = new StreamHeartbeat(host, subject, opts.statusIntervalMs ?? 10_000);
    this.finished = new Promise((r) => (this.resolveFinished = r));
  }

  get receivedLsn(): bigint {
    return this.received;
  }

  get serverWalEnd(): bigint {
    return this.walEnd;
  }

  get copying(): boolean {
    return this.state === 'streaming';
  }

  get bufferedBytes(): number {
    return this.queuedBytes + this.host.pendingBytes;
  }

  /** Resolves when the server has ended the command (ReadyForQuery) or the connection is gone. */
  whenFinished(): Promise<void> {
    return this.finished;
  }

  /** Called once the START_REPLICATION query has been written. */
  begin(): void {
    this.heartbeat.start();
  }

  // ---- frames from the connection ----

  onFrame(frame: Buffer): void {
    const code = frame[0];
    if (code === CODE_COPY_DATA) {
      if (this.state === 'streaming') this.onCopyData(frame);
      return; // after our CopyDone the server may still send some; it is dropped
    }
    switch (code) {
      case CODE_COPY_BOTH:
        this.state = 'streaming';
        if (this.closeRequested) this.sendCopyDone('closing');
        return;
      case CODE_COPY_DONE:
        // server finished this timeline (or answers our CopyDone)
        if (!this.sentCopyDone) this.sendCopyDone('ending');
        return;
      case CODE_ERROR: {
        const m = this.parse(frame);
        if (m) this.fail(this.host.serverError(asError(m)));
        return;
      }
      case CODE_ROW_DESC:
        return;
      case CODE_DATA_ROW: {
        // next_tli (int8), next_tli_startpos (text)
        const m = this.parse(frame);
        if (!m) return;
        const row = asDataRow(m);
        const tli = Number(row.fields[0]);
        const start = row.fields[1];
        const lsn = start != null && /^[0-9A-Fa-f]{1,8}\/[0-9A-Fa-f]{1,8}$/.test(start) ? parseLsn(start) : null;
        if (!Number.isInteger(tli) || tli < 1 || lsn === null) {
          this.fail(new ReplicationError('PROTOCOL', `unexpected end-of-timeline row ${JSON.stringify(row.fields)}`));
          return;
        }
        this.nextTimeline = { tli, start: lsn };
        return;
      }
      case CODE_READY:
        // the command is over; the connection is idle again
        if (this.nextTimeline && !this.closeRequested) {
          this.push({ type: 'end-of-timeline', nextTimeline: this.nextTimeline.tli, nextTimelineStart: this.nextTimeline.start }, 0);
        } else if (!this.closeRequested && !this.failure) {
          // Ended without naming a next timeline (server shutting down, or misbehaving): a failure, retried with backoff.
          this.fail(new ReplicationError('CLOSED', 'the server ended the replication stream without a next timeline: reconnect (see the server log if this repeats)'));
        }
        this.finish();
        return;
      default:
        return; // NoticeResponse, ParameterStatus, CommandComplete
    }
  }

  /** A malformed message ends the connection (a throw here would escape the socket's data handler). */
  private parse(frame: Buffer): BackendMessage | null {
    try {
      return this.host.parseFrame(frame);
    } catch (e) {
      this.host.destroy(e instanceof ReplicationError ? e : new ReplicationError('PROTOCOL', `malformed message from the server: ${(e as Error).message}`));
      return null;
    }
  }

  /** A message that arrived in pieces (Framer.nextParts): XLogData payload is passed on piece by piece, uncopied. */
  onFrameParts(parts: Buffer[]): void {
    const first = parts[0]!;
    if (parts.length === 1) return this.onFrame(first);
    if (first[0] !== CODE_COPY_DATA || first[5] !== 0x77 || this.state !== 'streaming') return this.onFrame(Buffer.concat(parts));
    const walStart = first.readBigUInt64BE(6);
    const walEnd = first.readBigUInt64BE(14);
    if (walEnd > this.walEnd) this.walEnd = walEnd;
    let at = walStart;
    for (const data of [first.subarray(30), ...parts.slice(1)]) {
      if (!data.length) continue;
      at += BigInt(data.length);
      if (at > this.received) this.received = at;
      this.push({ type: 'xlogdata', walStart: at - BigInt(data.length), walEnd, data }, data.length);
    }
  }

  private onCopyData(frame: Buffer): void {
    const kind = frame[5];
    if (kind === 0x77 /* 'w' XLogData */) {
      if (frame.length < 5 + 25) {
        this.host.destroy(new ReplicationError('PROTOCOL', `XLogData message too short (${frame.length} bytes)`));
        return;
      }
      const walStart = frame.readBigUInt64BE(6);
      const walEnd = frame.readBigUInt64BE(14);
      const data = frame.subarray(30);
      const end = walStart + BigInt(data.length);
      if (end > this.received) this.received = end;
      if (walEnd > this.walEnd) this.walEnd = walEnd;
      this.push({ type: 'xlogdata', walStart, walEnd, data }, data.length);
    } else if (kind === 0x6b /* 'k' primary keepalive */) {
      if (frame.length < 5 + 18) return;
      const walEnd = frame.readBigUInt64BE(6);
      if (walEnd > this.walEnd) this.walEnd = walEnd;
      if (frame[22] === 1) this.heartbeat.replyRequested();
    }
  }

  private sendCopyDone(next: State): void {
    this.sentCopyDone = true;
    this.state = next;
    // One small message; the close timer covers a server that never reads it.
    this.host.write(serialize.copyDone());
    // the rest of the exchange must be read even if the consumer paused us
    this.autoPaused = false;
    this.userPaused = false;
    this.applyReading();
  }

  // ---- queue and iteration ----

  private push(m: StreamMessage, bytes: number): void {
    if (this.closeRequested) return;
    const w = this.waiter;
    if (w && this.queue.length === 0) {
      this.waiter = null;
      w.resolve({ value: m, done: false });
      return;
    }
    this.queue.push(m);
    this.queuedBytes += bytes;
    if (!this.autoPaused && this.queuedBytes > this.maxBuffered && (this.state === 'streaming' || this.state === 'starting')) {
      this.autoPaused = true;
      this.applyReading();
    }
  }

  private applyReading(): void {
    this.host.setReading(!(this.userPaused || this.autoPaused));
  }

  /** The connection failed or the server sent an error. */
  fail(err: ReplicationError): void {
    if (!this.failure) this.failure = err;
    this.settleWaiter();
  }

  /** The connection is gone: no more frames will come. */
  connectionLost(err: ReplicationError): void {
    this.fail(err);
    this.finish();
  }

  private finish(): void {
    if (this.state === 'done') return;
    this.state = 'done';
    this.heartbeat.stop();
    this.autoPaused = false;
    this.userPaused = false;
    this.host.detachStream();
    this.host.setReading(true);
    this.resolveFinished();
    this.settleWaiter();
  }

  private settleWaiter(): void {
    const w = this.waiter;
    if (!w) return;
    if (this.queue.length) return; // a queued message is delivered first
    if (this.failure && !this.failureDelivered && !this.closeRequested) {
      this.waiter = null;
      this.failureDelivered = true;
      w.reject(this.failure);
    } else if (this.state === 'done' || this.failure) {
      this.waiter = null;
      w.resolve({ value: undefined, done: true });
    }
  }

  next(): Promise<IteratorResult<StreamMessage>> {
    const m = this.queue.shift();
    if (m) {
      if (m.type === 'xlogdata') this.queuedBytes -= m.data.length;
      if (this.autoPaused && this.queuedBytes <= this.maxBuffered / 2) {
        this.autoPaused = false;
        this.applyReading();
      }
      return Promise.resolve({ value: m, done: false });
    }
    if (this.failure && !this.failureDelivered && !this.closeRequested) {
      this.failureDelivered = true;
      return Promise.reject(this.failure);
    }
    if (this.state === 'done' || this.closeRequested || this.failure) return Promise.resolve({ value: undefined, done: true });
    if (this.waiter) return Promise.reject(new Error('ReplicationStream: next() called while a previous next() is pending'));
    return new Promise((resolve, reject) => (this.waiter = { resolve, reject }));
  }

  [Symbol.asyncIterator](): AsyncIterator<StreamMessage> {
    return {
      next: () => this.next(),
      return: async () => {
        await this.close();
        return { value: undefined, done: true };
      },
    };
  }

  pause(): void {
    this.userPaused = true;
    this.applyReading();
  }

  resume(): void {
    this.userPaused = false;
    this.applyReading();
  }

  /**
   * Ends the stream: CopyDone, and the server's answer awaited for at most
   * CLOSE_GRACE_MS. A server that is silent, trickles, or does not read our
   * writes gets the connection destroyed instead: stopping must be prompt.
   */
  async close(): Promise<void> {
    this.closeRequested = true;
    this.dropQueue();
    if (this.state === 'done') return;
    if (this.host.writeBacklog > 0) {
      this.host.destroy(new ReplicationError('CLOSED', 'the replication stream was closed while the server was not reading; the connection was dropped'));
      this.settleWaiter();
      return;
    }
    if (this.state === 'streaming' && !this.sentCopyDone) this.sendCopyDone('closing');
    this.userPaused = false;
    this.autoPaused = false;
    this.applyReading();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), CLOSE_GRACE_MS)));
    if ((await Promise.race([this.finished, timeout])) === 'timeout') {
      this.host.destroy(new ReplicationError('CLOSED', `the server did not end the replication stream within ${CLOSE_GRACE_MS} ms of CopyDone; the connection was dropped`));
    }
    clearTimeout(timer);
    this.settleWaiter();
  }

  private dropQueue(): void {
    this.queue.clear();
    this.queuedBytes = 0;
  }
}
