// What the recovery tests do to a node from outside: kill it as a pod or
// node kill does, swap its data directory for another (a new base backup),
// and watch, from the kernel's side, which pages the agent hints.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { sleep, type PgServer } from '../harness/index.ts';

/** SIGKILL the postmaster and its children at once, as a pod or node kill does: postmaster.pid stays behind. */
export async function killHard(server: PgServer): Promise<void> {
  const pm = server.pid!;
  const pids = [pm];
  for (const d of readdirSync('/proc').filter((x) => /^\d+$/.test(x))) {
    try {
      if (Number(readFileSync(`/proc/${d}/stat`, 'utf8').replace(/^.*\) /, '').split(' ')[1]) === pm) pids.push(Number(d));
    } catch {
      // gone
    }
  }
  for (const p of pids) process.kill(p, 'SIGKILL');
  for (let i = 0; i < 1000 && server.running; i++) await sleep(10);
  assert.equal(server.running, false, 'the killed server is gone');
  // Its children go with the postmaster's death; wait until none is left holding shared memory.
  const alive = (p: number) => {
    try {
      return !/\) Z /.test(readFileSync(`/proc/${p}/stat`, 'utf8'));
    } catch {
      return false;
    }
  };
  for (let i = 0; i < 1000 && pids.some(alive); i++) await sleep(10);
}

/**
 * Swap two directories in one step (renameat2 RENAME_EXCHANGE, through perl's
 * syscall()): whoever opens a path finds the old tree or the new one, never
 * none, as a reader that polls between two renames might.
 */
export function exchangeDirs(a: string, b: string): void {
  const nr = process.arch === 'x64' ? 316 : process.arch === 'arm64' ? 276 : null;
  assert.ok(nr !== null, `renameat2's syscall number on ${process.arch} is not known here`);
  execFileSync('perl', ['-e', `syscall(${nr}, -100, $ARGV[0], -100, $ARGV[1], 2) == 0 or die "renameat2 RENAME_EXCHANGE: $!\\n"`, a, b]);
}

/** A page as hints name it: relation file (path without the segment suffix), fork, block. */
export interface HintedPage {
  time: number;
  key: string;
}

const FADVISE = /^\d+\s+(\d+\.\d+) fadvise64\(\d+<([^>]+)>, (\d+), (\d+), POSIX_FADV_WILLNEED\) = 0$/;

/**
 * The pages of every POSIX_FADV_WILLNEED the agent gave, from an
 * `strace -f -ttt -y -e trace=fadvise64` log: one entry per 8 KiB block of a
 * (coalesced) hint, keyed "<relation path>#<block>" with the 1 GiB segment
 * suffix folded into the block number.
 */
export function hintedPages(straceLog: string, blockSize: number, relsegBlocks = 131072): HintedPage[] {
  const out: HintedPage[] = [];
  for (const line of straceLog.split('\n')) {
    const m = FADVISE.exec(line.trim());
    if (!m) continue;
    const time = Number(m[1]) * 1000;
    const seg = /^(.*?)(?:\.(\d+))?$/.exec(m[2]!)!;
    const first = Number(seg[2] ?? 0) * relsegBlocks + Number(m[3]) / blockSize;
    const n = Math.max(1, Math.ceil(Number(m[4]) / blockSize));
    for (let i = 0; i < n; i++) out.push({ time, key: `${seg[1]}#${first + i}` });
  }
  return out;
}

/** The wrapper that records those hints (strace only stops the agent for fadvise64, filtered in the kernel). */
export function straceHints(logFile: string): string[] {
  return ['strace', '-f', '-qq', '-ttt', '-y', '--seccomp-bpf', '-e', 'trace=fadvise64', '-e', 'signal=none', '-o', logFile, '--'];
}

/** The first child of a wrapper process (unshare, strace): the agent itself. */
export function wrappedChild(wrapperPid: number): number {
  const text = readFileSync(`/proc/${wrapperPid}/task/${wrapperPid}/children`, 'utf8').trim();
  const pid = Number(text.split(/\s+/)[0]);
  assert.ok(pid > 0, `the wrapper ${wrapperPid} has no child`);
  return pid;
}
