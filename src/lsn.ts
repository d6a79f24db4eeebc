// WAL positions: carried as bigint (LSNs need 64 bits), printed the way
// PostgreSQL prints them, two uppercase hex halves "16/B374D848". Decoded records
// carry theirs as numbers (exact below 2^53, 8 PiB of WAL): no allocation per record.
// Shared by every stage; it depends on nothing.

const LSN_TEXT = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/;

export function parseLsn(text: string): bigint {
  const m = LSN_TEXT.exec(text.trim());
  if (!m) throw new Error(`invalid LSN "${text}": expected two hex numbers of up to 8 digits separated by "/", like 16/B374D848`);
  return (BigInt(`0x${m[1]}`) << 32n) | BigInt(`0x${m[2]}`);
}

/** parseLsn for columns that are null (e.g. replay LSN on a primary). */
export function parseLsnOrNull(text: string | null | undefined): bigint | null {
  return text == null ? null : parseLsn(text);
}

export function formatLsn(lsn: bigint | number): string {
  const hi = typeof lsn === 'number' ? Math.floor(lsn / 0x100000000) >>> 0 : Number(lsn >> 32n) >>> 0;
  const lo = typeof lsn === 'number' ? lsn >>> 0 : Number(lsn & 0xffffffffn) >>> 0;
  return `${hi.toString(16).toUpperCase()}/${lo.toString(16).toUpperCase()}`;
}
