// Secret scrubbing for anything printed or logged.

import { redactConninfo } from '../replication/conninfo.ts';
import { KEYS, type Config } from './schema.ts';

export const REDACTED = '***';

// One conninfo redaction for logs, config dumps and the replication client.
export { redactConninfo };

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
