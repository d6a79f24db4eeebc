// LSN text form as PostgreSQL prints it: two uppercase hex halves, "16/B374D848".

const LSN_TEXT = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/;

export function parseLsn(text: string): bigint {
  const m = LSN_TEXT.exec(text.trim());
  if (!m) throw new Error(`invalid LSN "${text}": expected two hex numbers of up to 8 digits separated by "/", like 16/B374D848`);
  return (BigInt(`0x${m[1]}`) << 32n) | BigInt(`0x${m[2]}`);
}

export function formatLsn(lsn: bigint): string {
  const hi = Number(lsn >> 32n) >>> 0;
  const lo = Number(lsn & 0xffffffffn) >>> 0;
  return `${hi.toString(16).toUpperCase()}/${lo.toString(16).toUpperCase()}`;
}
