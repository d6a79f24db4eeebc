// Typed views of the backend messages pg-protocol's parser returns. It builds
// classes for some (checked with instanceof) and plain objects for the SASL
// ones (checked field by field), so a message is never taken on trust.
import type { BackendMessage } from 'pg-protocol/dist/messages.js';
import { AuthenticationMD5Password, DataRowMessage, DatabaseError, ParameterStatusMessage, RowDescriptionMessage } from 'pg-protocol/dist/messages.js';
import { ReplicationError, type ServerErrorFields } from './errors.ts';

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
