// WAL positions: carried as bigint (LSNs need 64 bits), printed the way
// PostgreSQL prints them, two uppercase hex halves "16/B374D848".
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

export function formatLsn(lsn: bigint): string {
  const hi = Number(lsn >> 32n) >>> 0;
  const lo = Number(lsn & 0xffffffffn) >>> 0;
  return `${hi.toString(16).toUpperCase()}/${lo.toString(16).toUpperCase()}`;
}
