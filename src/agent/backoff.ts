// Capped exponential backoff with full jitter, so many sidecars restarting
// together (a failover) do not hammer the upstream in lockstep.
export class Backoff {
  private attempt = 0;
  constructor(
    private minMs: number,
    private maxMs: number,
  ) {}

  /** Delay before the next attempt; grows until reset(). */
  next(): number {
    const cap = Math.min(this.maxMs, this.minMs * 2 ** Math.min(this.attempt, 30));
    this.attempt++;
    return Math.max(this.minMs, Math.round(cap / 2 + (Math.random() * cap) / 2));
  }

  reset(): void {
    this.attempt = 0;
  }

  get attempts(): number {
    return this.attempt;
  }

  setBounds(minMs: number, maxMs: number): void {
    this.minMs = minMs;
    this.maxMs = maxMs;
  }
}
