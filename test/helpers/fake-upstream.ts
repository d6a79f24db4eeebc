// A misbehaving upstream on loopback for reliability tests: it speaks enough
// of the walsender protocol (startup with trust auth, IDENTIFY_SYSTEM, SHOW,
// START_REPLICATION ... PHYSICAL) for the agent to start streaming, then does
// what a broken server, proxy or network does: one behaviour per instance.
import { createServer, type Server, type Socket } from 'node:net';
import { once } from 'node:events';
import { WalBuilder, heapRecord, noopRecord, type RecordSpec } from './wal-builder.ts';

export type Misbehaviour =
  /** legal WAL with one record of hugeRecordBytes (default 1020 MiB) in it, then small records */
  | 'huge-record'
  /** keepalives asking for a reply, as fast as the socket takes them; never reads */
  | 'keepalive-flood'
  /** a CopyData header claiming 1 MiB, then one byte every 200 ms */
  | 'trickle'
  /** completes START_REPLICATION, then drops the connection */
  | 'handshake-break'
  /** random bytes as WAL */
  | 'garbage'
  /** nothing after CopyBothResponse, and never reads */
  | 'silence';

export interface FakeUpstreamOptions {
  behaviour: Misbehaviour;
  /** SHOW wal_sender_timeout answer (the agent's read timeout follows it); default '2s' */
  walSenderTimeout?: string;
  hugeRecordBytes?: number;
}

export interface FakeUpstream {
  port: number;
  /** when each connection was accepted (ms since epoch) */
  readonly connectedAt: number[];
  /** START_REPLICATION commands received */
  readonly streams: number;
  /** WAL bytes sent as XLogData */
  readonly walBytesSent: number;
  /** keepalives sent */
  readonly keepalivesSent: number;
  /** open connections */
  readonly active: number;
  /** Starts reading a non-reading connection again; resolves with the standby status updates it had sent. */
  drainStatusUpdates(waitMs?: number): Promise<number>;
  close(): Promise<void>;
}

const SYSTEM_ID = '7300000000000000001';

function msg(type: string, body: Buffer): Buffer {
  const h = Buffer.alloc(5);
  h.write(type, 0, 'latin1');
  h.writeUInt32BE(body.length + 4, 1);
  return Buffer.concat([h, body]);
}
const cstr = (s: string) => Buffer.from(`${s}\0`);
function int32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeInt32BE(n);
  return b;
}
function int16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeInt16BE(n);
  return b;
}
function rowDescription(names: string[]): Buffer {
  const cols = names.map((n) => Buffer.concat([cstr(n), int32(0), int16(0), int32(25), int16(-1), int32(-1), int16(0)]));
  return msg('T', Buffer.concat([int16(names.length), ...cols]));
}
function dataRow(values: Array<string | null>): Buffer {
  const cols = values.map((v) => (v === null ? int32(-1) : Buffer.concat([int32(Buffer.byteLength(v)), Buffer.from(v)])));
  return msg('D', Buffer.concat([int16(values.length), ...cols]));
}
const ready = () => msg('Z', Buffer.from('I'));
const complete = (tag: string) => msg('C', cstr(tag));

function parseLsnText(t: string): bigint {
  const [hi, lo] = t.split('/');
  return (BigInt(`0x${hi}`) << 32n) | BigInt(`0x${lo}`);
}

function xlogData(start: bigint, end: bigint, data: Buffer): Buffer {
  const h = Buffer.alloc(25);
  h[0] = 0x77;
  h.writeBigUInt64BE(start, 1);
  h.writeBigUInt64BE(end, 9);
  h.writeBigInt64BE(0n, 17);
  return msg('d', Buffer.concat([h, data]));
}
function keepalive(end: bigint, reply: boolean): Buffer {
  const b = Buffer.alloc(18);
  b[0] = 0x6b;
  b.writeBigUInt64BE(end, 1);
  b.writeBigInt64BE(0n, 9);
  b[17] = reply ? 1 : 0;
  return msg('d', b);
}

/** Writes, waiting for 'drain' when the socket's buffer is full; false once the socket is gone. */
async function send(s: Socket, b: Buffer): Promise<boolean> {
  if (s.destroyed) return false;
  if (s.write(b)) return true;
  await new Promise<void>((resolve) => {
    const done = () => {
      s.off('drain', done);
      s.off('close', done);
      resolve();
    };
    s.on('drain', done);
    s.on('close', done);
  });
  return !s.destroyed;
}

export async function startFakeUpstream(opts: FakeUpstreamOptions): Promise<FakeUpstream> {
  const connectedAt: number[] = [];
  const sockets = new Set<Socket>();
  const timers = new Set<NodeJS.Timeout>();
  let streams = 0;
  let walBytesSent = 0;
  let keepalivesSent = 0;
  let statusUpdates = 0;
  let closing = false;

  const misbehave = async (s: Socket, start: bigint): Promise<void> => {
    switch (opts.behaviour) {
      case 'handshake-break':
        s.destroy();
        return;
      case 'silence':
        s.pause();
        return;
      case 'trickle': {
        const header = Buffer.alloc(5);
        header.write('d', 0, 'latin1');
        header.writeUInt32BE(1024 * 1024, 1);
        s.write(header);
        const t = setInterval(() => (s.destroyed ? clearInterval(t) : s.write(Buffer.from([0x77]))), 200);
        timers.add(t);
        return;
      }
      case 'keepalive-flood': {
        s.pause(); // never reads what the agent answers
        const burst = Buffer.concat(Array.from({ length: 256 }, () => keepalive(start, true)));
        while (!closing && (await send(s, burst))) keepalivesSent += 256;
        return;
      }
      case 'garbage': {
        let pos = start;
        let seed = 12345;
        const chunk = Buffer.alloc(64 * 1024);
        while (!closing) {
          for (let i = 0; i < chunk.length; i++) chunk[i] = (seed = (seed * 1103515245 + 12345) >>> 0) >>> 24;
          if (!(await send(s, xlogData(pos, pos + BigInt(chunk.length), chunk)))) return;
          pos += BigInt(chunk.length);
          walBytesSent += chunk.length;
          if (walBytesSent > 64 * 1024 * 1024) return; // plenty; then silence
        }
        return;
      }
      case 'huge-record': {
        // Pages are produced as they fill: the huge record never exists whole here either.
        const pending: Buffer[] = [];
        let pendingBytes = 0;
        let pos = start;
        const builder = new WalBuilder({ startLsn: start }, (p) => {
          pending.push(Buffer.from(p));
          pendingBytes += p.length;
        });
        const flush = async (): Promise<boolean> => {
          const data = Buffer.concat(pending, pendingBytes);
          pending.length = 0;
          pendingBytes = 0;
          for (let o = 0; o < data.length; o += 128 * 1024) {
            const piece = data.subarray(o, o + 128 * 1024);
            if (!(await send(s, xlogData(pos, pos + BigInt(piece.length), piece)))) return false;
            pos += BigInt(piece.length);
            walBytesSent += piece.length;
          }
          return true;
        };
        const records: RecordSpec[] = [heapRecord([{ spcOid: 1663, dbOid: 5, relNumber: 999_001, block: 0 }])];
        for (const r of records) builder.add(r);
        const huge = opts.hugeRecordBytes ?? 1020 * 1024 * 1024 - 64;
        // add() hands out pages synchronously: the huge record goes in slices, sent as they are built
        for (const _ of builder.addStreaming(noopRecord(huge), 4 * 1024 * 1024)) if (!(await flush())) return;
        for (let i = 1; i <= 20; i++) builder.add(heapRecord([{ spcOid: 1663, dbOid: 5, relNumber: 999_001, block: i }]));
        pending.push(builder.flushPartial());
        pendingBytes += pending.at(-1)!.length;
        await flush();
        return;
      }
    }
  };

  const onQuery = async (s: Socket, sql: string): Promise<void> => {
    if (sql === 'IDENTIFY_SYSTEM') {
      s.write(Buffer.concat([rowDescription(['systemid', 'timeline', 'xlogpos', 'dbname']), dataRow([SYSTEM_ID, '1', '0/FFFFFF00', null]), complete('IDENTIFY_SYSTEM'), ready()]));
      return;
    }
    const show = /^SHOW (\w+)$/.exec(sql);
    if (show) {
      const v = show[1] === 'wal_sender_timeout' ? (opts.walSenderTimeout ?? '2s') : show[1] === 'wal_block_size' ? '8192' : show[1] === 'wal_segment_size' ? '16MB' : '';
      s.write(Buffer.concat([rowDescription([show[1]!]), dataRow([v]), complete('SHOW'), ready()]));
      return;
    }
    const start = /^START_REPLICATION (?:SLOT \w+ )?PHYSICAL ([0-9A-F]+\/[0-9A-F]+) TIMELINE (\d+)$/i.exec(sql);
    if (start) {
      streams++;
      s.write(msg('W', Buffer.concat([Buffer.from([0]), int16(0)])));
      await misbehave(s, parseLsnText(start[1]!));
      return;
    }
    s.write(Buffer.concat([msg('E', Buffer.concat([cstr('SERROR'), cstr('C42601'), cstr(`fake upstream: unsupported command ${sql}`), Buffer.from([0])])), ready()]));
  };

  const server: Server = createServer((s) => {
    connectedAt.push(Date.now());
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    let buf = Buffer.alloc(0);
    let started = false;
    s.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      for (;;) {
        if (!started) {
          if (buf.length < 8) return;
          const len = buf.readUInt32BE(0);
          if (buf.length < len) return;
          const code = buf.readUInt32BE(4);
          buf = buf.subarray(len);
          if (code === 80877103) {
            s.write('N'); // no TLS here
            continue;
          }
          started = true;
          s.write(Buffer.concat([msg('R', int32(0)), msg('S', Buffer.concat([cstr('server_version'), cstr('17.0')])), msg('S', Buffer.concat([cstr('integer_datetimes'), cstr('on')])), msg('K', Buffer.concat([int32(4242), int32(1)])), ready()]));
          continue;
        }
        if (buf.length < 5) return;
        const len = buf.readUInt32BE(1) + 1;
        if (buf.length < len) return;
        const type = String.fromCharCode(buf[0]!);
        const body = buf.subarray(5, len);
        buf = buf.subarray(len);
        if (type === 'Q') void onQuery(s, body.subarray(0, body.length - 1).toString());
        else if (type === 'd' && body[0] === 0x72) statusUpdates++;
        else if (type === 'X') s.end();
        else if (type === 'c') s.write(Buffer.concat([msg('c', Buffer.alloc(0)), complete('START_STREAMING'), ready()]));
      }
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as { port: number }).port;

  return {
    port,
    connectedAt,
    get streams() {
      return streams;
    },
    get walBytesSent() {
      return walBytesSent;
    },
    get keepalivesSent() {
      return keepalivesSent;
    },
    get active() {
      return sockets.size;
    },
    async drainStatusUpdates(waitMs = 500) {
      closing = true; // stops a flood so the agent's answers can be read
      for (const s of sockets) s.resume();
      await new Promise((r) => setTimeout(r, waitMs));
      return statusUpdates;
    },
    async close() {
      closing = true;
      for (const t of timers) clearInterval(t);
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
