// A physical replication connection (startup with replication=true): the
// socket's messages, replication commands over the simple query protocol, and
// START_REPLICATION. Connecting: connect-attempts.ts (sslmode, deadline) and
// startup.ts (authentication); the stream itself: stream.ts.
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { serialize } from 'pg-protocol';
import { Parser } from 'pg-protocol/dist/parser.js';
import type { BackendMessage } from 'pg-protocol/dist/messages.js';
import { asDataRow, asError, asParameterStatus, asRowDescription, parseBackendMessage } from './messages.ts';
import { boundedAttempt, connectPerSslmode, type AttemptParts } from './connect-attempts.ts';
import { describeTarget, type ConnOptions } from './conninfo.ts';
import { classifyServerError, ReplicationError, type ServerErrorFields } from './errors.ts';
import { Framer } from './framer.ts';
import { noteSocketRead } from './read-buffers.ts';
import { formatLsn, parseLsn } from '../lsn.ts';
import { parseDuration } from '../units.ts';
import { startup } from './startup.ts';
import { PhysicalStream, type ReplicationStream, type StartReplicationOptions, type StreamHost } from './stream.ts';
import { openTransport, type TlsAttempt } from './transport.ts';

export type { ReplicationStream, StreamMessage, StartReplicationOptions } from './stream.ts';

export interface IdentifySystemResult {
  systemId: string;
  timeline: number;
  xlogpos: bigint;
  dbname: string | null;
}

interface QueryResult {
  fields: string[];
  rows: Array<Array<string | null>>;
}

const DEFAULT_READ_TIMEOUT_MS = 60_000;
const MIN_READ_TIMEOUT_MS = 1000;
/** close(): how long Terminate may take to leave before the socket is destroyed. */
const CLOSE_GRACE_MS = 100;

export class ReplicationConnection implements StreamHost {
  private readonly framer = new Framer();
  private readonly parser = new Parser();
  private readonly inbox: BackendMessage[] = [];
  private inboxWaiter: ((m: BackendMessage | ReplicationError) => void) | null = null;
  private failure: ReplicationError | null = null;
  private stream: PhysicalStream | null = null; // receives frames while START_REPLICATION runs
  private streamClaimed = false; // set at once by startReplication(), before the stream owns the wire
  private busy: Promise<unknown> = Promise.resolve();
  private readonly params = new Map<string, string>();
  private lastRecv = Date.now();
  private closed = false;
  private readonly closedPromise: Promise<void>;
  private walSenderTimeout = 0;
  /** XLOG_BLCKSZ (SHOW wal_block_size at connect): START_REPLICATION begins on a page boundary. */
  private walBlockSize = 0n;

  private constructor(
    private readonly socket: Socket | TLSSocket,
    readonly options: ConnOptions,
    readonly tls: boolean,
  ) {
    this.closedPromise = new Promise((resolve) => socket.once('close', () => resolve()));
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (e: Error) =>
      this.lose(new ReplicationError('CLOSED', `connection to ${describeTarget(options)} failed: ${e.message}: reconnect`, { cause: e })),
    );
    socket.on('close', () => this.lose(new ReplicationError('CLOSED', `server ${describeTarget(options)} closed the connection: reconnect (see the server log if this repeats)`)));
    socket.resume();
  }

  /** Connects with replication=true, negotiates TLS per sslmode and authenticates. */
  static connect(opts: ConnOptions, signal?: AbortSignal): Promise<ReplicationConnection> {
    const deadline = opts.connectTimeoutMs > 0 ? Date.now() + opts.connectTimeoutMs : Infinity;
    return connectPerSslmode(opts, (tls) => boundedAttempt(opts, deadline, signal, (parts) => ReplicationConnection.open(opts, tls, parts)));
  }

  private static async open(opts: ConnOptions, tls: TlsAttempt, parts: AttemptParts): Promise<ReplicationConnection> {
    const t = await openTransport(opts, tls, parts.socket);
    const c = new ReplicationConnection(t.socket, opts, t.tls);
    parts.connection(c);
    try {
      await startup(
        { write: (b) => c.write(b), readMessage: () => c.readMessage(), failWith: (e) => c.failWith(e), serverError: (f) => c.serverError(f) },
        opts,
      );
      // wal_sender_timeout paces status updates while paused; wal_block_size aligns start LSNs
      c.walSenderTimeout = parseDurationMs(await c.show('wal_sender_timeout'));
      c.walBlockSize = BigInt(await c.show('wal_block_size'));
    } catch (e) {
      c.destroy(e instanceof ReplicationError ? e : new ReplicationError('PROTOCOL', String(e)));
      throw e;
    }
    return c;
  }

  /** server_version_num, from the server_version ParameterStatus (e.g. 170002). */
  get serverVersionNum(): number {
    const v = this.params.get('server_version') ?? '';
    const m = /^(\d+)(?:\.(\d+))?(?:\.(\d+))?/.exec(v);
    if (!m) return 0;
    const major = Number(m[1]);
    return major >= 10 ? major * 10000 + Number(m[2] ?? 0) : major * 10000 + Number(m[2] ?? 0) * 100 + Number(m[3] ?? 0);
  }

  /** A ParameterStatus value the server reported (server_version, integer_datetimes, ...). */
  parameter(name: string): string | undefined {
    return this.params.get(name);
  }

  // ---- StreamHost ----

  get pendingBytes(): number {
    return this.framer.pendingBytes;
  }
  get lastReceiveAt(): number {
    return this.lastRecv;
  }
  get walSenderTimeoutMs(): number {
    return this.walSenderTimeout;
  }
  /**
   * No complete message for this long = the stream is dead. Unless given, the
   * server's own wal_sender_timeout (what it allows us; at least 1 s), or 60 s
   * when it has none: an idle server stays audible through our reply probes.
   */
  get readTimeoutMs(): number {
    if (this.options.readTimeoutMs !== undefined) return this.options.readTimeoutMs;
    return this.walSenderTimeout > 0 ? Math.max(MIN_READ_TIMEOUT_MS, this.walSenderTimeout) : DEFAULT_READ_TIMEOUT_MS;
  }
  get writeBacklog(): number {
    return this.closed ? 0 : this.socket.writableLength;
  }
  write(buf: Buffer): void {
    if (!this.closed) this.socket.write(buf);
  }
  setReading(on: boolean): void {
    if (on) {
      if (this.socket.isPaused()) {
        this.lastRecv = Date.now(); // time spent paused is not silence
        this.socket.resume();
      }
    } else this.socket.pause();
  }
  parseFrame(frame: Buffer): BackendMessage {
    return parseBackendMessage(this.parser, frame);
  }
  serverError(f: ServerErrorFields): ReplicationError {
    return classifyServerError(f, { user: this.options.user, target: describeTarget(this.options), tls: this.tls });
  }
  detachStream(): void {
    this.stream = null;
    this.streamClaimed = false;
  }
  destroy(err: ReplicationError): void {
    this.lose(err);
    this.socket.destroy();
  }

  // ---- incoming bytes ----

  private onData(chunk: Buffer): void {
    noteSocketRead(chunk.length);
    this.framer.push(chunk);
    for (;;) {
      let parts: Buffer[] | null;
      try {
        parts = this.framer.nextParts();
      } catch (e) {
        this.destroy(new ReplicationError('PROTOCOL', `${describeTarget(this.options)}: ${(e as Error).message}`));
        return;
      }
      if (!parts) return;
      // Liveness counts whole messages: a server trickling one byte at a time is not alive.
      this.lastRecv = Date.now();
      const s = this.stream;
      if (s) {
        try {
          s.onFrameParts(parts);
        } catch (e) {
          this.destroy(e instanceof ReplicationError ? e : new ReplicationError('PROTOCOL', `${describeTarget(this.options)}: unexpected message: ${(e as Error).message}`));
          return;
        }
        continue;
      }
      const frame = parts.length === 1 ? parts[0]! : Buffer.concat(parts);
      let msg: BackendMessage;
      try {
        msg = this.parseFrame(frame);
      } catch (e) {
        const target = describeTarget(this.options);
        this.destroy(
          e instanceof ReplicationError
            ? e
            : frame[0] === 0x52 // 'R': GSSAPI, SSPI, Kerberos
              ? new ReplicationError('AUTH_FAILED', `server ${target} asks for authentication method ${frame.length >= 9 ? frame.readInt32BE(5) : '?'}, which pg-prefaulter does not support: use scram-sha-256, md5, password or trust for it in pg_hba.conf`)
              : new ReplicationError('PROTOCOL', `${target}: unsupported or malformed message: ${(e as Error).message}`),
        );
        return;
      }
      if (msg.name === 'notice') continue;
      const p = asParameterStatus(msg);
      if (p) {
        this.params.set(p.parameterName, p.parameterValue);
        continue;
      }
      const w = this.inboxWaiter;
      if (w) {
        this.inboxWaiter = null;
        w(msg);
      } else this.inbox.push(msg);
    }
  }

  private lose(err: ReplicationError): void {
    if (this.closed) return;
    this.closed = true;
    this.failure = err;
    const w = this.inboxWaiter;
    this.inboxWaiter = null;
    w?.(err);
    this.stream?.connectionLost(err);
  }

  private readMessage(): Promise<BackendMessage> {
    const m = this.inbox.shift();
    if (m) return Promise.resolve(m);
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      this.inboxWaiter = (r) => (r instanceof ReplicationError ? reject(r) : resolve(r));
    });
  }

  // ---- commands ----

  private failWith(err: ReplicationError): ReplicationError {
    this.destroy(err);
    return err;
  }

  // One command at a time on the wire.
  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.busy.then(fn, fn);
    this.busy = run.catch(() => {});
    return run;
  }

  private query(sql: string): Promise<QueryResult> {
    return this.exclusive(async () => {
      if (this.stream) throw new ReplicationError('PROTOCOL', `cannot run "${sql}": a replication stream is active on this connection; close it first`);
      if (this.failure) throw this.failure;
      this.write(serialize.query(sql));
      const res: QueryResult = { fields: [], rows: [] };
      let err: ReplicationError | null = null;
      for (;;) {
        const msg = await this.readMessage();
        if (msg.name === 'rowDescription') res.fields = asRowDescription(msg).fields.map((f) => f.name);
        else if (msg.name === 'dataRow') res.rows.push(asDataRow(msg).fields);
        else if (msg.name === 'error') err = this.serverError(asError(msg));
        else if (msg.name === 'readyForQuery') break;
      }
      if (err) throw err;
      return res;
    });
  }

  async identifySystem(): Promise<IdentifySystemResult> {
    const r = await this.query('IDENTIFY_SYSTEM');
    const row = r.rows[0];
    if (!row || row.length < 4) throw new ReplicationError('PROTOCOL', `IDENTIFY_SYSTEM returned ${JSON.stringify(r.rows)}`);
    return { systemId: row[0] ?? '', timeline: Number(row[1]), xlogpos: parseLsn(row[2] ?? ''), dbname: row[3] ?? null };
  }

  /** SHOW for one setting (wal_segment_size, block_size, server_version_num, ...). */
  async show(name: string): Promise<string> {
    if (!/^[A-Za-z_][A-Za-z0-9_.]*$/.test(name)) throw new Error(`show: "${name}" is not a setting name`);
    const r = await this.query(`SHOW ${name}`);
    const v = r.rows[0]?.[0];
    if (v == null) throw new ReplicationError('PROTOCOL', `SHOW ${name} returned no value`);
    return v;
  }

  /** The history file of a timeline (TIMELINE_HISTORY n); timeline 1 has none. */
  async timelineHistory(timeline: number): Promise<{ filename: string; content: string }> {
    if (!Number.isInteger(timeline) || timeline < 1) throw new Error(`timelineHistory: bad timeline ${timeline}`);
    const r = await this.query(`TIMELINE_HISTORY ${timeline}`);
    const row = r.rows[0];
    if (!row) throw new ReplicationError('PROTOCOL', `TIMELINE_HISTORY ${timeline} returned no row`);
    return { filename: row[0] ?? '', content: row[1] ?? '' };
  }

  /**
   * START_REPLICATION [SLOT s] PHYSICAL X/Y TIMELINE n. startLsn is aligned
   * down to the WAL page size (wal_block_size), so the first message starts
   * with a page header; receivedLsn starts there. No slot unless asked.
   * Status updates report flush = InvalidXLogRecPtr, so a slot is never
   * advanced by the sidecar: give it a slot created without reserving WAL
   * (pg_create_physical_replication_slot(name, false)), or a reserved slot
   * would keep WAL from its creation point forever.
   */
  startReplication(opts: StartReplicationOptions): ReplicationStream {
    if (this.streamClaimed) throw new ReplicationError('PROTOCOL', 'a replication stream is already active on this connection; close it first');
    if (this.failure) throw this.failure;
    if (opts.slot !== undefined && !/^[a-z0-9_]{1,63}$/.test(opts.slot)) {
      throw new Error(`startReplication: slot name "${opts.slot}" is invalid (lower-case letters, digits, underscore)`);
    }
    if (!Number.isInteger(opts.timeline) || opts.timeline < 1) throw new Error(`startReplication: bad timeline ${opts.timeline}`);
    const start = opts.startLsn - (opts.startLsn % this.walBlockSize);
    const stream = new PhysicalStream(this, { ...opts, startLsn: start });
    this.streamClaimed = true;
    const sql = `START_REPLICATION ${opts.slot ? `SLOT ${opts.slot} ` : ''}PHYSICAL ${formatLsn(start)} TIMELINE ${opts.timeline}`;
    // Take the wire for the life of the stream; commands queue behind it.
    void this.exclusive(async () => {
      this.stream = stream;
      this.write(serialize.query(sql));
      stream.begin();
      await stream.whenFinished();
    });
    return stream;
  }

  /**
   * Ends any stream, sends Terminate and closes the socket. Bounded: a server
   * that reads nothing or never closes its side gets the socket destroyed.
   */
  async close(): Promise<void> {
    const s = this.stream;
    if (s) await s.close();
    if (!this.closed && this.socket.writableLength === 0) {
      this.socket.write(serialize.end());
      this.socket.end();
    } else this.socket.destroy();
    const t = setTimeout(() => this.socket.destroy(), CLOSE_GRACE_MS);
    await this.closedPromise;
    clearTimeout(t);
  }
}

// SHOW gives "60s", "500ms", "1min" or "0"; anything unreadable counts as 0 (no timeout).
function parseDurationMs(text: string): number {
  const t = parseDuration(text);
  return t.ok ? t.value : 0;
}
