// How fast replay advances and when it will have caught up: replay's byte
// rate over the last few seconds of polls, and lag / rate.

/** Rate over this much history (shorter is noisy at a 100 ms poll, longer is slow to notice a change). */
const WINDOW_MS = 10_000;
const SLOTS = 256;

export class CatchUpEstimate {
  private readonly times = new Float64Array(SLOTS);
  private readonly positions = new Float64Array(SLOTS);
  private head = 0;
  private count = 0;
  private lag = 0;

  /** A poll's replay position (null on a primary: forget) and the lag behind the upstream's end. */
  observe(replayLsn: bigint | null, lagBytes: number, nowMs: number): void {
    if (replayLsn === null) {
      this.count = 0;
      this.lag = 0;
      return;
    }
    const pos = Number(replayLsn);
    const last = this.count > 0 ? this.positions[(this.head + SLOTS - 1) % SLOTS]! : pos;
    if (pos < last) this.count = 0; // a new timeline or a rewound follower: start over
    this.times[this.head] = nowMs;
    this.positions[this.head] = pos;
    this.head = (this.head + 1) % SLOTS;
    this.count = Math.min(SLOTS, this.count + 1);
    this.lag = lagBytes;
  }

  /** Replay's WAL bytes per second over the last ~10 s; null until two polls span 1 s. */
  get rateBytesPerSecond(): number | null {
    if (this.count < 2) return null;
    const newest = (this.head + SLOTS - 1) % SLOTS;
    const now = this.times[newest]!;
    let oldest = newest;
    for (let i = 1; i < this.count; i++) {
      const j = (newest + SLOTS - i) % SLOTS;
      if (now - this.times[j]! > WINDOW_MS) break;
      oldest = j;
    }
    const span = now - this.times[oldest]!;
    if (span < 1000) return null;
    return ((this.positions[newest]! - this.positions[oldest]!) * 1000) / span;
  }

  /** Seconds until replay reaches today's end of WAL at today's rate: 0 caught up, Infinity not advancing, null unknown. */
  get etaSeconds(): number | null {
    if (this.lag <= 0) return this.count > 0 ? 0 : null;
    const rate = this.rateBytesPerSecond;
    if (rate === null) return null;
    return rate > 0 ? this.lag / rate : Infinity;
  }
}
