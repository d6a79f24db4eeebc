// A real Patroni cluster on loopback for the integration suite: one etcd and
// N Patroni nodes (Debian's patroni and etcd-server packages) managing
// Debian's PostgreSQL server (its bin_dir has pg_basebackup and pg_rewind,
// which Patroni needs and the npm server packages lack). Patroni and
// PostgreSQL run as the unprivileged server user when we are root. Every
// process started here is killed, and the temp dir removed, by destroy() and
// also on process exit, so a failing test leaves nothing behind.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import postgres from 'postgres';
import { freePort, sleep } from '../harness/index.ts';
import { asServerUser, serverUser } from '../../src/embedded/user.ts';

export const SCOPE = 'pgpf';
export const SUPERUSER_PASSWORD = 'super-secret-pw';
export const REPLICATION_USER = 'replicator';
export const REPLICATION_PASSWORD = 'repl-secret-pw';

/** Debian's PostgreSQL server bin dirs, newest first (those with pg_basebackup). */
function debianBinDirs(): string[] {
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return [];
  return readdirSync(root)
    .filter((v) => /^\d+$/.test(v) && existsSync(join(root, v, 'bin', 'pg_basebackup')) && existsSync(join(root, v, 'bin', 'postgres')))
    .sort((a, b) => Number(b) - Number(a))
    .map((v) => join(root, v, 'bin'));
}

function onPath(cmd: string): boolean {
  return (process.env.PATH ?? '').split(':').some((d) => d && existsSync(join(d, cmd)));
}

/** Why a Patroni cluster cannot run here (the Debian package to install), or null when it can. */
export function patroniMissing(): string | null {
  const missing: string[] = [];
  if (!onPath('patroni') || !onPath('patronictl')) missing.push('patroni');
  if (!onPath('etcd')) missing.push('etcd-server');
  if (!debianBinDirs().length) missing.push('postgresql-15 (or the PostgreSQL server package of this Debian release)');
  if (process.platform !== 'linux') return 'Linux only';
  return missing.length ? `missing Debian package(s): ${missing.join(', ')} (apt-get install -y ${missing.map((m) => m.split(' ')[0]).join(' ')})` : null;
}

export function pgBinDir(): string {
  const dir = debianBinDirs()[0];
  if (!dir) throw new Error('no Debian PostgreSQL server install under /usr/lib/postgresql: apt-get install -y postgresql-15');
  return dir;
}

export function pgMajor(): number {
  return Number(/postgresql\/(\d+)\//.exec(pgBinDir() + '/')![1]);
}

// Every pid started here (or handed to track()), every data directory whose
// postmaster Patroni detached (setsid) and every temp dir: killed and removed
// when this process exits, also on a signal, so a failed or interrupted run
// leaves nothing behind.
const tracked = new Set<number>();
const dataDirs = new Set<string>();
const baseDirs = new Set<string>();

/** Kills proc too if it is still running when this process exits (e.g. an agent started next to a node). */
export function track(proc: ChildProcess): void {
  if (!proc.pid || proc.exitCode !== null) return;
  tracked.add(proc.pid);
  proc.once('exit', () => tracked.delete(proc.pid!));
}

/** The pid in dataDir's postmaster.pid if that process is a postmaster of this very directory (pids get reused). */
function postmasterOf(dataDir: string): number | null {
  try {
    const pid = Number(readFileSync(join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
    if (!(pid > 0)) return null;
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(dataDir) ? pid : null;
  } catch {
    return null;
  }
}

function killEverything(): void {
  for (const dir of dataDirs) {
    const pm = postmasterOf(dir);
    if (pm) tracked.add(pm);
  }
  for (const pid of tracked) {
    try {
      if (pid > 0) process.kill(pid, 'SIGKILL');
    } catch {
      // gone already
    }
  }
  for (const dir of baseDirs) rmSync(dir, { recursive: true, force: true });
}
process.once('exit', killEverything);
for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143], ['SIGHUP', 129]] as const) {
  process.once(signal, () => {
    killEverything();
    process.exit(code);
  });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function waitGone(pids: number[], ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (pids.some(alive)) {
    if (Date.now() > deadline) return false;
    await sleep(50);
  }
  return true;
}

function ownedDir(path: string, mode = 0o700): string {
  mkdirSync(path, { recursive: true, mode });
  const u = serverUser();
  if (u) chownSync(path, u.uid, u.gid);
  return path;
}

interface Logged {
  proc: ChildProcess;
  log: () => string;
}

function launch(cmd: string, args: string[], asServer: boolean, env: Record<string, string> = {}): Logged {
  const proc = spawn(cmd, args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
    cwd: '/',
    ...(asServer ? asServerUser() : {}),
  });
  tracked.add(proc.pid!);
  proc.once('exit', () => tracked.delete(proc.pid!));
  let out = '';
  const keep = (d: Buffer) => {
    out += d;
    if (out.length > 400_000) out = out.slice(-200_000);
  };
  proc.stdout!.on('data', keep);
  proc.stderr!.on('data', keep);
  return { proc, log: () => out };
}

export interface ClusterMember {
  name: string;
  role: string; // leader | replica | sync_standby
  state: string; // running | streaming | stopped | ...
  timeline?: number;
  host: string;
  port: number;
}

export class PatroniNode {
  proc: ChildProcess | null = null;
  private logFn: () => string = () => '';
  private earlier = '';
  readonly dataDir: string;
  readonly socketDir: string;
  readonly config: string;
  readonly pgpass: string;

  constructor(
    readonly name: string,
    readonly dir: string,
    readonly pgPort: number,
    readonly apiPort: number,
  ) {
    this.dataDir = join(dir, 'data');
    this.socketDir = join(dir, 'sock');
    this.config = join(dir, 'patroni.yml');
    this.pgpass = join(dir, 'pgpass');
  }

  get api(): string {
    return `http://127.0.0.1:${this.apiPort}`;
  }

  /** host:port as the agent reports an upstream. */
  get address(): string {
    return `127.0.0.1:${this.pgPort}`;
  }

  start(): void {
    const l = launch('patroni', [this.config], true, { HOME: this.dir, PYTHONUNBUFFERED: '1' });
    this.proc = l.proc;
    this.logFn = l.log;
  }

  log(): string {
    return this.earlier + this.logFn();
  }

  /** The postmaster's pid from postmaster.pid, or null when PostgreSQL is down. */
  postmasterPid(): number | null {
    return postmasterOf(this.dataDir);
  }

  /** Stops Patroni (which stops PostgreSQL); kills what is left after timeoutMs. */
  async stop(timeoutMs = 15_000): Promise<void> {
    const pm = this.postmasterPid();
    if (pm) tracked.add(pm);
    const pids = [this.proc?.pid, pm].filter((p): p is number => !!p && alive(p));
    if (this.proc && this.proc.exitCode === null) this.proc.kill('SIGTERM');
    if (!(await waitGone(pids, timeoutMs))) {
      for (const p of pids) {
        try {
          process.kill(p, 'SIGKILL');
        } catch {
          // gone
        }
      }
      await waitGone(pids, 5000);
    }
    if (pm) tracked.delete(pm);
    this.earlier += this.logFn();
    this.logFn = () => '';
  }

  async sql<T = Record<string, any>>(query: string, timeoutMs = 10_000): Promise<T[]> {
    const db = postgres({
      host: this.socketDir,
      port: this.pgPort,
      user: 'postgres',
      password: SUPERUSER_PASSWORD,
      database: 'postgres',
      max: 1,
      onnotice: () => {},
      connect_timeout: Math.ceil(timeoutMs / 1000),
    });
    try {
      const timer = sleep(timeoutMs).then(() => {
        throw new Error(`query on ${this.name} did not answer within ${timeoutMs} ms: ${query}`);
      });
      return (await Promise.race([db.unsafe(query), timer])) as unknown as T[];
    } finally {
      await db.end({ timeout: 1 });
    }
  }
}

function nodeConfig(node: PatroniNode, etcdPort: number, binDir: string): string {
  // JSON is YAML: no YAML writer needed.
  const cfg = {
    scope: SCOPE,
    name: node.name,
    log: { level: 'INFO' },
    restapi: { listen: `127.0.0.1:${node.apiPort}`, connect_address: `127.0.0.1:${node.apiPort}` },
    etcd3: { hosts: [`127.0.0.1:${etcdPort}`] },
    bootstrap: {
      dcs: {
        ttl: 10,
        loop_wait: 1,
        retry_timeout: 5,
        maximum_lag_on_failover: 1 << 30,
        // A crashed primary fails over instead of being restarted in place.
        primary_start_timeout: 0,
        postgresql: {
          use_pg_rewind: true,
          use_slots: true,
          parameters: {
            wal_level: 'replica',
            hot_standby: 'on',
            wal_log_hints: 'on',
            // One walsender per replica for Patroni's streaming and one for its agent.
            max_wal_senders: 10,
            max_replication_slots: 10,
            wal_keep_size: '128MB',
            // The agent prefaults; PostgreSQL's own prefetcher would do the same work twice.
            recovery_prefetch: 'off',
            shared_buffers: '32MB',
            max_connections: 40,
            fsync: 'off',
          },
        },
      },
      initdb: [{ encoding: 'UTF8' }, { 'auth-local': 'trust' }],
    },
    postgresql: {
      listen: `127.0.0.1:${node.pgPort}`,
      connect_address: `127.0.0.1:${node.pgPort}`,
      data_dir: node.dataDir,
      bin_dir: binDir,
      pgpass: node.pgpass,
      // Without it pg_basebackup waits for a spread checkpoint: minutes after a write load.
      basebackup: [{ checkpoint: 'fast' }],
      authentication: {
        superuser: { username: 'postgres', password: SUPERUSER_PASSWORD },
        replication: { username: REPLICATION_USER, password: REPLICATION_PASSWORD },
      },
      parameters: { unix_socket_directories: node.socketDir, password_encryption: 'scram-sha-256' },
      // The local socket needs the password too: the agent gets it from
      // PGPASSWORD (the #16 setup) and must not send it upstream.
      pg_hba: [
        'local all all scram-sha-256',
        `host replication ${REPLICATION_USER} 127.0.0.1/32 scram-sha-256`,
        'host all all 127.0.0.1/32 scram-sha-256',
      ],
    },
    tags: { nofailover: false, noloadbalance: false, clonefrom: false, nosync: false },
  };
  return JSON.stringify(cfg, null, 2) + '\n';
}

export class PatroniCluster {
  private etcd: Logged | null = null;
  readonly nodes: PatroniNode[] = [];
  readonly binDir = pgBinDir();

  private constructor(
    readonly base: string,
    readonly etcdPort: number,
  ) {}

  static async start(size = 3, timeoutMs = 120_000): Promise<PatroniCluster> {
    const base = mkdtempSync(join(tmpdir(), 'pg-prefaulter-patroni-'));
    ownedDir(base, 0o755);
    baseDirs.add(base);
    const c = new PatroniCluster(base, await freePort());
    try {
      await c.startEtcd();
      for (let i = 1; i <= size; i++) {
        const dir = ownedDir(join(base, `node${i}`));
        const node = new PatroniNode(`node${i}`, dir, await freePort(), await freePort());
        ownedDir(node.socketDir);
        dataDirs.add(node.dataDir);
        writeFileSync(node.config, nodeConfig(node, c.etcdPort, c.binDir), { mode: 0o600 });
        const u = serverUser();
        if (u) chownSync(node.config, u.uid, u.gid);
        c.nodes.push(node);
      }
      // The first node bootstraps alone, then the others clone from it.
      c.nodes[0]!.start();
      await c.waitFor(async (m) => m.some((x) => x.name === 'node1' && x.role === 'leader' && x.state === 'running'), 'node1 to bootstrap as leader', timeoutMs);
      for (const n of c.nodes.slice(1)) n.start();
      await c.waitHealthy(timeoutMs);
      return c;
    } catch (e) {
      process.stderr.write(c.logs());
      await c.destroy();
      throw e;
    }
  }

  private async startEtcd(): Promise<void> {
    const peer = await freePort();
    const dir = join(this.base, 'etcd');
    this.etcd = launch('etcd', [
      '--name', 'etcd0',
      '--data-dir', dir,
      '--listen-client-urls', `http://127.0.0.1:${this.etcdPort}`,
      '--advertise-client-urls', `http://127.0.0.1:${this.etcdPort}`,
      '--listen-peer-urls', `http://127.0.0.1:${peer}`,
      '--initial-advertise-peer-urls', `http://127.0.0.1:${peer}`,
      '--initial-cluster', `etcd0=http://127.0.0.1:${peer}`,
      '--log-level', 'warn',
    ], false);
    const deadline = Date.now() + 20_000;
    for (;;) {
      try {
        const res = await fetch(`http://127.0.0.1:${this.etcdPort}/health`, { signal: AbortSignal.timeout(1000) });
        if (res.ok && ((await res.json()) as { health?: string }).health === 'true') return;
      } catch {
        // not up yet
      }
      if (this.etcd.proc.exitCode !== null || Date.now() > deadline) throw new Error(`etcd did not come up on port ${this.etcdPort}:\n${this.etcd.log().slice(-3000)}`);
      await sleep(100);
    }
  }

  node(name: string): PatroniNode {
    const n = this.nodes.find((x) => x.name === name);
    if (!n) throw new Error(`no node ${name}`);
    return n;
  }

  /** Members as Patroni's REST API reports them (asked of any node that answers). */
  async members(): Promise<ClusterMember[]> {
    let lastError: unknown;
    for (const n of this.nodes) {
      try {
        const res = await fetch(`${n.api}/cluster`, { signal: AbortSignal.timeout(2000) });
        if (!res.ok) throw new Error(`HTTP ${res.status}`);
        return ((await res.json()) as { members: ClusterMember[] }).members;
      } catch (e) {
        lastError = e;
      }
    }
    throw new Error(`no Patroni REST API answers: ${String(lastError)}`);
  }

  async waitFor(pred: (m: ClusterMember[]) => Promise<boolean> | boolean, what: string, timeoutMs = 60_000): Promise<ClusterMember[]> {
    const deadline = Date.now() + timeoutMs;
    let last: ClusterMember[] | string = 'nothing yet';
    for (;;) {
      try {
        const m = await this.members();
        last = m;
        if (await pred(m)) return m;
      } catch (e) {
        last = String(e);
      }
      if (Date.now() > deadline) throw new Error(`timed out (${timeoutMs} ms) waiting for ${what}; members: ${JSON.stringify(last)}`);
      await sleep(200);
    }
  }

  /** One leader running, every other node a replica streaming, all on the leader's timeline. */
  waitHealthy(timeoutMs = 60_000, what = 'a leader and streaming replicas'): Promise<ClusterMember[]> {
    // Patroni 3.0 reports a replica as "running" (later versions "streaming"):
    // the leader's pg_stat_replication says whether each one streams.
    return this.waitFor(async (m) => {
      const leader = m.find((x) => x.role === 'leader' && x.state === 'running');
      const replicas = m.filter((x) => x.role !== 'leader');
      if (!leader || m.length !== this.nodes.length) return false;
      if (!replicas.every((x) => ['running', 'streaming'].includes(x.state) && x.timeline === leader.timeline)) return false;
      const rows = await this.node(leader.name).sql<{ application_name: string }>("select application_name from pg_stat_replication where state = 'streaming'");
      return replicas.every((r) => rows.some((x) => x.application_name === r.name));
    }, what, timeoutMs);
  }

  async leader(): Promise<{ node: PatroniNode; timeline: number }> {
    const m = await this.members();
    const l = m.find((x) => x.role === 'leader');
    if (!l) throw new Error(`no leader: ${JSON.stringify(m)}`);
    return { node: this.node(l.name), timeline: l.timeline ?? 0 };
  }

  /** patronictl against this cluster; rejects with its output when it fails. */
  patronictl(args: string[], timeoutMs = 90_000): Promise<string> {
    return new Promise((resolve, reject) => {
      execFile('patronictl', ['-c', this.nodes[0]!.config, ...args], { timeout: timeoutMs, env: { ...process.env, HOME: this.base } }, (err, stdout, stderr) => {
        if (err) reject(new Error(`patronictl ${args.join(' ')} failed: ${err.message}\n${stdout}\n${stderr}`));
        else resolve(stdout + stderr);
      });
    });
  }

  /** PATCH of the dynamic configuration in the DCS (as `patronictl edit-config` does). */
  async patchConfig(patch: Record<string, unknown>): Promise<void> {
    const leader = (await this.leader()).node;
    const res = await fetch(`${leader.api}/config`, { method: 'PATCH', body: JSON.stringify(patch), signal: AbortSignal.timeout(5000) });
    if (!res.ok) throw new Error(`PATCH /config ${JSON.stringify(patch)}: HTTP ${res.status} ${await res.text()}`);
  }

  logs(): string {
    return [
      ...this.nodes.map((n) => `\n--- patroni ${n.name} ---\n${n.log().slice(-6000)}`),
      `\n--- etcd ---\n${this.etcd?.log().slice(-2000) ?? ''}\n`,
    ].join('');
  }

  async destroy(): Promise<void> {
    await Promise.all(this.nodes.map((n) => n.stop()));
    if (this.etcd && this.etcd.proc.exitCode === null) {
      const pid = this.etcd.proc.pid!;
      this.etcd.proc.kill('SIGTERM');
      if (!(await waitGone([pid], 5000))) {
        this.etcd.proc.kill('SIGKILL');
        await waitGone([pid], 5000);
      }
    }
    for (const n of this.nodes) dataDirs.delete(n.dataDir);
    rmSync(this.base, { recursive: true, force: true });
    baseDirs.delete(this.base);
  }
}
