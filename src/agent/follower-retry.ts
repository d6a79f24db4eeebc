// How long to wait before the next attempt to reach the follower: quick
// retries while it says it is starting up, else the follower backoff (short:
// the follower is local, see followerRetryBounds).
import type { Config } from '../config/schema.ts';
import { FollowerConnectError } from '../follower/connect-error.ts';
import { Backoff } from './backoff.ts';
import { followerRetryBounds } from './session-helpers.ts';

/** Retry delay while the follower answers "the database system is starting up", for at most this many retries (1 s). */
const STARTING_UP_RETRY_MS = 25;
const STARTING_UP_QUICK_RETRIES = 40;

export class FollowerRetry {
  private readonly backoff: Backoff;
  /** Consecutive "starting up" refusals retried quickly. */
  private quickRetries = 0;

  constructor(cfg: Config) {
    this.backoff = new Backoff(...followerRetryBounds(cfg));
  }

  reconfigure(cfg: Config): void {
    this.backoff.setBounds(...followerRetryBounds(cfg));
  }

  /** Retries since the follower last answered. */
  get attempts(): number {
    return this.backoff.attempts;
  }

  /** The follower answered: the backoff starts over. */
  reset(): void {
    this.backoff.reset();
  }

  /** The delay after a session that ended with failure (null: it ended without one). */
  delayAfter(failure: unknown): number {
    // 57P03 ("starting up"): the server is about to accept connections, ask again soon; but only
    // for a while, since the same code also means "hot_standby = off" or "shutting down", for good.
    const startingUp = failure instanceof FollowerConnectError && failure.startingUp;
    this.quickRetries = startingUp ? this.quickRetries + 1 : 0;
    return startingUp && this.quickRetries <= STARTING_UP_QUICK_RETRIES ? STARTING_UP_RETRY_MS : this.backoff.next();
  }
}
