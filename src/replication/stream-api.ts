// The interfaces between a replication stream, its consumer and its connection.
import type { BackendMessage } from 'pg-protocol/dist/messages.js';
import type { ReplicationError, ServerErrorFields } from './errors.ts';

export type StreamMessage =
  | { type: 'xlogdata'; walStart: bigint; walEnd: bigint; data: Buffer } // walStart = LSN of data[0]
  | { type: 'end-of-timeline'; nextTimeline: number; nextTimelineStart: bigint }; // after CopyDone + result set

export interface ReplicationStream extends AsyncIterable<StreamMessage> {
  readonly receivedLsn: bigint; // end of the last XLogData received
  readonly serverWalEnd: bigint; // latest walEnd / keepalive position seen from the server
  /** Bytes received and not yet taken by the consumer (queued XLogData plus partial messages). */
  readonly bufferedBytes: number;
  /** True once the server answered START_REPLICATION with CopyBothResponse (the stream is up). */
  readonly copying: boolean;
  pause(): void; // stop reading the socket (TCP back-pressure); status updates keep flowing on the timer
  resume(): void;
  close(): Promise<void>; // sends CopyDone / terminates cleanly
}

export interface StartReplicationOptions {
  startLsn: bigint;
  timeline: number;
  slot?: string;
  statusIntervalMs?: number; // default 10000
  maxBufferedBytes?: number; // default 4 MiB (the socket is paused beyond it; TCP buffers hold more)
}

/** What the stream needs from its connection (implemented by ReplicationConnection). */
export interface StreamHost {
  write(buf: Buffer): void;
  setReading(on: boolean): void;
  parseFrame(frame: Buffer): BackendMessage;
  serverError(f: ServerErrorFields): ReplicationError;
  detachStream(): void;
  destroy(err: ReplicationError): void;
  readonly pendingBytes: number;
  /** Bytes written but not yet taken by the kernel (the server is not reading). */
  readonly writeBacklog: number;
  /** When the last complete message arrived. */
  readonly lastReceiveAt: number;
  readonly walSenderTimeoutMs: number;
  readonly readTimeoutMs: number;
}
