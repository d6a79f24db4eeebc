// libpq-compatible connection strings ("key=value ..." and postgres:// URIs),
// environment defaults and ~/.pgpass, reduced to what a replication client needs.
import { existsSync } from 'node:fs';
import { userInfo } from 'node:os';
import { libpqPassword } from '../credentials.ts';
import { SSL_MODES, type SslMode } from '../options.ts';
import { parseDuration } from '../units.ts';

export { redactConninfo } from '../redact.ts';
export type { SslMode };

export interface ConnOptions {
  host: string; // hostname/IP, or a directory for a unix socket (starts with '/')
  port: number; // default 5432
  user: string;
  password?: string;
  dbname?: string;
  applicationName: string; // default 'pg_prefaulter'
  sslmode: SslMode; // default prefer
  sslrootcert?: string;
  sslcert?: string;
  sslkey?: string;
  connectTimeoutMs: number; // default 10000
  passfile?: string; // pgpass lookup when no password
  /** Fail with TIMEOUT when nothing at all arrives for this long while streaming. Default 60000. */
  readTimeoutMs?: number;
}

function badValue(key: string, value: string, want: string): Error {
  // password is never echoed back
  const shown = key === 'password' ? '***' : JSON.stringify(value);
  return new Error(`connection string: invalid value ${shown} for "${key}": expected ${want}`);
}

function parsePort(key: string, v: string): number {
  const n = Number(v);
  if (!/^\d+$/.test(v) || n < 1 || n > 65535) throw badValue(key, v, 'a TCP port number 1-65535');
  return n;
}

// Applies one libpq keyword; unknown keywords are ignored (libpq has many we do not use).
function applyKey(out: Partial<ConnOptions>, key: string, value: string): void {
  switch (key) {
    case 'host':
    case 'hostaddr':
      // libpq allows a comma-separated list; a replication client uses the first
      if (key === 'hostaddr' && out.host !== undefined) break;
      out.host = value.split(',')[0]!;
      break;
    case 'port':
      out.port = parsePort(key, value.split(',')[0]!);
      break;
    case 'user':
      out.user = value;
      break;
    case 'password':
      out.password = value;
      break;
    case 'dbname':
      out.dbname = value;
      break;
    case 'application_name':
      out.applicationName = value;
      break;
    case 'sslmode':
      if (!(SSL_MODES as readonly string[]).includes(value)) throw badValue(key, value, SSL_MODES.join(' | '));
      out.sslmode = value as SslMode;
      break;
    case 'sslrootcert':
      out.sslrootcert = value;
      break;
    case 'sslcert':
      out.sslcert = value;
      break;
    case 'sslkey':
      out.sslkey = value;
      break;
    case 'passfile':
      out.passfile = value;
      break;
    case 'connect_timeout': {
      const t = parseDuration(value, 's');
      if (!t.ok) throw badValue(key, value, 'seconds (a non-negative number)');
      // libpq: 0 means wait forever; values below 2 s are raised to 2 s
      out.connectTimeoutMs = t.value === 0 ? 0 : Math.max(2000, t.value);
      break;
    }
    default:
      break;
  }
}

/** Parses a libpq "key=value ..." string or a postgres:// / postgresql:// URI. */
export function parseConninfo(text: string): Partial<ConnOptions> {
  const t = text.trim();
  if (/^postgres(ql)?:\/\//.test(t)) return parseUri(t);
  const out: Partial<ConnOptions> = {};
  let i = 0;
  const n = t.length;
  const isSpace = (c: string | undefined): boolean => c !== undefined && /\s/.test(c);
  while (i < n) {
    while (isSpace(t[i])) i++;
    if (i >= n) break;
    let key = '';
    while (i < n && t[i] !== '=' && !isSpace(t[i])) key += t[i++];
    while (isSpace(t[i])) i++;
    if (t[i] !== '=') throw new Error(`connection string: missing "=" after "${key}" (expected key=value pairs)`);
    i++;
    while (isSpace(t[i])) i++;
    let value = '';
    if (t[i] === "'") {
      i++;
      let closed = false;
      while (i < n) {
        const c = t[i++]!;
        if (c === '\\' && i < n) value += t[i++];
        else if (c === "'") {
          closed = true;
          break;
        } else value += c;
      }
      if (!closed) throw new Error(`connection string: unterminated quoted value for "${key}"`);
    } else {
      while (i < n && !isSpace(t[i])) {
        const c = t[i++]!;
        if (c === '\\' && i < n) value += t[i++];
        else value += c;
      }
    }
    applyKey(out, key, value);
  }
  return out;
}

function decode(s: string, what: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    throw new Error(`connection URI: bad percent-encoding in ${what}`);
  }
}

function parseUri(uri: string): Partial<ConnOptions> {
  const out: Partial<ConnOptions> = {};
  let rest = uri.replace(/^postgres(ql)?:\/\//, '');
  let query = '';
  const q = rest.indexOf('?');
  if (q >= 0) {
    query = rest.slice(q + 1);
    rest = rest.slice(0, q);
  }
  let path = '';
  const slash = rest.indexOf('/');
  if (slash >= 0) {
    path = rest.slice(slash + 1);
    rest = rest.slice(0, slash);
  }
  const at = rest.lastIndexOf('@');
  if (at >= 0) {
    const cred = rest.slice(0, at);
    rest = rest.slice(at + 1);
    const colon = cred.indexOf(':');
    if (colon >= 0) {
      applyKey(out, 'user', decode(cred.slice(0, colon), 'user'));
      applyKey(out, 'password', decode(cred.slice(colon + 1), 'password'));
    } else if (cred) applyKey(out, 'user', decode(cred, 'user'));
  }
  const firstHost = rest.split(',')[0] ?? '';
  if (firstHost) {
    let host = firstHost;
    let port = '';
    const m = /^\[([^\]]*)\](?::(.*))?$/.exec(firstHost); // [ipv6]:port
    if (m) {
      host = m[1]!;
      port = m[2] ?? '';
    } else {
      const c = firstHost.lastIndexOf(':');
      if (c >= 0) {
        host = firstHost.slice(0, c);
        port = firstHost.slice(c + 1);
      }
    }
    if (host) applyKey(out, 'host', decode(host, 'host'));
    if (port) applyKey(out, 'port', decode(port, 'port'));
  }
  if (path) applyKey(out, 'dbname', decode(path, 'dbname'));
  for (const pair of query.split('&')) {
    if (!pair) continue;
    const eq = pair.indexOf('=');
    if (eq < 0) throw new Error(`connection URI: query parameter "${decode(pair, 'parameter')}" has no "="`);
    applyKey(out, decode(pair.slice(0, eq), 'parameter name'), decode(pair.slice(eq + 1).replace(/\+/g, ' '), 'parameter value'));
  }
  return out;
}

/**
 * Fills defaults from the environment (PG* variables). passwords = "libpq"
 * also fills the password as libpq would (password=, PGPASSWORD, passfile /
 * PGPASSFILE / ~/.pgpass); "given" leaves it to the caller (the agent, whose
 * rules for the upstream are in src/credentials.ts).
 */
export function resolveConnOptions(
  partial: Partial<ConnOptions>,
  env: NodeJS.ProcessEnv = process.env,
  passwords: 'libpq' | 'given' = 'libpq',
): ConnOptions {
  const fromEnv: Partial<ConnOptions> = {};
  const envKeys: Array<[string, string]> = [
    ['PGHOST', 'host'],
    ['PGPORT', 'port'],
    ['PGUSER', 'user'],
    ['PGDATABASE', 'dbname'],
    ['PGPASSFILE', 'passfile'],
    ['PGSSLMODE', 'sslmode'],
    ['PGSSLROOTCERT', 'sslrootcert'],
    ['PGSSLCERT', 'sslcert'],
    ['PGSSLKEY', 'sslkey'],
    ['PGAPPNAME', 'application_name'],
    ['PGCONNECT_TIMEOUT', 'connect_timeout'],
  ];
  for (const [name, key] of envKeys) {
    const v = env[name];
    if (v !== undefined && v !== '') {
      try {
        applyKey(fromEnv, key, v);
      } catch (e) {
        throw new Error(`environment variable ${name}: ${(e as Error).message.replace(/^connection string: /, '')}`);
      }
    }
  }
  const pick = <K extends keyof ConnOptions>(k: K): ConnOptions[K] | undefined => (partial[k] !== undefined ? partial[k] : fromEnv[k]);
  const host = pick('host') ?? (existsSync('/var/run/postgresql') ? '/var/run/postgresql' : 'localhost');
  const port = pick('port') ?? 5432;
  const user = pick('user') ?? safeUserName();
  const opts: ConnOptions = {
    host,
    port,
    user,
    applicationName: pick('applicationName') ?? 'pg_prefaulter',
    sslmode: pick('sslmode') ?? 'prefer',
    connectTimeoutMs: pick('connectTimeoutMs') ?? 10_000,
  };
  const optional = ['dbname', 'sslrootcert', 'sslcert', 'sslkey', 'passfile', 'readTimeoutMs'] as const;
  const copy = <K extends (typeof optional)[number]>(k: K): void => {
    const v = pick(k);
    if (v !== undefined) opts[k] = v;
  };
  for (const k of optional) copy(k);
  const password =
    passwords === 'given'
      ? partial.password
      : // libpq matches physical replication connections against database "replication".
        libpqPassword({ host, port, user, database: opts.dbname ?? 'replication', password: partial.password, passfile: opts.passfile }, env);
  if (password !== undefined) opts.password = password;
  return opts;
}

function safeUserName(): string {
  try {
    return userInfo().username;
  } catch {
    return 'postgres';
  }
}

/** host:port or socket path, for messages. */
export function describeTarget(o: Pick<ConnOptions, 'host' | 'port'>): string {
  return o.host.startsWith('/') ? `${o.host}/.s.PGSQL.${o.port}` : `${o.host.includes(':') ? `[${o.host}]` : o.host}:${o.port}`;
}
