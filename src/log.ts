// JSON logs in the bunyan record format (name, hostname, pid, numeric level,
// msg, ISO time, v: 0) so `bunyan` / `pino-pretty` and log shippers read them.
// Secrets are scrubbed by the logger itself, whatever the caller passes.

import { hostname } from 'node:os';
import { pino, type DestinationStream, type Logger } from 'pino';
import { NAME } from './version.ts';
import { REDACTED, redactConninfo } from './redact.ts';

export type { Logger } from 'pino';

// Keys whose values are secrets, at the top level and one or two objects deep
// (e.g. log.info({ config }) or log.info({ opts: { conn: { password } } })).
const SECRET_KEYS = ['password', 'replicationPassword', 'replication_password', 'PGPASSWORD', 'pass', 'secret'];
const CONNINFO_KEYS = ['conninfo', 'primaryConninfo', 'primary_conninfo', 'upstreamConninfo', 'connectionString'];
const PATHS = [...SECRET_KEYS, ...CONNINFO_KEYS].flatMap((k) => [k, `*.${k}`, `*.*.${k}`]);
const CONNINFO = new Set(CONNINFO_KEYS);

function censor(value: unknown, path: string[]): unknown {
  const key = path[path.length - 1] ?? '';
  if (CONNINFO.has(key)) return typeof value === 'string' ? redactConninfo(value) : value;
  // Empty secrets stay visible as "" so "not set" can be told from "set".
  return value === '' || value === undefined ? value : REDACTED;
}

export interface LoggerOptions {
  /** Where to write (default stdout). Tests pass a stream to capture lines. */
  stream?: DestinationStream;
  name?: string;
}

export function createLogger(level: string, opts: LoggerOptions = {}): Logger {
  const options = {
    name: opts.name ?? NAME,
    level,
    base: { pid: process.pid, hostname: hostname(), v: 0 },
    timestamp: pino.stdTimeFunctions.isoTime,
    // pino's numeric levels equal bunyan's (trace 10 ... fatal 60).
    formatters: { level: (_label: string, number: number) => ({ level: number }) },
    redact: { paths: PATHS, censor },
  };
  return opts.stream ? pino(options, opts.stream) : pino(options);
}
