// The WAL stage: decoding PostgreSQL physical WAL and finding it on disk.
export * from './types.ts';
export { WalDecoder, type WalDecoderOptions } from './decoder.ts';
export { parseLsn, formatLsn } from '../lsn.ts';
export { crc32c } from './crc32c.ts';
export { rmgrName } from './rmgr.ts';
export { parseSegmentName, segmentName, listSegments, readWalRange, segmentSizeOf, type SegmentFile } from './segments.ts';
export { DecodeHealth } from './decode-health.ts';
