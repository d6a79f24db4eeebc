// A failure that repeats (PostgreSQL down, a corrupt WAL stretch) is logged
// the first time, when it changes, and then once per interval: not on every retry.
export class LogThrottle {
  private loggedAt = 0;
  private lastKey: string | null = null;

  constructor(private readonly intervalMs: number) {}

  /** True when this occurrence (identified by key) should be logged now. */
  due(key = '', now = Date.now()): boolean {
    if (key === this.lastKey && now - this.loggedAt < this.intervalMs) return false;
    this.lastKey = key;
    this.loggedAt = now;
    return true;
  }
}
