// Typed views of the backend messages pg-protocol's parser returns. It builds
// classes for some (checked with instanceof) and plain objects for the SASL
// ones (checked field by field), so a message is never taken on trust.
import type { BackendMessage } from 'pg-protocol/dist/messages.js';
import type { Parser } from 'pg-protocol/dist/parser.js';
import { AuthenticationMD5Password, DataRowMessage, DatabaseError, ParameterStatusMessage, RowDescriptionMessage } from 'pg-protocol/dist/messages.js';
import { ReplicationError, type ServerErrorFields } from './errors.ts';

/**
 * One whole frame (from the Framer) -> message. ErrorResponse and
 * NoticeResponse are checked first: pg-protocol loops forever on one whose
 * fields are not each NUL-terminated with a final NUL (found by fuzzing).
 */
export function parseBackendMessage(parser: Parser, frame: Buffer): BackendMessage {
  if ((frame[0] === 0x45 || frame[0] === 0x4e) && !wellFormedFields(frame)) {
    throw new ReplicationError('PROTOCOL', `malformed ${frame[0] === 0x45 ? 'ErrorResponse' : 'NoticeResponse'} (fields not NUL-terminated); is this a PostgreSQL server?`);
  }
  let out: BackendMessage | undefined;
  parser.parse(frame, (m) => (out = m));
  if (!out) throw new ReplicationError('PROTOCOL', `could not parse a message of type ${String.fromCharCode(frame[0]!)}`);
  return out;
}

// Body: (field type byte, NUL-terminated string)* then one NUL, ending exactly at the frame's end.
function wellFormedFields(frame: Buffer): boolean {
  let i = 5;
  while (i < frame.length) {
    if (frame[i] === 0) return i === frame.length - 1;
    const end = frame.indexOf(0, i + 1);
    if (end < 0) return false;
    i = end + 1;
  }
  return false;
}

function wrong(m: BackendMessage, want: string): ReplicationError {
  return new ReplicationError('PROTOCOL', `expected a ${want} message, got ${m.name}; is this a PostgreSQL server?`);
}

export function asParameterStatus(m: BackendMessage): ParameterStatusMessage | null {
  return m instanceof ParameterStatusMessage ? m : null;
}

export function asMd5(m: BackendMessage): AuthenticationMD5Password {
  if (m instanceof AuthenticationMD5Password) return m;
  throw wrong(m, 'AuthenticationMD5Password');
}

export function asRowDescription(m: BackendMessage): RowDescriptionMessage {
  if (m instanceof RowDescriptionMessage) return m;
  throw wrong(m, 'RowDescription');
}

export function asDataRow(m: BackendMessage): { fields: Array<string | null> } {
  if (m instanceof DataRowMessage) return m;
  throw wrong(m, 'DataRow');
}

export function asError(m: BackendMessage): ServerErrorFields {
  if (m instanceof DatabaseError) return { message: m.message, code: m.code, detail: m.detail, hint: m.hint, severity: m.severity };
  throw wrong(m, 'ErrorResponse');
}

export function asSaslStart(m: BackendMessage): { mechanisms: string[] } {
  const mechanisms = (m as { mechanisms?: unknown }).mechanisms;
  if (m.name === 'authenticationSASL' && Array.isArray(mechanisms) && mechanisms.every((x) => typeof x === 'string')) return { mechanisms };
  throw wrong(m, 'AuthenticationSASL');
}

export function asSaslData(m: BackendMessage): { data: string } {
  const data = (m as { data?: unknown }).data;
  if ((m.name === 'authenticationSASLContinue' || m.name === 'authenticationSASLFinal') && typeof data === 'string') return { data };
  throw wrong(m, m.name === 'authenticationSASLFinal' ? 'AuthenticationSASLFinal' : 'AuthenticationSASLContinue');
}
