// A loopback TCP proxy in front of a PostgreSQL server, for fault tests: it
// counts connections, can cut every connection (optionally in the middle of a
// server message), and can flip bytes inside XLogData payloads.
//
// It follows the protocol framing on the server->client side so cuts and
// corruption land exactly where intended: the one-byte answers to
// SSLRequest/GSSENCRequest are unframed, and after an 'S'/'G' answer the
// stream is encrypted and passed through untouched.
import { createServer, connect, type Server, type Socket } from 'node:net';

const SSL_REQUEST = 80877103;
const GSSENC_REQUEST = 80877104;

export interface TcpProxy {
  port: number;
  /** Connections accepted so far. */
  readonly connections: number;
  /** Connections open now. */
  readonly active: number;
  /** XLogData messages whose payload was corrupted. */
  readonly corrupted: number;
  /** Bytes of XLogData payload forwarded (all connections). */
  readonly walBytes: number;
  /** Reset every open connection now. */
  cutAll(): void;
  /** Reset every streaming connection after forwarding half of the next server message; resolves when cut. */
  cutMidMessage(): Promise<void>;
  /** Corrupt the next n XLogData messages (a few bytes each). */
  corruptNext(n: number): void;
  /** Refuse new connections (accept and reset at once) while true. */
  refuse: boolean;
  /** Accept new connections and never answer (a dead host behind a live load balancer) while true. */
  blackhole: boolean;
  /** Drop every byte in both directions on open connections while true (a silent network partition). */
  frozen: boolean;
  close(): Promise<void>;
}

interface Pair {
  client: Socket;
  server: Socket;
  streaming: boolean;
}

export async function startTcpProxy(targetHost: string, targetPort: number): Promise<TcpProxy> {
  const pairs = new Set<Pair>();
  const held = new Set<Socket>();
  let connections = 0;
  let corrupted = 0;
  let walBytes = 0;
  let corruptBudget = 0;
  let cutWaiters: (() => void)[] = [];

  const reset = (p: Pair) => {
    p.client.resetAndDestroy();
    p.server.resetAndDestroy();
    pairs.delete(p);
  };

  const server: Server = createServer((client) => {
    connections++;
    if (proxy.refuse) {
      client.resetAndDestroy();
      return;
    }
    if (proxy.blackhole) {
      held.add(client);
      client.on('error', () => {});
      client.on('close', () => held.delete(client));
      return;
    }
    const upstream = connect(targetPort, targetHost);
    const pair: Pair = { client, server: upstream, streaming: false };
    pairs.add(pair);
    client.on('error', () => {});
    upstream.on('error', () => {});
    // An orderly close on one side is passed on after the data in flight
    // (an error message before the server hangs up must arrive); only cuts reset.
    const closed = () => {
      pairs.delete(pair);
      client.end();
      upstream.end();
    };
    client.on('close', closed);
    upstream.on('close', closed);

    // client -> server: raw, but watch the untyped startup packets.
    let startupBuf: Buffer | null = Buffer.alloc(0) as Buffer;
    let singleByteReplies = 0;
    client.on('data', (chunk: Buffer) => {
      if (proxy.frozen) return;
      if (startupBuf) {
        startupBuf = Buffer.concat([startupBuf, chunk]);
        while (startupBuf && startupBuf.length >= 8) {
          const len = startupBuf.readInt32BE(0);
          const code = startupBuf.readInt32BE(4);
          if (code === SSL_REQUEST || code === GSSENC_REQUEST) {
            singleByteReplies++;
            startupBuf = startupBuf.subarray(len);
          } else {
            startupBuf = null; // the StartupMessage: typed messages from here on
          }
        }
      }
      upstream.write(chunk);
    });

    // server -> client: framed messages.
    let buf: Buffer = Buffer.alloc(0);
    let raw = false;
    upstream.on('data', (chunk: Buffer) => {
      if (proxy.frozen) return;
      if (raw) {
        client.write(chunk);
        return;
      }
      buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
      while (singleByteReplies > 0 && buf.length > 0) {
        const answer = String.fromCharCode(buf[0]!);
        singleByteReplies--;
        client.write(buf.subarray(0, 1));
        buf = buf.subarray(1);
        if (answer === 'S' || answer === 'G') {
          raw = true;
          if (buf.length) client.write(buf);
          return;
        }
      }
      while (buf.length >= 5) {
        const len = buf.readInt32BE(1);
        if (buf.length < 1 + len) break;
        const msg = Buffer.from(buf.subarray(0, 1 + len));
        buf = buf.subarray(1 + len);
        const type = String.fromCharCode(msg[0]!);
        if (type === 'W') pair.streaming = true;
        if (type === 'd' && msg[5] === 0x77 /* 'w' XLogData */) {
          const dataStart = 5 + 1 + 24;
          const dataLen = msg.length - dataStart;
          walBytes += dataLen;
          if (corruptBudget > 0 && dataLen > 64) {
            corruptBudget--;
            corrupted++;
            // Flip a spread of bytes so record headers and CRCs break.
            for (let off = dataStart + 17; off < msg.length; off += 997) msg[off] = msg[off]! ^ 0xa5;
          }
        }
        if (pair.streaming && cutWaiters.length && msg.length > 2) {
          client.write(msg.subarray(0, msg.length >> 1), () => {
            for (const p of [...pairs]) if (p.streaming) reset(p);
            const waiters = cutWaiters;
            cutWaiters = [];
            for (const w of waiters) w();
          });
          return;
        }
        client.write(msg);
      }
    });
  });
  server.on('error', () => {});
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : 0;

  const proxy: TcpProxy = {
    port,
    refuse: false,
    blackhole: false,
    frozen: false,
    get connections() {
      return connections;
    },
    get active() {
      return pairs.size + held.size;
    },
    get corrupted() {
      return corrupted;
    },
    get walBytes() {
      return walBytes;
    },
    cutAll() {
      for (const p of [...pairs]) reset(p);
    },
    cutMidMessage() {
      return new Promise<void>((resolve) => cutWaiters.push(resolve));
    },
    corruptNext(n) {
      corruptBudget = n;
    },
    async close() {
      for (const p of [...pairs]) reset(p);
      for (const h of [...held]) h.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  return proxy;
}
