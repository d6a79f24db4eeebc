// The WAL a paused standby has received but not replayed, decoded from its pg_wal.
import { join } from 'node:path';
import { WalDecoder, isDecodeError, readWalRange, type WalRecord } from '../../src/wal/index.ts';
import type { PgServer } from '../harness/index.ts';

export async function pendingRecords(standby: PgServer, from: bigint, to: bigint): Promise<WalRecord[]> {
  const records: WalRecord[] = [];
  const decoder = new WalDecoder({ startLsn: from });
  for await (const chunk of readWalRange({ dir: join(standby.dataDir, 'pg_wal'), timeline: 1, start: from, end: to })) {
    decoder.push(chunk.data);
    for (let r = decoder.next(); r !== null; r = decoder.next()) {
      if (isDecodeError(r)) throw new Error(`decode error at ${r.lsn}: ${r.message}`);
      records.push(r);
    }
  }
  return records;
}
