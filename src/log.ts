// JSON logs in the bunyan record format (name, hostname, pid, numeric level,
// msg, ISO time, v: 0) so `bunyan` / `pino-pretty` and log shippers read them.
// Secrets are scrubbed by the logger itself, whatever the caller passes.

import { createRequire } from 'node:module';
import { hostname } from 'node:os';
import type { DestinationStream, LogFn, Logger } from 'pino';
import { NAME } from './version.ts';
import { REDACTED, redactConninfo } from './redact.ts';

export type { Logger } from 'pino';

const LEVELS = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60 } as const;
type LevelName = keyof typeof LEVELS;

/** What the agent logs through: the part of pino's Logger it uses (DeferredLogger has it too). */
export type Log = Pick<Logger, LevelName | 'level' | 'flush'>;

type PinoModule = typeof import('pino');
let pinoModule: PinoModule | null = null;

/** pino, loaded on first use (it is CommonJS: a synchronous require). */
function pinoLib(): PinoModule['pino'] {
  pinoModule ??= createRequire(import.meta.url)('pino') as PinoModule;
  return pinoModule.pino;
}

/** Set while a DeferredLogger writes what it kept: the time of the call, not of the write. */
let keptTime: number | null = null;
// pino.stdTimeFunctions.isoTime, with the kept time when there is one.
const isoTime = (): string => `,"time":"${new Date(keptTime ?? Date.now()).toISOString()}"`;

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
  /**
   * Write stdout synchronously: for a logger made while the process exits (pino's
   * own flush at exit is registered too late then, and an asynchronous write
   * in flight can be lost: CI lost the kept lines on Node 26 now and then).
   */
  sync?: boolean;
}

export function createLogger(level: string, opts: LoggerOptions = {}): Logger {
  const pino = pinoLib();
  const options = {
    name: opts.name ?? NAME,
    level,
    base: { pid: process.pid, hostname: hostname(), v: 0 },
    timestamp: isoTime,
    // pino's numeric levels equal bunyan's (trace 10 ... fatal 60).
    formatters: { level: (_label: string, number: number) => ({ level: number }) },
    redact: { paths: PATHS, censor },
  };
  if (opts.stream) return pino(options, opts.stream);
  return opts.sync ? pino(options, pino.destination({ dest: 1, sync: true })) : pino(options);
}

/** An object logged as it is now (pino would serialize it now; the caller may change it before it is written). */
function asOfNow(arg: unknown): unknown {
  if (typeof arg !== 'object' || arg === null) return arg;
  try {
    return structuredClone(arg);
  } catch {
    return arg; // holds a function or the like: as it will be
  }
}

/** Calls pino's method for level with the caller's arguments (LogFn's overloads do not take a spread). */
function emit(logger: Logger, level: LevelName, args: unknown[]): void {
  (logger[level] as (...a: unknown[]) => void)(...args);
}

/** Calls kept before pino loads, at most this many (then counted, and said when it loads). */
const KEEP_AT_MOST = 1000;

/**
 * A logger whose pino loads later. Loading pino and its redaction takes ~20 ms of a
 * start on Node 20, in the way of a crash recovery's first hint (issue #15): trace,
 * debug and info calls are kept, with their time, until start() (the CLI calls it
 * once start-up settled); a warning or worse, flush() and the process's exit load it
 * at once, so nothing that matters waits and nothing kept is lost.
 */
export class DeferredLogger implements Log {
  readonly trace: LogFn = (...args: unknown[]) => this.keep('trace', args);
  readonly debug: LogFn = (...args: unknown[]) => this.keep('debug', args);
  readonly info: LogFn = (...args: unknown[]) => this.keep('info', args);
  readonly warn: LogFn = (...args: unknown[]) => this.now('warn', args);
  readonly error: LogFn = (...args: unknown[]) => this.now('error', args);
  readonly fatal: LogFn = (...args: unknown[]) => this.now('fatal', args);
  private real: Logger | null = null;
  private kept: [LevelName, number, unknown[]][] = [];
  private dropped = 0;
  private levelName: string;

  constructor(
    level: string,
    private readonly opts: LoggerOptions = {},
  ) {
    this.levelName = level;
    process.once('exit', () => this.start(true));
  }

  get level(): string {
    return this.real?.level ?? this.levelName;
  }

  set level(level: string) {
    if (this.real) this.real.level = level;
    else this.levelName = level;
  }

  /** Load pino now and write what was kept, in order, each with its own time (atExit: synchronously). */
  start(atExit = false): Logger {
    if (this.real) return this.real;
    const real = (this.real = createLogger(this.levelName, atExit ? { ...this.opts, sync: true } : this.opts));
    for (const [level, time, args] of this.kept) {
      keptTime = time;
      try {
        emit(real, level, args);
      } finally {
        keptTime = null;
      }
    }
    this.kept = [];
    if (this.dropped > 0) real.warn({ dropped: this.dropped }, `${this.dropped} log lines from before start-up settled were dropped (more than ${KEEP_AT_MOST})`);
    return real;
  }

  flush(cb?: (err?: Error) => void): void {
    this.start().flush(cb);
  }

  private keep(level: LevelName, args: unknown[]): void {
    if (this.real) return emit(this.real, level, args);
    if (LEVELS[level] < (LEVELS[this.levelName as LevelName] ?? Infinity)) return; // below the level ('silent' keeps nothing)
    if (this.kept.length >= KEEP_AT_MOST) this.dropped++;
    else this.kept.push([level, Date.now(), args.map(asOfNow)]);
  }

  private now(level: LevelName, args: unknown[]): void {
    emit(this.start(), level, args);
  }
}
