// Finds PostgreSQL's startup (WAL replay) process without SQL: the postmaster
// PID from postmaster.pid, its child whose title is
//   postgres: [cluster_name: ]startup recovering 000000010000000A000000F3[ waiting]
// (XLogFileRead sets "recovering <file>" each time replay opens a segment, from
// pg_wal, the stream or the archive; before restore_command runs, PG 13-14 show
// "waiting for <file>"; " waiting" is appended while replay waits on a
// recovery conflict). That segment is where replay is, to within one segment,
// while PostgreSQL still refuses connections. Titles are read from
// /proc/<pid>/cmdline, readable across users unless /proc is mounted with
// hidepid; without a shared PID namespace nothing is visible.
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { readPostmasterPid, type PostmasterPid } from './postmaster-pid.ts';

export interface StartupProcess {
  kind: 'startup';
  postmaster: PostmasterPid;
  pid: number;
  title: string;
  /** WAL file named in the title; null before replay opened one, or with update_process_title = off. */
  segment: string | null;
  timeline: number | null;
  segNo: bigint | null;
  /** LSN where that segment starts: replay is at or after it. */
  segmentStartLsn: bigint | null;
  /** "waiting for <file>" (fetching it from the archive) or a " waiting" suffix (a recovery conflict). */
  waiting: boolean;
}

/** The postmaster is visible and has no startup child: recovery is over (or never ran: a primary). */
export interface NoStartupProcess {
  kind: 'none';
  postmaster: PostmasterPid;
}

/** Cannot tell: PostgreSQL is not running, or its processes are not visible to us. */
export interface NotVisible {
  kind: 'not-visible';
  reason: 'no-postmaster-pid' | 'pid-not-found' | 'pid-not-postgres' | 'proc-unreadable';
  /** What happened and how to make it visible. */
  detail: string;
  postmaster: PostmasterPid | null;
}

export type StartupLookup = StartupProcess | NoStartupProcess | NotVisible;

const TITLE = /^postgres: (?:.*: )?startup(?:\s+(recovering|waiting for)\s+([0-9A-F]{24}))?(\s+waiting)?\s*$/;

/** Parse a startup process title; null when the title is not the startup process's. */
export function parseStartupTitle(title: string, segmentSize: number): Omit<StartupProcess, 'kind' | 'postmaster' | 'pid'> | null {
  const m = TITLE.exec(title.trim());
  if (!m) return null;
  const segment = m[2] ?? null;
  let timeline: number | null = null;
  let segNo: bigint | null = null;
  if (segment) {
    timeline = parseInt(segment.slice(0, 8), 16);
    const perId = 0x100000000n / BigInt(segmentSize);
    segNo = BigInt(`0x${segment.slice(8, 16)}`) * perId + BigInt(`0x${segment.slice(16)}`);
  }
  return {
    title: title.trim(),
    segment,
    timeline,
    segNo,
    segmentStartLsn: segNo === null ? null : segNo * BigInt(segmentSize),
    waiting: m[1] === 'waiting for' || m[3] !== undefined,
  };
}

export interface FindStartupOptions {
  /** WAL segment size (pg_control xlog_seg_size). */
  segmentSize: number;
  /** For tests; default /proc. */
  procDir?: string;
}

/** Look for the startup process of the PostgreSQL running on dataDir. Never throws. */
export async function findStartupProcess(dataDir: string, opts: FindStartupOptions): Promise<StartupLookup> {
  const proc = opts.procDir ?? '/proc';
  const postmaster = await readPostmasterPid(dataDir);
  if (!postmaster) {
    return { kind: 'not-visible', reason: 'no-postmaster-pid', detail: `${join(dataDir, 'postmaster.pid')} is absent or empty: PostgreSQL is not running (yet)`, postmaster: null };
  }
  const pmPid = postmaster.pid;
  const comm = await readText(join(proc, String(pmPid), 'comm'));
  if (comm === null) {
    return { kind: 'not-visible', reason: 'pid-not-found', detail: notVisible(`postmaster.pid names PID ${pmPid}, which is not in ${proc}`), postmaster };
  }
  if (!/^(postgres|postmaster)/.test(comm.trim())) {
    return { kind: 'not-visible', reason: 'pid-not-postgres', detail: notVisible(`PID ${pmPid} from postmaster.pid is "${comm.trim()}" here, not postgres`), postmaster };
  }
  const children = await childrenOf(proc, pmPid);
  if (children === null) {
    return { kind: 'not-visible', reason: 'proc-unreadable', detail: `cannot list the children of PID ${pmPid} in ${proc} (mounted with hidepid?): allow this user to see PostgreSQL's processes`, postmaster };
  }
  for (const pid of children) {
    const title = await readCmdline(join(proc, String(pid), 'cmdline'));
    if (title === null) continue;
    const parsed = parseStartupTitle(title, opts.segmentSize);
    if (parsed) return { kind: 'startup', postmaster, pid, ...parsed };
  }
  return { kind: 'none', postmaster };
}

function notVisible(what: string): string {
  return `${what}: PostgreSQL's processes are not visible from here (another PID namespace, or /proc mounted with hidepid); in Kubernetes set shareProcessNamespace: true on the pod so replay progress can be followed`;
}

async function readText(path: string): Promise<string | null> {
  try {
    return await readFile(path, 'utf8');
  } catch {
    return null;
  }
}

// PostgreSQL overwrites argv with its title and pads it with NULs (or spaces).
async function readCmdline(path: string): Promise<string | null> {
  const text = await readText(path);
  if (text === null) return null;
  const nul = text.indexOf('\0');
  return (nul >= 0 ? text.slice(0, nul) : text).trimEnd();
}

// /proc/<pid>/task/<tid>/children (CONFIG_PROC_CHILDREN) is one read per task;
// without it, scan every /proc/<n>/stat for the parent PID.
async function childrenOf(proc: string, ppid: number): Promise<number[] | null> {
  const tasks = await readdir(join(proc, String(ppid), 'task')).catch(() => null);
  if (tasks) {
    const out: number[] = [];
    let listed = false;
    for (const tid of tasks) {
      const text = await readText(join(proc, String(ppid), 'task', tid, 'children'));
      if (text === null) continue;
      listed = true;
      for (const s of text.trim().split(/\s+/)) if (s) out.push(Number(s));
    }
    if (listed) return out;
  }
  const entries = await readdir(proc).catch(() => null);
  if (!entries) return null;
  const out: number[] = [];
  for (const name of entries) {
    if (!/^\d+$/.test(name)) continue;
    const stat = await readText(join(proc, name, 'stat'));
    if (stat === null) continue;
    // "pid (comm) state ppid ...": comm may hold spaces and parentheses.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (Number(fields[1]) === ppid) out.push(Number(name));
  }
  return out;
}
