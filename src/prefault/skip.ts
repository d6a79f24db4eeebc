// Why a referenced block was not read.
export type SkipReason = 'image' | 'will_init' | 'created' | 'truncated' | 'dropped' | 'beyond_eof' | 'recent' | 'missing_file';

export type SkipCounts = Record<SkipReason, number>;

export function emptySkipCounts(): SkipCounts {
  return { image: 0, will_init: 0, created: 0, truncated: 0, dropped: 0, beyond_eof: 0, recent: 0, missing_file: 0 };
}
