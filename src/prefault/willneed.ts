// Page-cache hints: posix_fadvise(POSIX_FADV_WILLNEED), the call PostgreSQL's
// own recovery prefetch makes. The kernel starts the read and returns, so a
// hint costs a syscall on the calling thread (~1 us) where a pread costs a
// libuv threadpool hand-off, a thread blocked for the whole storage round
// trip and a callback (~60 us of CPU per page measured, see docs/benchmarks.md).
// Node has no fadvise, so it is called through koffi, an FFI whose prebuilt
// binaries come as optional dependencies: nothing is compiled at install.
// The symbol is resolved in the process's global scope (dlopen(NULL)), not in
// libc.so.6 directly, so an LD_PRELOAD shim (a storage model) still sees it.
import { createRequire } from 'node:module';

import { IO_METHODS, type IoMethod, type IoMethodSetting } from '../options.ts';

export { IO_METHODS, type IoMethod, type IoMethodSetting };

/** Hint one range; returns 0 or the errno posix_fadvise returned. */
export type WillneedHint = (fd: number, offset: number, length: number) => number;

// Linux's value on every architecture koffi ships for.
const POSIX_FADV_WILLNEED = 3;

type Loaded = { hint: WillneedHint } | { error: string };
let loaded: Loaded | null = null;

/** The hint function, or why it cannot be had here (loaded once per process). */
export function loadWillneed(): Loaded {
  loaded ??= load();
  return loaded;
}

function load(): Loaded {
  if (process.platform !== 'linux') return { error: `posix_fadvise hints are only used on Linux (this is ${process.platform})` };
  try {
    const require = createRequire(import.meta.url);
    const koffi = require('koffi') as typeof import('koffi');
    const fadvise = koffi.load(null).func('int posix_fadvise(int fd, int64_t offset, int64_t len, int advice)') as (
      fd: number,
      offset: number,
      len: number,
      advice: number,
    ) => number;
    return { hint: (fd, offset, length) => fadvise(fd, offset, length, POSIX_FADV_WILLNEED) };
  } catch (e) {
    return { error: `cannot load posix_fadvise through koffi (${(e as Error).message.split('\n')[0]})` };
  }
}

export interface ResolvedIoMethod {
  method: IoMethod;
  /** Set when method is willneed. */
  hint: WillneedHint | null;
  /** Why auto chose pread, for the start-up log; null otherwise. */
  fallbackReason: string | null;
}

/**
 * Turns the io_method setting into what runs: auto means willneed where the
 * hint loads, else pread. An explicit willneed that cannot load throws, naming
 * why and what to set instead.
 */
export function resolveIoMethod(setting: IoMethodSetting): ResolvedIoMethod {
  if (setting === 'pread') return { method: 'pread', hint: null, fallbackReason: null };
  const got = loadWillneed();
  if ('hint' in got) return { method: 'willneed', hint: got.hint, fallbackReason: null };
  if (setting === 'willneed') throw new Error(`io_method = "willneed" is not available: ${got.error}; set io_method = "pread" or "auto"`);
  return { method: 'pread', hint: null, fallbackReason: got.error };
}
