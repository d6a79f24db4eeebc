// Secret scrubbing for anything printed or logged: one place, used by the
// logger, the config dump and the replication client's messages.

export const REDACTED = '***';

/** The same conninfo text (key=value or postgres:// URI) with passwords replaced by ***, safe for logs. */
export function redactConninfo(text: string): string {
  if (/^\s*postgres(ql)?:\/\//.test(text)) {
    return text
      .replace(/^(\s*postgres(?:ql)?:\/\/[^:@/?]*):[^@/?]*@/, `$1:${REDACTED}@`)
      .replace(/([?&]password=)[^&]*/g, `$1${REDACTED}`);
  }
  return text.replace(/(\bpassword\s*=\s*)('(?:\\.|[^'\\])*'|(?:\\.|\S)*)/g, `$1${REDACTED}`);
}
