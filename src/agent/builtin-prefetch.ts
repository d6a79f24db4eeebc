// PostgreSQL 15+'s own recovery prefetcher hints the same pages as the agent:
// twice the I/O requests and CPU for no gain (docs/benchmarks.md,
// prefaulter+builtin). Said once per setting value, not on every reconnect.
import type { Log } from '../log.ts';
import type { Follower } from '../follower/index.ts';
import { answerWithin } from './session-helpers.ts';

export class BuiltinPrefetchAdvice {
  /** recovery_prefetch value last advised about. */
  private advised = '';

  constructor(private readonly log: Log) {}

  async check(follower: Follower, timeoutMs: number): Promise<void> {
    const b = await answerWithin(follower.builtinPrefetch(), timeoutMs, 'the recovery_prefetch query');
    const on = b !== null && (b.recoveryPrefetch === 'on' || b.recoveryPrefetch === 'try');
    const key = b === null ? '' : b.recoveryPrefetch;
    if (on && key !== this.advised) {
      this.log.warn(
        { recoveryPrefetch: b.recoveryPrefetch, maintenanceIoConcurrency: b.maintenanceIoConcurrency },
        `the follower's own recovery prefetcher is on (recovery_prefetch = ${b.recoveryPrefetch}): it hints the same pages as pg-prefaulter; `
          + 'set recovery_prefetch = off on the follower (replay was faster with it off next to pg-prefaulter, see docs/benchmarks.md)',
      );
    }
    this.advised = key;
  }
}
