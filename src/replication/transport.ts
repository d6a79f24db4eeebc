// Opens the byte stream to the server: TCP or unix socket, then TLS through
// SSLRequest with libpq's sslmode semantics.
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect, checkServerIdentity, type ConnectionOptions, type TLSSocket } from 'node:tls';
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { serialize } from 'pg-protocol';
import type { ConnOptions } from './conninfo.ts';
import { describeTarget } from './conninfo.ts';
import { ReplicationError } from './errors.ts';

export interface Transport {
  socket: Socket | TLSSocket;
  tls: boolean;
}

/** Whether this attempt asks for TLS at all. */
export type TlsAttempt = 'none' | 'try' | 'must';

function openSocket(o: ConnOptions, track: (s: Socket) => void): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = o.host.startsWith('/') ? netConnect({ path: join(o.host, `.s.PGSQL.${o.port}`) }) : netConnect({ host: o.host, port: o.port });
    track(s);
    s.setNoDelay(true);
    const onError = (e: Error): void => {
      s.destroy();
      reject(
        new ReplicationError(
          'CONNECT_FAILED',
          `could not connect to ${describeTarget(o)}: ${e.message}: check that the server is running and host/port are right`,
          { cause: e },
        ),
      );
    };
    s.once('error', onError);
    s.once('connect', () => {
      s.off('error', onError);
      resolve(s);
    });
  });
}

// Reads exactly the one-byte answer to SSLRequest. More bytes would be data
// injected before the handshake (CVE-2021-23222): refuse them.
function readSslAnswer(s: Socket, o: ConnOptions): Promise<string> {
  return new Promise((resolve, reject) => {
    const cleanup = (): void => {
      s.off('data', onData);
      s.off('error', onErr);
      s.off('close', onClose);
    };
    const onData = (b: Buffer): void => {
      cleanup();
      s.pause();
      if (b.length !== 1) {
        s.destroy();
        reject(new ReplicationError('PROTOCOL', `${describeTarget(o)}: unexpected data after the SSL answer; is this a PostgreSQL server?`));
        return;
      }
      resolve(String.fromCharCode(b[0]!));
    };
    const onErr = (e: Error): void => {
      cleanup();
      reject(new ReplicationError('CONNECT_FAILED', `${describeTarget(o)}: connection failed during SSL negotiation: ${e.message}`, { cause: e }));
    };
    const onClose = (): void => {
      cleanup();
      reject(new ReplicationError('CONNECT_FAILED', `${describeTarget(o)}: server closed the connection during SSL negotiation`));
    };
    s.on('data', onData);
    s.once('error', onErr);
    s.once('close', onClose);
    s.write(serialize.requestSsl());
  });
}

function tlsOptions(o: ConnOptions, socket: Socket): ConnectionOptions {
  const home = process.env.HOME ?? homedir();
  const rootcert = o.sslrootcert ?? join(home, '.postgresql', 'root.crt');
  // libpq: sslmode=require with a root certificate present behaves like verify-ca
  const verify = o.sslmode === 'verify-ca' || o.sslmode === 'verify-full' || (o.sslmode === 'require' && existsSync(rootcert));
  const opts: ConnectionOptions = { socket, rejectUnauthorized: verify };
  if (!o.host.startsWith('/') && !/^[\d.]+$|:/.test(o.host)) opts.servername = o.host;
  if (verify) {
    if (o.sslrootcert === 'system') {
      // use Node's bundled CA store
    } else {
      try {
        opts.ca = readFileSync(rootcert);
      } catch (e) {
        throw new ReplicationError('TLS_FAILED', `sslmode=${o.sslmode} needs a root certificate, but ${rootcert} cannot be read (${(e as Error).message}): set sslrootcert`);
      }
    }
    opts.checkServerIdentity = o.sslmode === 'verify-full' ? (_host, cert) => checkServerIdentity(o.host, cert) : () => undefined;
  }
  const certPath = o.sslcert ?? join(home, '.postgresql', 'postgresql.crt');
  const keyPath = o.sslkey ?? join(home, '.postgresql', 'postgresql.key');
  if (existsSync(certPath) && existsSync(keyPath)) {
    opts.cert = readFileSync(certPath);
    opts.key = readFileSync(keyPath);
  }
  return opts;
}

function startTls(socket: Socket, o: ConnOptions): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    let t: TLSSocket;
    try {
      t = tlsConnect(tlsOptions(o, socket));
    } catch (e) {
      socket.destroy();
      reject(e instanceof ReplicationError ? e : new ReplicationError('TLS_FAILED', `TLS setup failed: ${(e as Error).message}`, { cause: e }));
      return;
    }
    const onError = (e: Error): void => {
      t.destroy();
      reject(
        new ReplicationError(
          'TLS_FAILED',
          `TLS handshake with ${describeTarget(o)} failed (sslmode=${o.sslmode}): ${e.message}: check sslrootcert and that the server certificate matches the host name`,
          { cause: e },
        ),
      );
    };
    t.once('error', onError);
    t.once('secureConnect', () => {
      t.off('error', onError);
      resolve(t);
    });
  });
}

/** Connects and negotiates TLS as asked. track() sees the raw socket at once, so a connect timeout can destroy it. */
export async function openTransport(o: ConnOptions, attempt: TlsAttempt, track: (s: Socket) => void = () => {}): Promise<Transport> {
  const socket = await openSocket(o, track);
  // TLS does not apply to unix sockets (libpq skips it too)
  if (attempt === 'none' || o.host.startsWith('/')) return { socket, tls: false };
  let answer: string;
  try {
    answer = await readSslAnswer(socket, o);
  } catch (e) {
    socket.destroy();
    throw e;
  }
  if (answer === 'S') return { socket: await startTls(socket, o), tls: true };
  if (answer === 'N') {
    if (attempt === 'must') {
      socket.destroy();
      throw new ReplicationError('TLS_FAILED', `${describeTarget(o)} does not support SSL but sslmode=${o.sslmode}: enable ssl on the server or lower sslmode`);
    }
    return { socket, tls: false }; // still paused: the connection resumes it once it listens
  }
  socket.destroy();
  throw new ReplicationError('PROTOCOL', `${describeTarget(o)}: unexpected answer ${JSON.stringify(answer)} to SSLRequest; is this PostgreSQL?`);
}
