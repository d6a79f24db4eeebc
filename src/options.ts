// The value lists that a stage and the configuration both need, declared once
// here below both, so config/ can offer them without importing a stage.

/** libpq's sslmode values (replication/conninfo parses them; config offers them). */
export const SSL_MODES = ['disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full'] as const;
export type SslMode = (typeof SSL_MODES)[number];

/** How pages are brought in: "auto" resolves to one of the others (prefault/willneed.ts). */
export const IO_METHODS = ['auto', 'willneed', 'pread'] as const;
export type IoMethodSetting = (typeof IO_METHODS)[number];
export type IoMethod = Exclude<IoMethodSetting, 'auto'>;

/** Where WAL comes from (wal-source/). */
export const WAL_SOURCE_KINDS = ['stream', 'local'] as const;
export type WalSourceKind = (typeof WAL_SOURCE_KINDS)[number];
