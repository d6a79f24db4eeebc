// PostgreSQL prints an LSN as two hex halves "HI/LO"; we carry it as a bigint.

/** Parse "16/B374D848" into a bigint; throws on anything else. */
export function parseLsn(text: string): bigint {
  const slash = text.indexOf('/');
  if (slash <= 0 || slash === text.length - 1) throw new Error(`not an LSN: "${text}" (expected HI/LO in hex)`);
  const hi = Number.parseInt(text.slice(0, slash), 16);
  const lo = Number.parseInt(text.slice(slash + 1), 16);
  if (!Number.isFinite(hi) || !Number.isFinite(lo)) throw new Error(`not an LSN: "${text}" (expected HI/LO in hex)`);
  return (BigInt(hi) << 32n) | BigInt(lo);
}

/** Null-preserving parseLsn for columns that are null on a primary. */
export function parseLsnOrNull(text: string | null | undefined): bigint | null {
  return text == null ? null : parseLsn(text);
}

/** Format a bigint LSN the way PostgreSQL does ("0/3000060"). */
export function formatLsn(lsn: bigint): string {
  return `${(lsn >> 32n).toString(16).toUpperCase()}/${(lsn & 0xffffffffn).toString(16).toUpperCase()}`;
}
