// Secret scrubbing for anything printed or logged.

import { REDACTED, redactConninfo } from '../redact.ts';
import { KEYS, type Config } from './schema.ts';

export { REDACTED, redactConninfo };

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
