// One PostgreSQL server process on loopback, driven directly (no pg_ctl) so
// the harness owns its lifetime and can stop it fast, immediately or smartly.
import { spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync, openSync, closeSync, readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import postgres from 'postgres';
import { asServerUser } from './user.ts';

export type StopMode = 'smart' | 'fast' | 'immediate';
const STOP_SIGNAL: Record<StopMode, NodeJS.Signals> = { smart: 'SIGTERM', fast: 'SIGINT', immediate: 'SIGQUIT' };

const running = new Set<ChildProcess>();
// A test process that dies must not leave servers behind.
process.on('exit', () => {
  for (const p of running) p.kill('SIGQUIT');
});

export interface ServerInit {
  name: string;
  version: number;
  binDir: string;
  dataDir: string;
  socketDir: string;
  logFile: string;
  port: number;
}

export class PgServer {
  readonly name: string;
  readonly version: number;
  readonly binDir: string;
  readonly dataDir: string;
  readonly socketDir: string;
  readonly logFile: string;
  port: number;
  /** Extra environment for the server process (e.g. LD_PRELOAD for a storage model); applies at the next start(). */
  env: Record<string, string> = {};
  private proc: ChildProcess | null = null;
  private client: postgres.Sql | null = null;

  constructor(init: ServerInit) {
    this.name = init.name;
    this.version = init.version;
    this.binDir = init.binDir;
    this.dataDir = init.dataDir;
    this.socketDir = init.socketDir;
    this.logFile = init.logFile;
    this.port = init.port;
  }

  get running(): boolean {
    return this.proc !== null;
  }

  /** libpq-style connection string over TCP loopback. */
  conninfo(extra: Record<string, string | number> = {}): string {
    const kv = { host: '127.0.0.1', port: this.port, user: 'postgres', dbname: 'postgres', ...extra };
    return Object.entries(kv)
      .map(([k, v]) => `${k}=${v}`)
      .join(' ');
  }

  /** Append settings to postgresql.conf (later lines win). */
  configure(settings: Record<string, string | number | boolean>): void {
    const lines = Object.entries(settings).map(([k, v]) => `${k} = ${typeof v === 'string' ? `'${v.replace(/'/g, "''")}'` : v}`);
    appendFileSync(join(this.dataDir, 'postgresql.conf'), `\n${lines.join('\n')}\n`);
  }

  async start(timeoutMs = 60_000): Promise<void> {
    if (this.proc) return;
    const out = openSync(this.logFile, 'a');
    const proc = spawn(join(this.binDir, 'postgres'), ['-D', this.dataDir], {
      stdio: ['ignore', out, out],
      env: { ...process.env, ...this.env },
      ...asServerUser(),
    });
    closeSync(out);
    running.add(proc);
    this.proc = proc;
    let exited: string | null = null;
    proc.once('exit', (code, signal) => {
      running.delete(proc);
      if (this.proc === proc) this.proc = null;
      exited = `exited with ${signal ?? code}`;
    });
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (exited) throw new Error(`${this.name} (PG ${this.version}) ${exited} during start\n${this.logTail()}`);
      if (await this.acceptsConnections()) return;
      if (Date.now() > deadline) {
        throw new Error(`${this.name} (PG ${this.version}) not ready after ${timeoutMs} ms\n${this.logTail()}`);
      }
      await sleep(100);
    }
  }

  private async acceptsConnections(): Promise<boolean> {
    if (!existsSync(join(this.socketDir, `.s.PGSQL.${this.port}`))) return false;
    const probe = postgres({ host: this.socketDir, port: this.port, username: 'postgres', database: 'postgres', max: 1, connect_timeout: 2, onnotice: () => {} });
    try {
      await probe`select 1`;
      return true;
    } catch {
      return false;
    } finally {
      await probe.end({ timeout: 1 });
    }
  }

  async stop(mode: StopMode = 'fast', timeoutMs = 60_000): Promise<void> {
    await this.closeClient();
    const proc = this.proc;
    if (!proc) return;
    const done = new Promise<void>((res) => proc.once('exit', () => res()));
    proc.kill(STOP_SIGNAL[mode]);
    const timer = setTimeout(() => proc.kill('SIGQUIT'), timeoutMs);
    await done;
    clearTimeout(timer);
  }

  /** Client over the unix socket as superuser; reused until stop(). */
  sql(): postgres.Sql {
    if (!this.client) {
      this.client = postgres({
        host: this.socketDir,
        port: this.port,
        username: 'postgres',
        database: 'postgres',
        max: 1,
        onnotice: () => {},
        connection: { application_name: 'harness' },
      });
    }
    return this.client;
  }

  /** Run one statement (optionally with $n params) and return its rows. */
  async query<T extends Record<string, unknown> = Record<string, unknown>>(text: string, params: unknown[] = []): Promise<T[]> {
    const rows = await this.sql().unsafe(text, params as postgres.ParameterOrJSON<never>[]);
    return rows as unknown as T[];
  }

  /** Run a script of several statements with the simple protocol. */
  async exec(script: string): Promise<void> {
    await this.sql().unsafe(script).simple();
  }

  /** First column of the first row. */
  async scalar<T = unknown>(text: string, params: unknown[] = []): Promise<T> {
    const rows = await this.query(text, params);
    const row = rows[0];
    if (!row) throw new Error(`${this.name}: "${text}" returned no row`);
    return Object.values(row)[0] as T;
  }

  async closeClient(): Promise<void> {
    const c = this.client;
    this.client = null;
    if (c) await c.end({ timeout: 2 });
  }

  async isInRecovery(): Promise<boolean> {
    return this.scalar<boolean>('select pg_is_in_recovery()');
  }

  /** The primary's current WAL write position, or the standby's replay position. */
  async currentLsn(): Promise<string> {
    return (await this.isInRecovery())
      ? this.scalar<string>('select pg_last_wal_replay_lsn()::text')
      : this.scalar<string>('select pg_current_wal_lsn()::text');
  }

  async switchWal(): Promise<string> {
    return this.scalar<string>('select pg_switch_wal()::text');
  }

  /** Wait until this standby has replayed up to lsn. */
  async waitForReplay(lsn: string, timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const ok = await this.scalar<boolean>('select coalesce(pg_last_wal_replay_lsn() >= $1::pg_lsn, false)', [lsn]);
      if (ok) return;
      if (Date.now() > deadline) {
        const at = await this.scalar<string>('select pg_last_wal_replay_lsn()::text');
        throw new Error(`${this.name}: replay at ${at}, did not reach ${lsn} within ${timeoutMs} ms\n${this.logTail()}`);
      }
      await sleep(50);
    }
  }

  /** Wait until this standby has received (flushed) WAL up to lsn. */
  async waitForReceive(lsn: string, timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const ok = await this.scalar<boolean>('select coalesce(pg_last_wal_receive_lsn() >= $1::pg_lsn, false)', [lsn]);
      if (ok) return;
      if (Date.now() > deadline) throw new Error(`${this.name}: did not receive ${lsn} within ${timeoutMs} ms\n${this.logTail()}`);
      await sleep(50);
    }
  }

  async pauseReplay(): Promise<void> {
    await this.query('select pg_wal_replay_pause()');
    // PG 14+ reports when the pause has taken effect; 13 pauses at the next record.
    if (this.version >= 14) {
      const deadline = Date.now() + 30_000;
      while ((await this.scalar<string>('select pg_get_wal_replay_pause_state()')) !== 'paused') {
        if (Date.now() > deadline) throw new Error(`${this.name}: replay did not pause`);
        await sleep(20);
      }
    }
  }

  async resumeReplay(): Promise<void> {
    await this.query('select pg_wal_replay_resume()');
  }

  /** Promote this standby and wait until it accepts writes. */
  async promote(timeoutMs = 60_000): Promise<void> {
    await this.query('select pg_promote(true, $1)', [Math.ceil(timeoutMs / 1000)]);
    const deadline = Date.now() + timeoutMs;
    while (await this.isInRecovery()) {
      if (Date.now() > deadline) throw new Error(`${this.name}: still in recovery after promote\n${this.logTail()}`);
      await sleep(50);
    }
  }

  /** Current timeline: the insert timeline on a primary, the received one on a standby. */
  async timeline(): Promise<number> {
    if (!(await this.isInRecovery())) {
      return parseInt((await this.scalar<string>('select pg_walfile_name(pg_current_wal_lsn())')).slice(0, 8), 16);
    }
    const rows = await this.query<{ tli: number }>('select received_tli as tli from pg_stat_wal_receiver');
    return Number(rows[0]?.tli ?? (await this.scalar('select timeline_id from pg_control_checkpoint()')));
  }

  /** The last lines of the server log, for error messages. */
  logTail(lines = 40): string {
    try {
      const text = readFileSync(this.logFile, 'utf8').trimEnd().split('\n');
      return `--- ${this.logFile} (last ${lines} lines) ---\n${text.slice(-lines).join('\n')}`;
    } catch {
      return `(no log at ${this.logFile})`;
    }
  }

  /** OS pid of the postmaster, when running. */
  get pid(): number | undefined {
    return this.proc?.pid;
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
