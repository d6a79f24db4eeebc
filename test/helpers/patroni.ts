// A real Patroni cluster on loopback for the integration suite: one etcd and
// N Patroni nodes managing Debian's PostgreSQL, run as the unprivileged server
// user when we are root. destroy() stops everything and removes the temp dir;
// test/helpers/reaper.ts does the same at exit if a test fails or is cut short.
import { execFile, type ChildProcess } from 'node:child_process';
import { chownSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import postgres from 'postgres';
import { freePort, sleep } from '../harness/index.ts';
import { serverUser } from '../../src/embedded/user.ts';
import { baseDirs, dataDirs, forgetPid, launch, ownedDir, postmasterOf, trackPid, waitGone, alive, type Logged } from './reaper.ts';
import { nodeConfig, pgBinDir, SUPERUSER_PASSWORD } from './patroni-setup.ts';

export { patroniMissing, pgMajor, REPLICATION_PASSWORD, REPLICATION_USER, SCOPE, SUPERUSER_PASSWORD } from './patroni-setup.ts';
export { track } from './reaper.ts';

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
    if (pm) trackPid(pm);
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
    if (pm) forgetPid(pm);
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
