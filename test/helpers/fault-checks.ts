// Checks shared by the fault suites: what an operator would look at on a
// node after a fault (the agent's open files, its liveness, its logs).
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import type { PgServer } from '../harness/index.ts';
import type { AgentProcess } from './agent-process.ts';

export function agentArgs(server: PgServer, extra: string[] = []): string[] {
  return ['-D', server.dataDir, '-H', server.socketDir, '-p', String(server.port), '-U', 'postgres', '--log-level', 'info',
    '--reconnect-min', '200ms', '--reconnect-max', '1s', ...extra];
}

export function lsn(text: string | null | undefined): bigint {
  if (!text) return 0n;
  const [hi, lo] = text.split('/');
  return (BigInt(`0x${hi}`) << 32n) | BigInt(`0x${lo}`);
}

export interface OpenFile {
  path: string;
  flags: number;
}

export function openFiles(agent: AgentProcess, dir: string): OpenFile[] {
  const pid = agent.proc.pid;
  const out: OpenFile[] = [];
  let fds: string[] = [];
  try {
    fds = readdirSync(`/proc/${pid}/fd`);
  } catch {
    return out;
  }
  for (const fd of fds) {
    try {
      const path = readlinkSync(`/proc/${pid}/fd/${fd}`);
      if (!path.startsWith(dir + '/')) continue;
      const m = /^flags:\s+([0-7]+)/m.exec(readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8'));
      out.push({ path, flags: m ? parseInt(m[1]!, 8) : -1 });
    } catch {
      // closed meanwhile
    }
  }
  return out;
}

/** Every handle under PGDATA is read-only, open once, not a WAL segment, not a deleted file. */
export function assertHandlesClean(agent: AgentProcess, pgdata: string, what: string): OpenFile[] {
  const files = openFiles(agent, pgdata);
  for (const f of files) assert.equal(f.flags & 3, 0, `${what}: ${f.path} is open for writing (flags ${f.flags.toString(8)})`);
  const paths = files.map((f) => f.path);
  assert.equal(new Set(paths).size, paths.length, `${what}: a file is open more than once (leaked handle): ${paths.join(', ')}`);
  assert.deepEqual(paths.filter((p) => p.includes('/pg_wal/')), [], `${what}: a WAL segment is held open`);
  assert.deepEqual(paths.filter((p) => p.endsWith(' (deleted)')), [], `${what}: a dropped relation's file is held open (its space is not freed)`);
  return files;
}

/**
 * The handle cache's own count agrees with the kernel's (pg_prefaulter once
 * panicked on a cache counter mismatch), and the agent has no child process
 * (pg_prefaulter's children held WAL files open).
 */
export async function assertCacheConsistent(agent: AgentProcess, pgdata: string, what: string): Promise<void> {
  // Opens and closes in flight make the two counts differ for a moment; a
  // leak (or a forgotten handle) makes them differ for good.
  let counted = -1;
  let open = -2;
  for (let i = 0; i < 40 && counted !== open; i++) {
    if (i) await new Promise((r) => setTimeout(r, 50));
    counted = (await agent.status()).prefault?.fileHandle.open ?? 0;
    open = openFiles(agent, pgdata).length;
  }
  assert.equal(counted, open, `${what}: the handle cache counts ${counted}, the kernel ${open}`);
  // Running from source, tsx may start an esbuild service process to compile a module; the built image has none.
  const children = readdirSync('/proc').filter((d) => /^\d+$/.test(d)).flatMap((d) => {
    try {
      if (readFileSync(`/proc/${d}/stat`, 'utf8').replace(/^.*\) /, '').split(' ')[1] !== String(agent.proc.pid)) return [];
      const cmd = readFileSync(`/proc/${d}/cmdline`, 'utf8').replace(/\0/g, ' ').trim();
      return /esbuild/.test(cmd) ? [] : [`${d}: ${cmd}`];
    } catch {
      return [];
    }
  });
  assert.deepEqual(children, [], `${what}: the agent has child processes`);
}

export function assertAlive(agent: AgentProcess, what: string): void {
  assert.equal(agent.proc.exitCode, null, `${what}: the agent exited\n${agent.output().slice(-3000)}`);
}

export function warnLines(output: string): string[] {
  return output.split('\n').filter((l) => {
    try {
      return (JSON.parse(l) as { level?: number }).level! >= 40;
    } catch {
      return false;
    }
  });
}

export async function finish(agent: AgentProcess): Promise<void> {
  const { code, ms } = await agent.stop('SIGTERM');
  assert.equal(code, 0, agent.output().slice(-2000));
  assert.ok(ms < 2000, `SIGTERM took ${ms} ms`);
}

/** Polls until the agent holds nothing under dir (or timeoutMs passes); returns what is still open and how long it took. */
export async function waitNoHandles(agent: AgentProcess, dir: string, timeoutMs: number): Promise<{ open: OpenFile[]; ms: number }> {
  const t0 = Date.now();
  let open = openFiles(agent, dir);
  while (open.length && Date.now() - t0 < timeoutMs) {
    await new Promise((r) => setTimeout(r, 50));
    open = openFiles(agent, dir);
  }
  return { open, ms: Date.now() - t0 };
}

/** What the recovery poll reads under PGDATA, opened and closed at once (src/agent/recovery.ts, follower/control-file.ts). */
export const POLL_READS = ['global/pg_control', 'PG_VERSION', 'postmaster.pid'];
/** Timeline history files, which the poll reads too (follower/timeline-history.ts): after a promotion there is one. */
const HISTORY_READ = /^pg_wal\/[0-9A-F]{8}\.history$/;

/**
 * Nothing held under pgdata: at this instant no file is open but the recovery
 * poll's brief reads, and those are closed again within 2 s.
 */
export async function assertNothingHeld(agent: AgentProcess, pgdata: string, what: string): Promise<void> {
  const seen = openFiles(agent, pgdata).map((f) => f.path.slice(pgdata.length + 1));
  assert.deepEqual(seen.filter((p) => !POLL_READS.includes(p) && !HISTORY_READ.test(p)), [], `${what}: files open under PGDATA`);
  const { open } = await waitNoHandles(agent, pgdata, 2000);
  assert.deepEqual(open, [], `${what}: files still open 2 s later`);
}
