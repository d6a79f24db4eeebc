// The size and duration parsers (configuration, GUCs shown by the server,
// conninfo's connect_timeout). Units follow PostgreSQL (kB = 1024 bytes; us,
// ms, s, min, h, d), plus the explicit binary spellings KiB/MiB/GiB/TiB.
// Each parser returns the value or an error text saying what is allowed.

const SIZE_UNITS: Record<string, number> = {
  b: 1,
  kb: 1024, kib: 1024, k: 1024,
  mb: 1024 ** 2, mib: 1024 ** 2, m: 1024 ** 2,
  gb: 1024 ** 3, gib: 1024 ** 3, g: 1024 ** 3,
  tb: 1024 ** 4, tib: 1024 ** 4, t: 1024 ** 4,
};

const DURATION_UNITS: Record<string, number> = {
  us: 0.001, ms: 1, s: 1000, sec: 1000, min: 60_000, h: 3_600_000, d: 86_400_000,
};

const SIZE_HELP = 'a number of bytes or a number with a unit B, kB, MB, GB, TB (1024-based; KiB, MiB, GiB, TiB also accepted), e.g. "32MiB"';
const DURATION_HELP = 'a number of milliseconds or a number with a unit us, ms, s, min, h, d, e.g. "100ms" or "10s"';

const NUMBER_WITH_UNIT = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/;

export type Parsed = { ok: true; value: number } | { ok: false; error: string };

/** `bare` is the factor of a number without a unit (1: bytes or milliseconds). */
function parseWithUnits(input: unknown, units: Record<string, number>, help: string, what: string, bare = 1): Parsed {
  if (typeof input === 'number' || typeof input === 'bigint') {
    const n = Number(input);
    if (!Number.isFinite(n) || n < 0) return { ok: false, error: `invalid ${what} ${String(input)}: expected ${help}` };
    return { ok: true, value: Math.round(n * bare) };
  }
  if (typeof input !== 'string') return { ok: false, error: `invalid ${what} (a ${typeof input}): expected ${help}` };
  const m = NUMBER_WITH_UNIT.exec(input);
  const factor = m ? (m[2] === '' ? bare : units[m[2]!.toLowerCase()]) : undefined;
  if (!m || factor === undefined) return { ok: false, error: `invalid ${what} ${JSON.stringify(input)}: expected ${help}` };
  return { ok: true, value: Math.round(Number(m[1]) * factor) };
}

/** Bytes from a number or a string like "32MiB" / "512kB". */
export function parseSize(input: unknown): Parsed {
  return parseWithUnits(input, SIZE_UNITS, SIZE_HELP, 'size');
}

/**
 * Milliseconds from a number or a string like "100ms" / "10s" / "1min". A
 * number without a unit is in `unit` (default ms; "s" for libpq's
 * connect_timeout, as PostgreSQL's GUCs each have their own base unit).
 */
export function parseDuration(input: unknown, unit: 'ms' | 's' = 'ms'): Parsed {
  const help = unit === 'ms' ? DURATION_HELP : DURATION_HELP.replace('milliseconds', 'seconds');
  return parseWithUnits(input, DURATION_UNITS, help, 'duration', DURATION_UNITS[unit]);
}

/** Largest exact unit, for messages and the effective-config dump: 33554432 -> "32MiB". */
export function formatSize(bytes: number): string {
  for (const [unit, f] of [['TiB', 1024 ** 4], ['GiB', 1024 ** 3], ['MiB', 1024 ** 2], ['kB', 1024]] as const) {
    if (bytes >= f && bytes % f === 0) return `${bytes / f}${unit}`;
  }
  return `${bytes}B`;
}

export function formatDuration(ms: number): string {
  for (const [unit, f] of [['d', 86_400_000], ['h', 3_600_000], ['min', 60_000], ['s', 1000]] as const) {
    if (ms >= f && ms % f === 0) return `${ms / f}${unit}`;
  }
  return `${ms}ms`;
}
