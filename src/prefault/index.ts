export { Prefaulter, type PrefaultOptions, type PrefaultStats } from './prefaulter.ts';
export { sizeThreadpool, relaunchWithThreadpool, type ThreadpoolSizing } from './threadpool.ts';
export { SegmentPaths, relationPath, segmentPath, blocksPerSegment, tablespaceVersionDirectory, DEFAULTTABLESPACE_OID, GLOBALTABLESPACE_OID } from './paths.ts';
export { FileHandles, openFileSoftLimit, defaultFileCapacity, type FileHandleStats } from './file-handles.ts';
export type { SkipCounts, SkipReason } from './skip.ts';
export { checkDataDirectory } from './data-directory.ts';
export { resolveIoMethod, loadWillneed, IO_METHODS, type IoMethod, type IoMethodSetting, type ResolvedIoMethod } from './willneed.ts';
