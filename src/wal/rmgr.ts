// Resource manager ids and the names pg_waldump prints (rmgrlist.h, 13..18).

const RMGR_NAMES: readonly string[] = [
  'XLOG', 'Transaction', 'Storage', 'CLOG', 'Database', 'Tablespace', 'MultiXact', 'RelMap', 'Standby', 'Heap2', 'Heap',
  'Btree', 'Hash', 'Gin', 'Gist', 'Sequence', 'SPGist', 'BRIN', 'CommitTs', 'ReplicationOrigin', 'Generic', 'LogicalMessage',
];

export const RM_XLOG_ID = 0;
export const RM_XACT_ID = 1;
export const RM_SMGR_ID = 2;
export const RM_DBASE_ID = 4;
/** Highest built-in id; 128..255 are custom rmgrs (PG 15+). */
const RM_MAX_BUILTIN_ID = RMGR_NAMES.length - 1;
const RM_MIN_CUSTOM_ID = 128;

export function rmgrName(rmgrId: number): string {
  const name = RMGR_NAMES[rmgrId];
  if (name !== undefined) return name;
  return rmgrId >= RM_MIN_CUSTOM_ID ? `custom${rmgrId}` : `rmgr${rmgrId}`;
}

/** Whether a WAL record may carry this rmgr id on this major version. */
export function validRmgr(rmgrId: number, majorVersion: number | null): boolean {
  if (rmgrId <= RM_MAX_BUILTIN_ID) return true;
  return rmgrId >= RM_MIN_CUSTOM_ID && rmgrId <= 255 && (majorVersion === null || majorVersion >= 15);
}
