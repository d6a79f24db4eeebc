// The sidecar under test: `pg-prefaulter run` as a child process, with its
// CPU time, peak RSS and /metrics sampled from outside.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { PgServer } from '../test/harness/index.ts';

const NOT_AVAILABLE = 'not available in this build yet';

// A benchmark that dies must not leave agents behind.
const liveAgents = new Set<ChildProcess>();
process.on('exit', () => {
  for (const p of liveAgents) p.kill('SIGKILL');
});

/** Whether this checkout's `pg-prefaulter run` exists (it is a placeholder until the agent lands). */
export function agentAvailable(repoRoot: string): { ok: boolean; why: string } {
  const r = spawnSync(process.execPath, [join(repoRoot, 'bin', 'pg-prefaulter.js'), 'run', '--help'], { encoding: 'utf8', timeout: 60_000 });
  const text = `${r.stdout ?? ''}${r.stderr ?? ''}`;
  if (text.includes(NOT_AVAILABLE)) return { ok: false, why: '`pg-prefaulter run` is a placeholder in this build' };
  if (r.status !== 0) return { ok: false, why: `\`pg-prefaulter run --help\` exited with ${r.status}: ${text.trim().slice(0, 300)}` };
  return { ok: true, why: '' };
}

export interface ProcSample {
  /** utime + stime of all threads, seconds. */
  cpuSeconds: number;
  /** utime alone (every thread: ours and V8's), without the kernel's work in our system calls (a hinted page's read starts there). */
  userSeconds: number;
  /** Peak resident set (VmHWM), bytes. */
  peakRssBytes: number;
}

const CLOCK_TICKS = 100; // USER_HZ on Linux

function sampleOne(pid: number): ProcSample & { threads: number } | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after "(comm)": state is field 3, utime 14, stime 15 (1-based).
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const cpuSeconds = (Number(rest[11]) + Number(rest[12])) / CLOCK_TICKS;
    const userSeconds = Number(rest[11]) / CLOCK_TICKS;
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const hwm = /VmHWM:\s+(\d+) kB/.exec(status);
    const threads = /Threads:\s+(\d+)/.exec(status);
    return { cpuSeconds, userSeconds, peakRssBytes: hwm ? Number(hwm[1]) * 1024 : 0, threads: threads ? Number(threads[1]) : 0 };
  } catch {
    return null;
  }
}

/** The pid and its descendants (the agent may relaunch itself as a child, e.g. to size libuv's threadpool). */
export function processTree(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const list = children.get(ppid) ?? [];
      list.push(Number(name));
      children.set(ppid, list);
    } catch {
      // exited meanwhile
    }
  }
  const out: number[] = [];
  const stack = [pid];
  while (stack.length) {
    const p = stack.pop()!;
    out.push(p);
    stack.push(...(children.get(p) ?? []));
  }
  return out;
}

/** CPU seconds per thread name (comm) over the tree, split user/system: where the agent's CPU goes. */
/** CPU seconds per thread group since `since` (a threadCpu() taken earlier); groups that started later count from 0. */
export function threadCpuSince(pid: number, since: Record<string, number> | undefined): Record<string, number> {
  const now = threadCpu(pid);
  if (!since) return now;
  const out: Record<string, number> = {};
  for (const [name, c] of Object.entries(now)) out[name] = c - (since[name] ?? 0);
  return out;
}

/**
 * CPU seconds per thread group of the agent's tree, from each thread's
 * schedstat (nanoseconds; /proc/.../stat counts 10 ms ticks, which rounds a
 * pool of 64 short-lived workers to nothing). "main" is the event loop; node
 * 20 leaves libuv's pool threads, and threads a preloaded library starts
 * (slowio's WILLNEED pool), named "node": "pool".
 */
export function threadCpu(pid: number): Record<string, number> {
  const out: Record<string, number> = {};
  for (const p of processTree(pid)) {
    let tids: string[];
    try {
      tids = readdirSync(`/proc/${p}/task`);
    } catch {
      continue;
    }
    for (const tid of tids) {
      try {
        const comm = readFileSync(`/proc/${p}/task/${tid}/comm`, 'utf8').trim().replace(/\d+$/, '');
        const group = tid === String(p) ? 'main' : comm === 'node' ? 'pool' : comm;
        const ns = Number(readFileSync(`/proc/${p}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
        out[group] = (out[group] ?? 0) + ns / 1e9;
      } catch {
        // thread exited
      }
    }
  }
  return out;
}

export interface TreeSample extends ProcSample {
  processes: number;
  /** Threads of the busiest process (libuv's pool shows up here). */
  threads: number;
  /** CPU seconds so far per thread group (threadCpu). */
  perThread: Record<string, number>;
}

/** CPU time and peak RSS summed over the agent's process tree. */
export function sampleProc(pid: number): TreeSample | null {
  let cpuSeconds = 0;
  let userSeconds = 0;
  let peakRssBytes = 0;
  let processes = 0;
  let threads = 0;
  for (const p of processTree(pid)) {
    const s = sampleOne(p);
    if (!s) continue;
    cpuSeconds += s.cpuSeconds;
    userSeconds += s.userSeconds;
    peakRssBytes += s.peakRssBytes;
    threads = Math.max(threads, s.threads);
    processes++;
  }
  return processes ? { cpuSeconds, userSeconds, peakRssBytes, processes, threads, perThread: threadCpu(pid) } : null;
}

/** Sum of all series of a counter in Prometheus text format, or null if absent. */
export function metricSum(text: string, name: string): number | null {
  let sum = 0;
  let found = false;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const next = line.charAt(name.length);
    if (next !== ' ' && next !== '{') continue;
    const value = Number(line.slice(line.lastIndexOf(' ') + 1));
    if (Number.isFinite(value)) {
      sum += value;
      found = true;
    }
  }
  return found ? sum : null;
}

export interface RunningAgent {
  pid: number;
  logFile: string;
  metricsUrl: string;
  scrape(): Promise<string | null>;
  /** prefault.issued from /status (JSON, far cheaper for the agent to answer than /metrics); null if unreachable. */
  prefaultsIssued(): Promise<number | null>;
  /** SIGTERM, wait for exit; returns the exit code or signal. */
  stop(timeoutMs?: number): Promise<string>;
  exited(): string | null;
  /** Send a signal to the agent and its descendants (SIGSTOP/SIGCONT freeze and thaw it). */
  signalTree(signal: NodeJS.Signals): void;
}

export interface AgentStart {
  repoRoot: string;
  standby: PgServer;
  metricsPort: number;
  env: Record<string, string>;
  logFile: string;
  extraArgs: string[];
  /** node flags before the script (e.g. --cpu-prof). */
  nodeArgs?: string[];
  /** The CLI script to run (default bin/pg-prefaulter.js; dist/cli/main.js runs the build, as the image does). */
  script?: string;
  /** The node binary (default this process's). */
  execPath?: string;
}

export function startAgent(opts: AgentStart): RunningAgent {
  const args = [
    ...(opts.nodeArgs ?? []),
    opts.script ?? join(opts.repoRoot, 'bin', 'pg-prefaulter.js'), 'run',
    '-D', opts.standby.dataDir,
    '-H', opts.standby.socketDir,
    '-p', String(opts.standby.port),
    '-U', 'postgres',
    '--metrics-listen', `127.0.0.1:${opts.metricsPort}`,
    '--log-level', 'warn',
    ...opts.extraArgs,
  ];
  const out = openSync(opts.logFile, 'a');
  const proc: ChildProcess = spawn(opts.execPath ?? process.execPath, args, { stdio: ['ignore', out, out], env: { ...process.env, ...opts.env } });
  closeSync(out);
  liveAgents.add(proc);
  let exitState: string | null = null;
  const exitPromise = new Promise<string>((res) => {
    proc.once('exit', (code, signal) => {
      liveAgents.delete(proc);
      exitState = signal ?? String(code);
      res(exitState);
    });
  });
  const metricsUrl = `http://127.0.0.1:${opts.metricsPort}/metrics`;
  return {
    pid: proc.pid ?? -1,
    logFile: opts.logFile,
    metricsUrl,
    exited: () => exitState,
    signalTree(signal) {
      for (const p of processTree(proc.pid ?? -1)) {
        try {
          process.kill(p, signal);
        } catch {
          // exited meanwhile
        }
      }
    },
    async scrape() {
      try {
        const res = await fetch(metricsUrl, { signal: AbortSignal.timeout(5000) });
        return res.ok ? await res.text() : null;
      } catch {
        return null;
      }
    },
    async prefaultsIssued() {
      try {
        const res = await fetch(metricsUrl.replace(/\/metrics$/, '/status'), { signal: AbortSignal.timeout(5000) });
        if (!res.ok) return null;
        const body = (await res.json()) as { prefault?: { issued?: number } | null };
        return body.prefault?.issued ?? 0;
      } catch {
        return null;
      }
    },
    async stop(timeoutMs = 20_000) {
      if (exitState !== null) return exitState;
      proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), timeoutMs);
      const state = await exitPromise;
      clearTimeout(timer);
      return state;
    },
  };
}

/** Whether the agent reports it is streaming WAL from its upstream. */
export function agentStreaming(metrics: string): boolean {
  return /^pg_prefaulter_state\{state="streaming"\} 1$/m.test(metrics) && /^pg_prefaulter_upstream_connected 1$/m.test(metrics);
}

/** User and system CPU seconds of one process (clock ticks of /proc/<pid>/stat). */
export function userSystem(pid: number): { user: number; system: number } | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { user: Number(rest[11]) / CLOCK_TICKS, system: Number(rest[12]) / CLOCK_TICKS };
  } catch {
    return null;
  }
}

/** Selected /proc/vmstat counters (memory-management events machine-wide), for diagnosing odd runs. */
export function vmstat(): Record<string, number> {
  const out: Record<string, number> = {};
  const keep = /^(pgfault|pgmajfault|allocstall_\w+|pgscan_direct|pgsteal_direct|pgscan_kswapd|thp_fault_alloc|thp_fault_fallback|pgactivate|pgdeactivate|pgrefill|workingset_refault_file|compact_stall|numa_hint_faults|pgpromote_success|pgmigrate_success)$/;
  for (const line of readFileSync('/proc/vmstat', 'utf8').split('\n')) {
    const [k, v] = line.split(' ');
    if (k && v && keep.test(k)) out[k] = Number(v);
  }
  return out;
}

/** CPU time and run-queue wait of one process (its main thread), seconds, from /proc/<pid>/schedstat. */
export function schedStat(pid: number): { cpuSeconds: number; runqueueWaitSeconds: number } | null {
  try {
    const [cpu = '0', wait = '0'] = readFileSync(`/proc/${pid}/schedstat`, 'utf8').trim().split(/\s+/);
    return { cpuSeconds: Number(cpu) / 1e9, runqueueWaitSeconds: Number(wait) / 1e9 };
  } catch {
    return null;
  }
}
