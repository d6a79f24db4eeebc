// Reads the few fields we report from a libpq conninfo string such as the
// (password-obfuscated) one in pg_stat_wal_receiver.conninfo.

/** Parse "key=value key='quoted \' value'" into a map; unknown syntax is skipped, never thrown. */
export function parseConninfo(conninfo: string): Map<string, string> {
  const out = new Map<string, string>();
  const re = /\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(?:'((?:[^'\\]|\\.)*)'|(\S*))/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(conninfo)) !== null) {
    const key = m[1]!;
    const value = m[2] !== undefined ? m[2].replace(/\\(.)/g, '$1') : (m[3] ?? '');
    out.set(key, value);
  }
  return out;
}
