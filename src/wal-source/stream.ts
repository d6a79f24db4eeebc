// WAL from our own physical replication connection to the upstream.
import { ReplicationConnection, type ReplicationStream } from '../replication/connection.ts';
import type { ConnOptions } from '../replication/conninfo.ts';
import { TimelineEnded, type WalChunk, type WalSource } from './source.ts';

export interface StreamSourceOptions {
  conn: ConnOptions;
  startLsn: bigint;
  timeline: number;
  slot?: string;
  statusIntervalMs: number;
  /** Aborts a connect in progress (stop, restart). */
  signal?: AbortSignal;
}

export class StreamSource implements WalSource {
  readonly kind = 'stream' as const;
  private constructor(
    private connection: ReplicationConnection,
    private stream: ReplicationStream,
    readonly systemId: string,
    readonly upstreamTimeline: number,
  ) {}

  /** Connects, checks the upstream, and starts streaming at startLsn (page aligned by the caller). */
  static async open(opts: StreamSourceOptions): Promise<StreamSource> {
    const connection = await ReplicationConnection.connect(opts.conn, opts.signal);
    try {
      const id = await connection.identifySystem();
      // Stream on the upstream's current timeline when it is newer: its
      // walsender serves our older history from it, and asking for the old
      // timeline would only end at the switch point again.
      const stream = connection.startReplication({
        startLsn: opts.startLsn,
        timeline: Math.max(opts.timeline, id.timeline),
        slot: opts.slot || undefined,
        statusIntervalMs: opts.statusIntervalMs,
      });
      return new StreamSource(connection, stream, id.systemId, id.timeline);
    } catch (e) {
      await connection.close().catch(() => {});
      throw e;
    }
  }

  get started(): boolean {
    return this.stream.copying;
  }

  upstreamEnd(): bigint | null {
    const end = this.stream.serverWalEnd;
    return end > 0n ? end : null;
  }

  get receivedLsn(): bigint {
    return this.stream.receivedLsn;
  }

  async close(): Promise<void> {
    await this.stream.close().catch(() => {});
    await this.connection.close().catch(() => {});
  }

  async *[Symbol.asyncIterator](): AsyncIterator<WalChunk> {
    for await (const msg of this.stream) {
      if (msg.type === 'xlogdata') {
        if (msg.data.length) yield { lsn: msg.walStart, data: msg.data };
      } else if (msg.type === 'end-of-timeline') {
        throw new TimelineEnded(msg.nextTimeline, msg.nextTimelineStart);
      }
    }
  }
}
