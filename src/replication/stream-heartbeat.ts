// The timer side of a replication stream: standby status updates (how often,
// and the server's reply requests coalesced), liveness probes, and the two
// timeouts that drop a stuck connection (nothing read from the server, or our
// writes left unread by it).
import { serialize } from 'pg-protocol';
import { ReplicationError } from './errors.ts';
import type { StreamHost } from './stream-api.ts';

/** Replies the server asked for, when our position has not moved: at most this often. */
const MIN_REPLY_GAP_MS = 250;
/** Status updates wait while this much we wrote is still unread by the server. */
const WRITE_BACKLOG_LIMIT = 64 * 1024;

/** The stream as its heartbeat sees it. */
export interface HeartbeatSubject {
  /** End of the WAL received: reported as the write position. */
  receivedLsn(): bigint;
  /** In CopyBoth (the server answered START_REPLICATION, the stream has not ended). */
  streaming(): boolean;
  /** Our CopyDone went out: no status update may follow it. */
  copyDoneSent(): boolean;
  /** The socket is read (not paused by the consumer or by back-pressure): silence counts. */
  reading(): boolean;
  /** The command is over. */
  done(): boolean;
}

export class StreamHeartbeat {
  private timer: NodeJS.Timeout | null = null;
  private lastStatusAt = 0;
  private lastSentLsn = -1n;
  private lastProbeAt = 0;
  /** The server asked for a reply we have not sent yet (coalesced: one at most). */
  private replyWanted = false;
  /** Since when our writes have been backed up, 0 when they are not. */
  private backlogSince = 0;
  private readonly statusEveryMs: number;

  constructor(
    private readonly host: StreamHost,
    private readonly stream: HeartbeatSubject,
    statusIntervalMs: number,
  ) {
    // While the socket is paused we cannot see keepalive requests, so report
    // often enough on our own that wal_sender_timeout never fires.
    const wst = host.walSenderTimeoutMs;
    this.statusEveryMs = Math.max(20, wst > 0 ? Math.min(statusIntervalMs, wst / 3) : statusIntervalMs);
  }

  start(): void {
    const tick = Math.min(MIN_REPLY_GAP_MS, Math.max(50, Math.min(this.statusEveryMs, this.host.readTimeoutMs || Infinity) / 4));
    this.timer = setInterval(() => this.onTick(), tick);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** A keepalive asked for a reply. */
  replyRequested(): void {
    this.replyWanted = true;
    this.sendReply(Date.now());
  }

  /**
   * Answers the server's reply requests: coalesced into one pending reply, sent
   * at once when our position moved, else at most every MIN_REPLY_GAP_MS, and
   * never into a backlog the server is not reading (a keepalive flood from a
   * server that reads nothing must not pile up replies).
   */
  private sendReply(now: number): void {
    if (!this.replyWanted) return;
    if (this.stream.receivedLsn() === this.lastSentLsn && now - this.lastStatusAt < MIN_REPLY_GAP_MS) return;
    this.sendStatus();
  }

  private sendStatus(askReply = false): void {
    if (!this.stream.streaming() || this.stream.copyDoneSent()) return;
    if (this.host.writeBacklog > WRITE_BACKLOG_LIMIT) return; // retried on the next tick
    const received = this.stream.receivedLsn();
    this.host.write(serialize.copyData(encodeStatusUpdate(received, askReply)));
    this.lastStatusAt = Date.now();
    this.lastSentLsn = received;
    this.replyWanted = false;
  }

  private onTick(): void {
    const now = Date.now();
    const rt = this.host.readTimeoutMs;
    const reading = this.stream.reading();
    const streaming = this.stream.streaming();
    const silentFor = now - this.host.lastReceiveAt;
    if (this.host.writeBacklog > WRITE_BACKLOG_LIMIT) {
      this.backlogSince ||= now;
      if (rt > 0 && now - this.backlogSince > rt && !this.stream.done()) {
        this.host.destroy(
          new ReplicationError('TIMEOUT', `the server has not read our status updates for ${Math.round((now - this.backlogSince) / 1000)} s (read timeout ${rt} ms): it or the network is stuck; reconnecting is safe`),
        );
        return;
      }
    } else this.backlogSince = 0;
    this.sendReply(now);
    if (rt > 0 && reading && streaming && silentFor > rt / 2 && now - this.lastProbeAt > rt / 4) {
      this.lastProbeAt = now;
      this.sendStatus(true);
    } else if (streaming && now - this.lastStatusAt >= this.statusEveryMs) this.sendStatus();
    if (rt > 0 && reading && !this.stream.done() && now - this.host.lastReceiveAt > rt) {
      this.host.destroy(
        new ReplicationError(
          'TIMEOUT',
          `no complete message from the server for ${Math.round((now - this.host.lastReceiveAt) / 1000)} s (read timeout ${rt} ms): the server or network is stuck or trickling; reconnecting is safe`,
        ),
      );
    }
  }
}

// Microseconds between the Unix epoch and PostgreSQL's (2000-01-01).
const PG_EPOCH_MS = 946_684_800_000;
const STATUS_LEN = 1 + 8 * 4 + 1;

/** Standby status update ('r'): write = what we received; flush and apply InvalidXLogRecPtr. */
function encodeStatusUpdate(received: bigint, askReply: boolean): Buffer {
  const b = Buffer.allocUnsafe(STATUS_LEN);
  b[0] = 0x72; // 'r'
  b.writeBigUInt64BE(received, 1);
  // flush and apply stay InvalidXLogRecPtr: a standby with no valid flush
  // position is never chosen as synchronous, and nothing waits on us.
  b.writeBigUInt64BE(0n, 9);
  b.writeBigUInt64BE(0n, 17);
  b.writeBigInt64BE(BigInt(Date.now() - PG_EPOCH_MS) * 1000n, 25);
  // Normally 0. Our regular updates keep the walsender from sending
  // keepalives, so an idle server would look dead: when silence reaches half
  // the read timeout we ask for one reply as a liveness probe.
  b[33] = askReply ? 1 : 0;
  return b;
}
