// Replay-position updates, as the decode loops and the session's poll of the
// follower share them. A loop that has filled its window waits for replay to
// move; the session then polls the follower sooner than poll_interval (every
// FAST_POLL_MS), so the window refills while replay runs through WAL that
// needs no reads (full-page images at ~40 MB/s went past a 2 048-page window
// in about one 100 ms poll, docs/benchmarks.md, container mode).

/** Shortest pause between follower polls while a decode loop waits for replay. */
export const FAST_POLL_MS = 10;

/** Wakes decode loops waiting for replay to move (each follower status poll). */
export class ReplayTicks {
  private waiters: (() => void)[] = [];
  private lastTick = 0;
  /** Set while the session pauses between polls: cut the pause short (a loop started waiting). */
  private hurry: (() => void) | null = null;

  tick(): void {
    this.lastTick = performance.now();
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }

  /** Resolves at the next tick, or when signal aborts. */
  next(signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      if (signal.aborted) return resolve();
      const done = () => {
        signal.removeEventListener('abort', done);
        resolve();
      };
      this.waiters.push(done);
      signal.addEventListener('abort', done, { once: true });
      this.hurry?.();
    });
  }

  /**
   * The session's pause before its next follower poll: pollMs, or until
   * FAST_POLL_MS after the last tick while a decode loop waits for one.
   */
  pause(pollMs: number, signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      if (signal.aborted) return resolve();
      const started = performance.now();
      let timer: NodeJS.Timeout;
      const done = () => {
        clearTimeout(timer);
        this.hurry = null;
        signal.removeEventListener('abort', done);
        resolve();
      };
      // Timers may fire up to a millisecond early (libuv's clock is cached per loop turn): wait out the rest.
      const until = (at: number) => {
        clearTimeout(timer);
        const left = at - performance.now();
        if (left <= 0) return done();
        timer = setTimeout(() => until(at), Math.ceil(left));
      };
      const hurry = () => until(Math.min(started + pollMs, Math.max(this.lastTick, started) + FAST_POLL_MS));
      timer = setTimeout(done, pollMs);
      signal.addEventListener('abort', done, { once: true });
      if (this.waiters.length > 0) hurry();
      else this.hurry = hurry;
    });
  }
}
