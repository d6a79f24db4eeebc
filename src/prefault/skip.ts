// Why a referenced block was not read: the one list (metrics labels and /status derive from it).
export const SKIP_REASONS = ['image', 'will_init', 'created', 'truncated', 'dropped', 'beyond_eof', 'recent', 'missing_file'] as const;
export type SkipReason = (typeof SKIP_REASONS)[number];

export type SkipCounts = Record<SkipReason, number>;

export function emptySkipCounts(): SkipCounts {
  return Object.fromEntries(SKIP_REASONS.map((r) => [r, 0])) as SkipCounts;
}
