// Fuzz target: what a server sends once START_REPLICATION runs, through the
// framer and the stream's message handler (XLogData, keepalives, errors,
// CopyDone, the end-of-timeline result set).
// Input: [u8 chunking seed][server bytes].
// Properties: only the framer's documented "protocol:" error or a
// ReplicationError (delivered through destroy/fail, never thrown) comes out;
// the stream buffers no more than it was given; replies are coalesced (at
// most one status update per distinct received position, plus CopyDone).
import { Parser } from 'pg-protocol/dist/parser.js';
import type { BackendMessage } from 'pg-protocol/dist/messages.js';
import { Framer } from '../../src/replication/framer.ts';
import { parseBackendMessage } from '../../src/replication/messages.ts';
import { PhysicalStream, type StreamHost } from '../../src/replication/stream.ts';
import { ReplicationError, classifyServerError } from '../../src/replication/errors.ts';
import { PropertyViolation, rng, type FuzzTarget } from '../engine.ts';

class Host implements StreamHost {
  writes = 0;
  reading = true;
  destroyed: ReplicationError | null = null;
  private readonly parser = new Parser();
  constructor(readonly framer: Framer) {}
  write(): void {
    this.writes++;
  }
  setReading(on: boolean): void {
    this.reading = on;
  }
  parseFrame(frame: Buffer): BackendMessage {
    return parseBackendMessage(this.parser, frame); // as ReplicationConnection.parseFrame does
  }
  serverError = (f: Parameters<StreamHost['serverError']>[0]) => classifyServerError(f, { user: 'u', target: 'fuzz', tls: false });
  detachStream(): void {}
  destroy(err: ReplicationError): void {
    this.destroyed ??= err;
  }
  get pendingBytes(): number {
    return this.framer.pendingBytes;
  }
  writeBacklog = 0;
  lastReceiveAt = Date.now();
  walSenderTimeoutMs = 60_000;
  readTimeoutMs = 60_000;
}

function msg(type: string, body: Buffer): Buffer {
  const h = Buffer.alloc(5);
  h.write(type, 0, 'latin1');
  h.writeUInt32BE(body.length + 4, 1);
  return Buffer.concat([h, body]);
}
function xlog(start: bigint, data: Buffer): Buffer {
  const h = Buffer.alloc(25);
  h[0] = 0x77;
  h.writeBigUInt64BE(start, 1);
  h.writeBigUInt64BE(start + BigInt(data.length), 9);
  return msg('d', Buffer.concat([h, data]));
}
function keepalive(end: bigint, reply: number): Buffer {
  const b = Buffer.alloc(18);
  b[0] = 0x6b;
  b.writeBigUInt64BE(end, 1);
  b[17] = reply;
  return msg('d', b);
}
const copyBoth = msg('W', Buffer.from([0, 0, 0]));

export const replicationStreamTarget: FuzzTarget = {
  name: 'replication-stream',
  covers: ['/src/replication/', 'pg-protocol'],
  maxLen: 8192,
  dictionary: ['W', 'd', 'w', 'k', 'c', 'E', 'Z', 'T', 'D', 'C', 'N', 'S', Buffer.from([0, 0, 0, 4]), Buffer.from([0xff, 0xff, 0xff, 0xff]), 'SERROR\0', 'C58P01\0', 'Mrequested WAL segment 000000010000000000000001 has already been removed\0'],
  seeds: () => [
    Buffer.concat([Buffer.from([3]), copyBoth, xlog(0x1000000n, Buffer.alloc(100, 1)), keepalive(0x1000064n, 1), keepalive(0x1000064n, 1), xlog(0x1000064n, Buffer.alloc(10, 2))]),
    Buffer.concat([Buffer.from([9]), copyBoth, msg('c', Buffer.alloc(0)), msg('T', Buffer.from('\0\x02next_tli\0\0\0\0\0\0\0\0\0\x14\0\x08\xff\xff\xff\xff\0\0next_tli_startpos\0\0\0\0\0\0\0\0\0\x19\xff\xff\xff\xff\xff\xff\0\0', 'latin1')), msg('D', Buffer.from('\0\x02\0\0\0\x012\0\0\0\x090/3000000', 'latin1')), msg('C', Buffer.from('START_STREAMING\0')), msg('Z', Buffer.from('I'))]),
    Buffer.concat([Buffer.from([1]), copyBoth, msg('E', Buffer.from('SERROR\0C58P01\0Mrequested WAL segment 000000010000000000000003 has already been removed\0\0'))]),
  ],
  run(input) {
    if (input.length < 1) return;
    const rand = rng(input[0]!);
    const bytes = input.subarray(1);
    const framer = new Framer();
    const host = new Host(framer);
    const stream = new PhysicalStream(host, { startLsn: 0n, timeline: 1, maxBufferedBytes: 4096 });
    const positions = new Set<bigint>([stream.receivedLsn]);
    for (let pos = 0; pos < bytes.length && host.reading && !host.destroyed; ) {
      const n = 1 + Math.floor(rand() * 300);
      framer.push(bytes.subarray(pos, pos + n));
      pos += n;
      for (;;) {
        let parts: Buffer[] | null;
        try {
          parts = framer.nextParts(); // as ReplicationConnection.onData does
        } catch (e) {
          if (e instanceof Error && !(e instanceof TypeError) && /^protocol: /.test(e.message)) return;
          throw new PropertyViolation(`framer threw ${String(e)}`);
        }
        if (!parts) break;
        try {
          stream.onFrameParts(parts);
        } catch (e) {
          throw new PropertyViolation(`stream.onFrame threw instead of failing the stream: ${e instanceof Error ? e.stack : String(e)}`);
        }
        positions.add(stream.receivedLsn);
      }
      if (stream.bufferedBytes > pos + 64) throw new PropertyViolation(`stream holds ${stream.bufferedBytes} bytes after ${pos} arrived`);
    }
    if (host.writes > positions.size + 2) throw new PropertyViolation(`${host.writes} status updates for ${positions.size} distinct positions: replies not coalesced`);
  },
};
