// The test harness: real primary and standby servers (see src/embedded).
export * from '../../src/embedded/index.ts';
