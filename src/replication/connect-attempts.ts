// Opening a replication connection as libpq does: the TLS attempts sslmode
// calls for and their fallbacks, each bounded by the connect deadline and
// cancellable (a SIGTERM must not wait for a connect to finish).
import type { Socket } from 'node:net';
import { describeTarget, type ConnOptions } from './conninfo.ts';
import { ReplicationError } from './errors.ts';
import type { TlsAttempt } from './transport.ts';

interface Closable {
  close(): Promise<void>;
}

interface Destroyable {
  destroy(err: ReplicationError): void;
}

/** Runs attempt with the TLS plan opts.sslmode asks for, falling back as libpq does. */
export async function connectPerSslmode<C extends Closable>(opts: ConnOptions, attempt: (tls: TlsAttempt) => Promise<C>): Promise<C> {
  const plan: TlsAttempt = opts.sslmode === 'disable' || opts.sslmode === 'allow' ? 'none' : opts.sslmode === 'prefer' ? 'try' : 'must';
  try {
    return await attempt(plan);
  } catch (e) {
    // sslmode=prefer: a failed handshake falls back to a plain connection, as in libpq
    if (plan === 'try' && e instanceof ReplicationError && e.code === 'TLS_FAILED') return attempt('none');
    // "no pg_hba.conf entry ... no encryption": the server only accepts TLS here.
    if (plan === 'none' && e instanceof ReplicationError && e.sqlstate === '28000' && /(no pg_hba\.conf entry|pg_hba\.conf rejects).*(no encryption|SSL off)/.test(e.message)) {
      // Only a TLS attempt tells "needs TLS" from "not allowed at all".
      let viaTls: C;
      try {
        viaTls = await attempt('must');
      } catch {
        throw e;
      }
      if (opts.sslmode === 'allow') return viaTls;
      await viaTls.close().catch(() => {});
      throw new ReplicationError(
        'TLS_REQUIRED',
        `${e.message.replace(/: (add a "host replication|check the credentials).*$/, '')}: the server accepts this user only over TLS (hostssl); set sslmode=require (or verify-full with sslrootcert)`,
        { sqlstate: e.sqlstate },
      );
    }
    throw e;
  }
}

/** What an attempt in flight has made so far, to be destroyed if it runs out of time or is cancelled. */
export interface AttemptParts {
  /** The socket, as soon as it exists (before TLS and startup). */
  socket(s: Socket): void;
  /** The connection over it: destroyed at once when the attempt has already given up. */
  connection(c: Destroyable): void;
}

/**
 * Runs one connection attempt until it succeeds, fails, the deadline passes
 * (Infinity: none) or signal aborts; in the last two cases what it made is
 * destroyed and the attempt rejects with TIMEOUT or CLOSED.
 */
export async function boundedAttempt<C>(opts: ConnOptions, deadline: number, signal: AbortSignal | undefined, work: (parts: AttemptParts) => Promise<C>): Promise<C> {
  let conn: Destroyable | null = null;
  let raw: Socket | null = null;
  let gaveUp: ReplicationError | null = null;
  const running = work({
    socket: (s) => (raw = s),
    connection: (c) => {
      conn = c;
      if (gaveUp) c.destroy(gaveUp);
    },
  });
  if (deadline === Infinity && !signal) return running;
  let timer: NodeJS.Timeout | undefined;
  let onAbort: (() => void) | undefined;
  const giveUp = new Promise<never>((_, reject) => {
    const fail = (err: ReplicationError) => {
      gaveUp = err;
      (conn as Destroyable | null)?.destroy(err);
      (raw as Socket | null)?.destroy();
      reject(err);
    };
    const timeout = () =>
      fail(new ReplicationError('TIMEOUT', `connecting to ${describeTarget(opts)} took longer than ${opts.connectTimeoutMs} ms: check the host, port and firewall, or raise connect_timeout`));
    if (deadline !== Infinity) timer = setTimeout(timeout, Math.max(0, deadline - Date.now()));
    onAbort = () => fail(new ReplicationError('CLOSED', `connecting to ${describeTarget(opts)} was cancelled`));
    if (signal?.aborted) onAbort();
    else signal?.addEventListener('abort', onAbort, { once: true });
  });
  running.catch(() => {}); // the race below reports it
  try {
    return await Promise.race([running, giveUp]);
  } finally {
    clearTimeout(timer);
    if (onAbort) signal?.removeEventListener('abort', onAbort);
  }
}
