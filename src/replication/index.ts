// Physical streaming replication client: the public surface of src/replication.
export { parseConninfo, resolveConnOptions, redactConninfo, describeTarget, type ConnOptions, type SslMode } from './conninfo.ts';
export { ReplicationError, classifyServerError, type ReplicationErrorCode } from './errors.ts';
export { ReplicationConnection, type IdentifySystemResult } from './connection.ts';
export type { ReplicationStream, StreamMessage, StartReplicationOptions } from './stream.ts';
export { parseLsn, formatLsn } from '../lsn.ts';
