// This process's memory cgroup: its limit, its usage and the page cache
// charged to it. Pages we hint are charged to the cgroup of whoever first
// reads them, i.e. to ours, so a small limit here evicts them before replay
// gets there (docs/benchmarks.md, container mode). cgroup v1 (memory
// controller) and v2 (unified); nothing is written.
import { readFileSync, existsSync } from 'node:fs';
import { dirname, join } from 'node:path';

export interface MemoryCgroup {
  version: 1 | 2;
  /** The cgroup's directory under its mount. */
  dir: string;
  /** Effective limit (the smallest on the way to the root), bytes; null = none. */
  limitBytes: number | null;
  usageBytes: number;
  /** Page cache charged to the cgroup (v1 total_cache, v2 file). */
  pageCacheBytes: number;
}

/** v1 reports "no limit" as a huge number (PAGE_COUNTER_MAX pages). */
const V1_UNLIMITED = 2 ** 60;

interface Mount {
  mountPoint: string;
  /** The cgroup path mounted there (a container often sees only its own subtree). */
  root: string;
}

/** The memory controller's cgroup path: v1's memory line, and v2's "0::" line. */
export function parseProcCgroup(text: string): { v1: string | null; v2: string | null } {
  let v1: string | null = null;
  let v2: string | null = null;
  for (const line of text.split('\n')) {
    const first = line.indexOf(':');
    const second = line.indexOf(':', first + 1);
    if (first < 0 || second < 0) continue;
    const controllers = line.slice(first + 1, second);
    const path = line.slice(second + 1);
    if (line.slice(0, first) === '0' && controllers === '') v2 = path;
    else if (controllers.split(',').includes('memory')) v1 = path;
  }
  return { v1, v2 };
}

/** Where the v1 memory hierarchy and the v2 hierarchy are mounted (/proc/self/mountinfo). */
export function parseMountinfo(text: string): { v1: Mount | null; v2: Mount | null } {
  let v1: Mount | null = null;
  let v2: Mount | null = null;
  for (const line of text.split('\n')) {
    const sep = line.indexOf(' - ');
    if (sep < 0) continue;
    const left = line.slice(0, sep).split(' ');
    const [fsType, , superOptions = ''] = line.slice(sep + 3).split(' ');
    const mount = { root: unescape(left[3] ?? '/'), mountPoint: unescape(left[4] ?? '') };
    if (fsType === 'cgroup2') v2 ??= mount;
    else if (fsType === 'cgroup' && superOptions.split(',').includes('memory')) v1 ??= mount;
  }
  return { v1, v2 };
}

// mountinfo escapes space, tab, newline and backslash as \ooo.
function unescape(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/** The cgroup's directory: the mount point plus the path below the mounted root. */
function cgroupDir(fsRoot: string, mount: Mount, path: string): string {
  const rel = mount.root !== '/' && path.startsWith(mount.root) ? path.slice(mount.root.length) : path;
  const dir = join(fsRoot, mount.mountPoint, rel);
  // A cgroup namespace whose paths do not match the mount: the mount is ours.
  return existsSync(dir) ? dir : join(fsRoot, mount.mountPoint);
}

function readNumber(file: string): number | null {
  try {
    const text = readFileSync(file, 'utf8').trim();
    if (text === 'max') return Infinity;
    const n = Number(text);
    return Number.isFinite(n) ? n : null;
  } catch {
    return null;
  }
}

/** memory.stat as name -> bytes. */
export function parseMemoryStat(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    const sp = line.indexOf(' ');
    if (sp > 0) out.set(line.slice(0, sp), Number(line.slice(sp + 1)));
  }
  return out;
}

function readStat(dir: string): Map<string, number> {
  try {
    return parseMemoryStat(readFileSync(join(dir, 'memory.stat'), 'utf8'));
  } catch {
    return new Map();
  }
}

function readV1(dir: string): MemoryCgroup | null {
  const limit = readNumber(join(dir, 'memory.limit_in_bytes'));
  const usage = readNumber(join(dir, 'memory.usage_in_bytes'));
  if (limit === null || usage === null) return null;
  const stat = readStat(dir);
  const hierarchical = stat.get('hierarchical_memory_limit') ?? Infinity;
  const effective = Math.min(limit, hierarchical);
  return {
    version: 1,
    dir,
    limitBytes: effective >= V1_UNLIMITED ? null : effective,
    usageBytes: usage,
    pageCacheBytes: stat.get('total_cache') ?? stat.get('cache') ?? 0,
  };
}

function readV2(dir: string, top: string): MemoryCgroup | null {
  const usage = readNumber(join(dir, 'memory.current'));
  if (usage === null) return null; // the memory controller is not enabled here
  // memory.max applies down the tree: the smallest between us and the mount.
  let limit = Infinity;
  for (let d = dir; ; d = dirname(d)) {
    const max = readNumber(join(d, 'memory.max'));
    if (max !== null) limit = Math.min(limit, max);
    if (d === top || d.length <= top.length || d === dirname(d)) break;
  }
  return {
    version: 2,
    dir,
    limitBytes: Number.isFinite(limit) ? limit : null,
    usageBytes: usage,
    pageCacheBytes: readStat(dir).get('file') ?? 0,
  };
}

/**
 * This process's memory cgroup, or null when it has none we can read (not
 * Linux, no memory controller). fsRoot prefixes every path (tests).
 */
export function readMemoryCgroup(fsRoot = '/', pid: number | 'self' = 'self'): MemoryCgroup | null {
  let paths: ReturnType<typeof parseProcCgroup>;
  let mounts: ReturnType<typeof parseMountinfo>;
  try {
    paths = parseProcCgroup(readFileSync(join(fsRoot, 'proc', String(pid), 'cgroup'), 'utf8'));
    mounts = parseMountinfo(readFileSync(join(fsRoot, 'proc', String(pid), 'mountinfo'), 'utf8'));
  } catch {
    return null;
  }
  // v1's memory controller wins where both are mounted (hybrid systems keep memory in v1).
  if (paths.v1 !== null && mounts.v1 !== null) {
    const got = readV1(cgroupDir(fsRoot, mounts.v1, paths.v1));
    if (got) return got;
  }
  if (paths.v2 !== null && mounts.v2 !== null) {
    return readV2(cgroupDir(fsRoot, mounts.v2, paths.v2), join(fsRoot, mounts.v2.mountPoint));
  }
  return null;
}

/** MemAvailable from /proc/meminfo, bytes (what the machine could give the page cache); null if unknown. */
export function readMemAvailable(fsRoot = '/'): number | null {
  try {
    const m = /^MemAvailable:\s+(\d+) kB/m.exec(readFileSync(join(fsRoot, 'proc', 'meminfo'), 'utf8'));
    return m ? Number(m[1]) * 1024 : null;
  } catch {
    return null;
  }
}
