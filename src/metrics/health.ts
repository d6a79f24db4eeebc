// Liveness bookkeeping: the agent's main loop calls tick(); /healthz asks
// healthy(). Uses a monotonic clock so wall-clock jumps cannot flip it.

export const DEFAULT_MAX_TICK_AGE_MS = 30_000;

export class Heartbeat {
  private last = performance.now();

  constructor(private readonly maxAgeMs = DEFAULT_MAX_TICK_AGE_MS) {}

  tick(): void {
    this.last = performance.now();
  }

  /** Milliseconds since the last tick. */
  ageMs(): number {
    return performance.now() - this.last;
  }

  healthy(): boolean {
    return this.ageMs() <= this.maxAgeMs;
  }
}
