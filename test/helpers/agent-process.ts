// Runs the real CLI (`pg-prefaulter run`) as a child process and talks to it
// over its HTTP endpoint, as an operator would.
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readlinkSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, sleep } from '../harness/index.ts';

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const BIN = join(REPO, 'bin', 'pg-prefaulter.js');

export interface AgentProcess {
  proc: ChildProcess;
  url: string;
  output(): string;
  /**
   * Resolves once the output (or what `pick` keeps of it) matches: pino writes
   * stdout asynchronously, so a state seen over HTTP can come before its log
   * line. Rejects with the output's tail after timeoutMs.
   */
  logged(re: RegExp, what?: string, opts?: { timeoutMs?: number; pick?: (out: string) => string }): Promise<void>;
  status(): Promise<Record<string, any>>;
  scrape(): Promise<string>;
  waitFor(pred: (s: Record<string, any>) => boolean, what: string, timeoutMs?: number): Promise<Record<string, any>>;
  /** Open fds of the agent that point under dir. */
  fdsUnder(dir: string): string[];
  /** SIGTERM; resolves with exit code and how long the exit took. */
  stop(signal?: NodeJS.Signals): Promise<{ code: number | null; ms: number }>;
  exited: Promise<number | null>;
}

/**
 * runAs: uid/gid to run the agent as (root only), e.g. the OS user of the node it sits next to.
 * cgroupProcs: a cgroup's cgroup.procs file the agent joins before it starts (memory-limit tests).
 * wrap: a command the agent runs under (e.g. unshare into another PID namespace); then proc is the wrapper.
 */
export async function startAgent(
  args: string[],
  env: Record<string, string> = {},
  { cgroupProcs, wrap = [], ...runAs }: { uid?: number; gid?: number; cgroupProcs?: string; wrap?: string[] } = {},
): Promise<AgentProcess> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const argv = [process.execPath, BIN, 'run', '--metrics-listen', `127.0.0.1:${port}`, ...args];
  // sh writes its own pid into the cgroup, then becomes node (same pid).
  const wrapped = cgroupProcs === undefined ? [...wrap, ...argv] : ['sh', '-c', 'echo $$ > "$0" && exec "$@"', cgroupProcs, ...wrap, ...argv];
  const proc = spawn(wrapped[0]!, wrapped.slice(1), {
    // With the pool size given, the bin runs the agent in this very process
    // (pid, fds); without it, it relaunches itself (see bin/pg-prefaulter.js).
    env: { ...process.env, UV_THREADPOOL_SIZE: '64', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    cwd: '/',
    ...runAs,
  });
  let out = '';
  proc.stdout!.on('data', (d) => (out += d));
  proc.stderr!.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
  const get = async (path: string) => {
    const res = await fetch(url + path, { signal: AbortSignal.timeout(5000) });
    if (!res.ok) throw new Error(`${path}: HTTP ${res.status}`);
    return res;
  };
  const agent: AgentProcess = {
    proc,
    url,
    exited,
    output: () => out,
    async logged(re, what = `a log line matching ${re}`, { timeoutMs = 5000, pick = (o: string) => o } = {}) {
      const deadline = Date.now() + timeoutMs;
      while (!re.test(pick(out))) {
        if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}\n${out.slice(-4000)}`);
        await sleep(20);
      }
    },
    status: async () => (await get('/status')).json() as Promise<Record<string, any>>,
    scrape: async () => (await get('/metrics')).text(),
    async waitFor(pred, what, timeoutMs = 30_000) {
      const deadline = Date.now() + timeoutMs;
      let last: Record<string, any> | null = null;
      for (;;) {
        if (proc.exitCode !== null) throw new Error(`agent exited (${proc.exitCode}) while waiting for ${what}\n${out.slice(-4000)}`);
        try {
          last = await agent.status();
          if (pred(last)) return last;
        } catch {
          // not listening yet
        }
        if (Date.now() > deadline) {
          throw new Error(`timed out waiting for ${what}; last status ${JSON.stringify(last)}\n${out.slice(-4000)}`);
        }
        await sleep(100);
      }
    },
    fdsUnder(dir) {
      const found: string[] = [];
      const fdDir = `/proc/${proc.pid}/fd`;
      let names: string[] = [];
      try {
        names = readdirSync(fdDir);
      } catch {
        return found;
      }
      for (const fd of names) {
        try {
          const target = readlinkSync(join(fdDir, fd));
          if (target.startsWith(dir)) found.push(target);
        } catch {
          // closed meanwhile
        }
      }
      return found;
    },
    async stop(signal = 'SIGTERM') {
      if (proc.exitCode !== null) return { code: proc.exitCode, ms: 0 };
      const t0 = Date.now();
      proc.kill(signal);
      const code = await exited;
      return { code, ms: Date.now() - t0 };
    },
  };
  return agent;
}

/** Value of a metric sample line (first match of name{labels}), or undefined. */
export function metricValue(text: string, name: string, labels?: Record<string, string>): number | undefined {
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const rest = line.slice(name.length);
    if (rest[0] !== ' ' && rest[0] !== '{') continue;
    if (labels) {
      const ok = Object.entries(labels).every(([k, v]) => rest.includes(`${k}="${v}"`));
      if (!ok) continue;
    }
    return Number(line.trim().split(/\s+/).pop());
  }
  return undefined;
}
