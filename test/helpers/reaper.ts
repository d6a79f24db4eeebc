// Processes and temp dirs of the Patroni suite, reaped whatever happens: every
// pid started through launch() (or handed to track()), every data directory
// whose postmaster Patroni detached (setsid) and every temp dir are killed and
// removed when this process exits, also on a signal, so a failed or
// interrupted run leaves nothing behind (CI runs as root).
import { spawn, type ChildProcess } from 'node:child_process';
import { chownSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { sleep } from '../harness/index.ts';
import { asServerUser, serverUser } from '../../src/embedded/user.ts';

const tracked = new Set<number>();
/** Data directories whose postmaster to kill at exit. */
export const dataDirs = new Set<string>();
/** Temp dirs to remove at exit. */
export const baseDirs = new Set<string>();

/** Kills proc too if it is still running when this process exits (e.g. an agent started next to a node). */
export function track(proc: ChildProcess): void {
  if (!proc.pid || proc.exitCode !== null) return;
  tracked.add(proc.pid);
  proc.once('exit', () => tracked.delete(proc.pid!));
}

/** The pid in dataDir's postmaster.pid if that process is a postmaster of this very directory (pids get reused). */
export function postmasterOf(dataDir: string): number | null {
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

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export async function waitGone(pids: number[], ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (pids.some(alive)) {
    if (Date.now() > deadline) return false;
    await sleep(50);
  }
  return true;
}

export function ownedDir(path: string, mode = 0o700): string {
  mkdirSync(path, { recursive: true, mode });
  const u = serverUser();
  if (u) chownSync(path, u.uid, u.gid);
  return path;
}

export interface Logged {
  proc: ChildProcess;
  log: () => string;
}

export function launch(cmd: string, args: string[], asServer: boolean, env: Record<string, string> = {}): Logged {
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


/** Kills pid at exit unless forget() is called first. */
export function trackPid(pid: number): void {
  tracked.add(pid);
}

export function forgetPid(pid: number): void {
  tracked.delete(pid);
}
