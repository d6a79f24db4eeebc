export { Follower, FollowerConnectError } from './follower.ts';
export type { FollowerConnOptions, FollowerFacts, FollowerStatus, FollowerUpstream } from './types.ts';
export { parseLsn, parseLsnOrNull, formatLsn } from '../lsn.ts';
export { CatchUpEstimate } from './catch-up.ts';
