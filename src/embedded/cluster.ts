// A real primary and (optionally) a streaming standby on loopback, made the
// way the embedded binaries allow: initdb once per version into a template,
// copy it for a primary, and copy a cleanly stopped primary for a standby.
import { execFileSync } from 'node:child_process';
import { chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, renameSync, rmSync, symlinkSync, unlinkSync, writeFileSync, appendFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { binDir } from './binaries.ts';
import { PgServer } from './server.ts';
import { serverUser, asServerUser } from './user.ts';

export type Settings = Record<string, string | number | boolean>;

export interface ClusterOptions {
  /** Extra postgresql.conf settings on the primary (the standby inherits them). */
  primaryConf?: Settings;
  /** Extra settings on the standby only. */
  standbyConf?: Settings;
  /** pg_hba.conf lines put before the defaults (first match wins). */
  hba?: string[];
  /** Tablespaces created on the primary before the standby is cloned. */
  tablespaces?: string[];
  /** Name used in temp dir and log paths. */
  name?: string;
}

export interface Cluster {
  version: number;
  base: string;
  primary: PgServer;
  standby: PgServer;
  /** Directory of a tablespace on a side (each side has its own copy). */
  tablespaceDir(name: string, side: 'primary' | 'standby'): string;
  /** Stop servers and remove data; keepLogs leaves base/logs in place. */
  destroy(keepLogs?: boolean): Promise<void>;
}

export interface PrimaryOnly {
  version: number;
  base: string;
  primary: PgServer;
  tablespaceDir(name: string): string;
  destroy(keepLogs?: boolean): Promise<void>;
}

/** A free TCP port on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.unref();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const addr = s.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      s.close(() => resolve(port));
    });
  });
}

function chownToServer(path: string): void {
  const u = serverUser();
  if (u) chownSync(path, u.uid, u.gid);
}

// Creates path and any missing parents, each owned by the server user.
function ownedDir(path: string, mode = 0o700): string {
  const parent = dirname(path);
  if (!existsSync(parent)) ownedDir(parent, 0o755);
  if (!existsSync(path)) mkdirSync(path, { mode });
  chownToServer(path);
  return path;
}

// initdb costs seconds; do it once per version and copy the result.
function template(version: number): string {
  const u = serverUser();
  const dir = join(tmpdir(), `pg-prefaulter-template-${version}-${u?.uid ?? process.getuid?.()}`);
  if (existsSync(join(dir, 'PG_VERSION'))) return dir;
  const scratch = mkdtempSync(join(tmpdir(), `pg-prefaulter-initdb-${version}-`));
  chownToServer(scratch);
  const data = join(scratch, 'data');
  execFileSync(
    join(binDir(version), 'initdb'),
    ['-D', data, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--locale=C', '--no-sync'],
    { stdio: ['ignore', 'ignore', 'pipe'], ...asServerUser(), cwd: scratch },
  );
  try {
    renameSync(data, dir);
  } catch {
    // another test process finished first; use theirs
  }
  rmSync(scratch, { recursive: true, force: true });
  return dir;
}

function copyTree(from: string, to: string): void {
  // cp -a keeps owners and modes (PGDATA must be 0700 and owned by the server user).
  execFileSync('cp', ['-a', from, to]);
}

async function newServer(name: string, version: number, base: string, dataDir: string): Promise<PgServer> {
  const socketDir = ownedDir(join(base, `${name}-sock`), 0o755);
  const port = await freePort();
  return new PgServer({
    name,
    version,
    binDir: binDir(version),
    dataDir,
    socketDir,
    logFile: join(base, 'logs', `${name}.log`),
    port,
  });
}

function baseSettings(server: PgServer): Settings {
  return {
    port: server.port,
    listen_addresses: '127.0.0.1',
    unix_socket_directories: server.socketDir,
    max_wal_senders: 10,
    max_replication_slots: 10,
    wal_level: 'replica',
    hot_standby: 'on',
    wal_keep_size: '256MB',
    fsync: 'off',
    shared_buffers: '32MB',
    max_connections: 30,
    logging_collector: 'off',
    log_line_prefix: '%m [%p] %q%a ',
    wal_sender_timeout: '60s',
    wal_receiver_status_interval: '1s',
  };
}

function prependHba(dataDir: string, lines: string[]): void {
  if (!lines.length) return;
  const path = join(dataDir, 'pg_hba.conf');
  const current = execFileSync('cat', [path], { encoding: 'utf8' });
  writeFileSync(path, `${lines.join('\n')}\n${current}`);
}

async function makePrimary(version: number, opts: ClusterOptions): Promise<{ base: string; primary: PgServer }> {
  const base = mkdtempSync(join(tmpdir(), `pg-prefaulter-${opts.name ?? 'test'}-${version}-`));
  chownToServer(base);
  ownedDir(join(base, 'logs'), 0o755);
  const dataDir = join(base, 'primary');
  copyTree(template(version), dataDir);
  const primary = await newServer('primary', version, base, dataDir);
  primary.configure({ ...baseSettings(primary), ...(opts.primaryConf ?? {}) });
  prependHba(dataDir, opts.hba ?? []);
  try {
    await primary.start();
    for (const ts of opts.tablespaces ?? []) {
      const loc = ownedDir(join(base, 'tablespaces', 'primary', ts));
      await primary.query(`create tablespace ${ts} location '${loc}'`);
    }
  } catch (e) {
    process.stderr.write(`\n${primary.logTail()}\n`);
    await destroy(base, [primary], true);
    throw e;
  }
  return { base, primary };
}

/** A primary alone. */
export async function createPrimary(version: number, opts: ClusterOptions = {}): Promise<PrimaryOnly> {
  const { base, primary } = await makePrimary(version, opts);
  return {
    version,
    base,
    primary,
    tablespaceDir: (name) => join(base, 'tablespaces', 'primary', name),
    destroy: (keepLogs = false) => destroy(base, [primary], keepLogs),
  };
}

/** A primary and a standby streaming from it (no slot, like a pg_basebackup -R clone). */
export async function createCluster(version: number, opts: ClusterOptions = {}): Promise<Cluster> {
  const { base, primary } = await makePrimary(version, opts);
  let standby: PgServer | undefined;
  try {
    await primary.stop('fast'); // a clean shutdown checkpoint makes a consistent copy
    const standbyData = join(base, 'standby');
    copyTree(primary.dataDir, standbyData);
    relinkTablespaces(base, standbyData);
    standby = await newServer('standby', version, base, standbyData);
    for (const f of ['postmaster.pid', 'postmaster.opts']) {
      if (existsSync(join(standbyData, f))) unlinkSync(join(standbyData, f));
    }
    writeFileSync(join(standbyData, 'standby.signal'), '');
    chownToServer(join(standbyData, 'standby.signal'));
    standby.configure({
      ...baseSettings(standby),
      ...(opts.primaryConf ?? {}),
      primary_conninfo: primary.conninfo({ application_name: 'standby' }),
      ...(opts.standbyConf ?? {}),
    });
    await primary.start();
    await standby.start();
    const s = standby;
    return {
      version,
      base,
      primary,
      standby: s,
      tablespaceDir: (name, side) => join(base, 'tablespaces', side, name),
      destroy: (keepLogs = false) => destroy(base, [s, primary], keepLogs),
    };
  } catch (e) {
    process.stderr.write(`\n${primary.logTail()}\n${standby?.logTail() ?? ''}\n`);
    await destroy(base, standby ? [standby, primary] : [primary], true);
    throw e;
  }
}

// The copy's pg_tblspc links point at the primary's directories; give the
// standby its own copies, as pg_basebackup --tablespace-mapping would.
function relinkTablespaces(base: string, dataDir: string): void {
  const dir = join(dataDir, 'pg_tblspc');
  for (const oid of readdirSync(dir)) {
    const link = join(dir, oid);
    const target = readlinkSync(link);
    const name = target.split('/').pop()!;
    const copy = join(base, 'tablespaces', 'standby', name);
    ownedDir(join(base, 'tablespaces', 'standby'), 0o755);
    copyTree(target, copy);
    unlinkSync(link);
    symlinkSync(copy, link);
  }
}

async function destroy(base: string, servers: PgServer[], keepLogs: boolean): Promise<void> {
  for (const s of servers) {
    try {
      await s.stop('immediate', 10_000);
    } catch {
      // keep tearing down
    }
  }
  if (process.env.PG_KEEP === '1') return;
  removeOrphanedDsm();
  for (const entry of readdirSync(base)) {
    if (keepLogs && entry === 'logs') continue;
    rmSync(join(base, entry), { recursive: true, force: true });
  }
  if (!keepLogs) rmSync(base, { recursive: true, force: true });
}

/**
 * PostgreSQL's dynamic shared memory segments (/dev/shm/PostgreSQL.*) of
 * servers killed with SIGKILL and never started again: nothing removes them
 * (a restart of the same data directory would). Removed only while no
 * postgres process runs on the machine: then none of them has an owner.
 */
function removeOrphanedDsm(shmDir = '/dev/shm'): void {
  let names: string[];
  try {
    names = readdirSync(shmDir).filter((n) => n.startsWith('PostgreSQL.'));
  } catch {
    return;
  }
  if (names.length === 0 || postgresRunning()) return;
  for (const n of names) {
    try {
      unlinkSync(join(shmDir, n));
    } catch {
      // another user's (not root), or gone meanwhile
    }
  }
}

/** A live (not zombie) PostgreSQL process runs on this machine. */
export function postgresRunning(): boolean {
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      // Every PostgreSQL process keeps "postgres" as its command name, whatever its title. A zombie
      // (a killed server's child its new parent has not reaped yet) maps nothing any more.
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      if (/^\d+ \(postgres\) [^Z]/.test(stat)) return true;
    } catch {
      // gone
    }
  }
  return false;
}

/**
 * Run fn with a fresh cluster and always tear it down. On failure the server
 * logs are kept and their tails printed, so CI output shows what happened.
 */
export async function withCluster<T>(version: number, opts: ClusterOptions, fn: (c: Cluster) => Promise<T>): Promise<T> {
  return using(await createCluster(version, opts), [(c) => c.primary, (c) => c.standby], fn);
}

/** Same as withCluster for a lone primary. */
export async function withPrimary<T>(version: number, opts: ClusterOptions, fn: (c: PrimaryOnly) => Promise<T>): Promise<T> {
  return using(await createPrimary(version, opts), [(c) => c.primary], fn);
}

async function using<C extends { base: string; destroy(keepLogs?: boolean): Promise<void> }, T>(
  c: C,
  servers: ((c: C) => PgServer)[],
  fn: (c: C) => Promise<T>,
): Promise<T> {
  let failed = false;
  try {
    return await fn(c);
  } catch (e) {
    failed = true;
    process.stderr.write(`\n${servers.map((s) => s(c).logTail()).join('\n')}\nlogs kept in ${join(c.base, 'logs')}\n`);
    throw e;
  } finally {
    await c.destroy(failed);
  }
}
/** Append lines to a server's pg_hba.conf at the end (used after creation; reload to apply). */
export function appendHba(server: PgServer, lines: string[]): void {
  appendFileSync(join(server.dataDir, 'pg_hba.conf'), `\n${lines.join('\n')}\n`);
}
