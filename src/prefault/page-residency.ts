// Is a page already in the page cache? Asked for the pages we hint, to tell
// the hints that saved replay a storage read (the page was not resident)
// from those that found it there anyway: the value of the agent, measured.
// cachestat(2) (Linux 6.5+) counts the cached pages of a range and starts no
// IO; older kernels get a 1-byte preadv2(RWF_NOWAIT), which fails with EAGAIN
// instead of reading when the page is not cached. Both through koffi, like
// the hint itself (willneed.ts).
import { createRequire } from 'node:module';

/** 1 resident, 0 not resident, -1 could not tell. */
export type ResidencyProbe = (fd: number, offset: number) => number;

const SYS_CACHESTAT = 451; // the same number on x86-64 and arm64 (generic syscall table)
const RWF_NOWAIT = 0x08;
const EAGAIN = 11;

type Loaded = { probe: ResidencyProbe; how: 'cachestat' | 'preadv2' } | { error: string };
let loaded: Loaded | null = null;

/** The probe, or why there is none here (loaded once per process). */
export function loadResidencyProbe(): Loaded {
  loaded ??= load();
  return loaded;
}

/** The probe, or null where none works (the residency figures then stay 0). */
export function residencyProbeOrNull(): ResidencyProbe | null {
  const got = loadResidencyProbe();
  return 'probe' in got ? got.probe : null;
}

function load(): Loaded {
  if (process.platform !== 'linux') return { error: `page residency is only checked on Linux (this is ${process.platform})` };
  let koffi: typeof import('koffi');
  try {
    koffi = createRequire(import.meta.url)('koffi') as typeof import('koffi');
  } catch (e) {
    return { error: `cannot load koffi (${(e as Error).message.split('\n')[0]})` };
  }
  const lib = koffi.load(null);
  // syscall(2) is variadic; with integer and pointer arguments only the fixed
  // prototype passes them in the same registers, and koffi calls it faster.
  const syscall = lib.func('long syscall(long nr, long fd, void *range, void *cstat, long flags)') as (
    nr: number, fd: number, range: Buffer, cstat: Buffer, flags: number,
  ) => number;
  // struct cachestat_range { __u64 off, len; }; struct cachestat { __u64 nr_cache, nr_dirty, nr_writeback, nr_evicted, nr_recently_evicted; }
  const range = Buffer.alloc(16);
  const stat = Buffer.alloc(40);
  const cachestat: ResidencyProbe = (fd, offset) => {
    range.writeUInt32LE(offset >>> 0, 0);
    range.writeUInt32LE(Math.floor(offset / 4294967296), 4);
    range.writeUInt32LE(1, 8); // the range's first byte: its first OS page
    if (syscall(SYS_CACHESTAT, fd, range, stat, 0) !== 0) return -1;
    return stat.readUInt32LE(0) > 0 ? 1 : 0;
  };
  // Probe once on our own stdin-free fd: /proc/self/stat is always there.
  const fs = createRequire(import.meta.url)('node:fs') as typeof import('node:fs');
  const fd = fs.openSync('/proc/self/exe', 'r');
  try {
    if (cachestat(fd, 0) >= 0) return { probe: cachestat, how: 'cachestat' };
    const preadv2 = lib.func('long preadv2(int fd, void *iov, int iovcnt, int64_t offset, int flags)') as (
      fd: number, iov: Buffer, iovcnt: number, offset: number, flags: number,
    ) => number;
    // struct iovec { void *base; size_t len; } pointing at one byte we own (koffi.alloc keeps it alive).
    const byte = koffi.alloc('uint8_t', 1);
    const iov = Buffer.alloc(16);
    iov.writeBigUInt64LE(BigInt(koffi.address(byte)), 0);
    iov.writeBigUInt64LE(1n, 8);
    const nowait: ResidencyProbe = (f, offset) => {
      if (preadv2(f, iov, 1, offset, RWF_NOWAIT) >= 0) return 1;
      return koffi.errno() === EAGAIN ? 0 : -1;
    };
    if (nowait(fd, 0) >= 0) return { probe: nowait, how: 'preadv2' };
    return { error: 'neither cachestat(2) nor preadv2(RWF_NOWAIT) works here' };
  } catch (e) {
    return { error: `cannot check page residency (${(e as Error).message.split('\n')[0]})` };
  } finally {
    fs.closeSync(fd);
  }
}
