// Secret scrubbing for anything printed or logged.

import { KEYS, type Config } from './schema.ts';

export const REDACTED = '***';

/** Replaces the password in a libpq conninfo (key=value or URI form). */
export function redactConninfo(conninfo: string): string {
  return conninfo
    // key=value: password=secret, password = 'se cret'
    .replace(/(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s&]+)/gi, `$1${REDACTED}`)
    // URI userinfo: postgresql://user:secret@host
    .replace(/(\bpostgres(?:ql)?:\/\/[^:@/?\s]*:)([^@/?\s]*)@/gi, `$1${REDACTED}@`);
}

/** The config with secrets replaced by "***" (empty secrets stay "", so "unset" remains visible). */
export function redactedConfig(c: Config): Record<string, unknown> {
  const out: Record<string, unknown> = { ...c };
  for (const k of KEYS) {
    if (!k.secret) continue;
    const v = c[k.field];
    if (typeof v !== 'string' || v === '') continue;
    out[k.field] = k.key.endsWith('conninfo') ? redactConninfo(v) : REDACTED;
  }
  return out;
}
