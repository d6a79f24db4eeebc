// What the recovery prefetch holds back while it races replay: the rest of
// the agent's start-up (StartupSettle) and SQL attempts PostgreSQL would
// refuse (ConnectGate). On two cores every millisecond of our CPU then is
// taken from replay, which starts with PostgreSQL.
import { sleep } from '../sleep.ts';

/** Longest the agent defers loading the SQL path and the HTTP endpoint while a recovery it prefaults goes on. */
const STARTUP_SETTLE_MAX_MS = 2000;
/** After the first hint, how often start-up checks whether PostgreSQL accepts connections (as last polled). */
const SETTLE_CHECK_MS = 10;
/** While PostgreSQL recovers in view and refuses connections, the longest an SQL attempt waits (the poll lets it go once postmaster.pid says ready). */
const REFUSING_SQL_WAIT_MS = 1000;

/**
 * Start-up is settled: the first look at PGDATA found nothing to prefault,
 * or the recovery being prefaulted is over (PostgreSQL accepts connections,
 * or the pipeline is gone), at most STARTUP_SETTLE_MAX_MS after the start.
 * Until then the agent loads nothing else (the SQL client, prom-client, the
 * HTTP endpoint): module loading blocks the event loop for ~120 ms and keeps
 * V8's compiler threads busy, and on two cores that is taken from replay,
 * which started with PostgreSQL (settled at the first hint, the last 2 800
 * pages of a 19 000-page crash recovery were hinted after the loading and
 * replay stalled; settled once the pipeline had decoded all the WAL, the
 * loading still ran beside replay: 0.24 against 0.19 CPU s of the agent's
 * main thread during a PG 15 crash recovery). PostgreSQL refuses connections
 * meanwhile anyway.
 */
export class StartupSettle {
  readonly settled: Promise<void>;
  private resolve: () => void = () => {};
  private watching = false;

  constructor() {
    this.settled = new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, STARTUP_SETTLE_MAX_MS);
      timer.unref();
      this.resolve = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  settle(): void {
    this.resolve();
  }

  /** Settle once over() says the recovery is over (checked every SETTLE_CHECK_MS). */
  settleWhen(over: () => boolean): void {
    if (this.watching) return;
    this.watching = true;
    const timer = setInterval(() => {
      if (!over()) return;
      clearInterval(timer);
      this.settle();
    }, SETTLE_CHECK_MS);
    timer.unref();
  }
}

/**
 * SQL attempts wait here while a recovery is prefaulted in view (the startup
 * process seen) and postmaster.pid says PostgreSQL refuses connections: an
 * attempt then only draws a 57P03, and costs a postmaster fork and our CPU,
 * both taken from replay (every 25 ms while PostgreSQL says it is starting
 * up). Let go by open(), or after REFUSING_SQL_WAIT_MS (a safety net).
 */
export class ConnectGate {
  private opened = new AbortController();

  /** Resolves at once unless closed; else at open(), after REFUSING_SQL_WAIT_MS, or when signal aborts. */
  wait(closed: boolean, signal: AbortSignal): Promise<void> {
    if (!closed) return Promise.resolve();
    return sleep(REFUSING_SQL_WAIT_MS, AbortSignal.any([signal, this.opened.signal]));
  }

  open(): void {
    this.opened.abort();
    this.opened = new AbortController();
  }
}
