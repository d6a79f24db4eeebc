// What the recovery prefetch holds back while it races replay: the rest of
// the agent's start-up (StartupSettle) and SQL attempts PostgreSQL would
// refuse (ConnectGate). On two cores every millisecond of our CPU then is
// taken from replay, which starts with PostgreSQL.
import { sleep } from '../sleep.ts';

/** Longest the agent defers loading the SQL path and the HTTP endpoint while the first recovery's WAL is hinted. */
const STARTUP_SETTLE_MAX_MS = 2000;
/** After the first hint, how often start-up checks whether the pipeline has caught up (decoded all WAL there is). */
const CAUGHT_UP_CHECK_MS = 10;
/** While PostgreSQL recovers in view and refuses connections, the longest an SQL attempt waits (the poll lets it go once postmaster.pid says ready). */
const REFUSING_SQL_WAIT_MS = 1000;

/**
 * Start-up is settled: the first look at PGDATA found nothing to prefault,
 * or the pipeline has hinted all the WAL there is (it waits for more; at most
 * STARTUP_SETTLE_MAX_MS). Until then the agent loads nothing else (the SQL
 * client, prom-client, the HTTP endpoint): module loading blocks the event
 * loop for ~120 ms, and replay, which started with PostgreSQL, runs up to the
 * hints and misses every page past them meanwhile (settled at the first hint,
 * or once the window was full, the last 2 800 pages of a 19 000-page crash
 * recovery were hinted after the loading, and replay stalled). PostgreSQL
 * refuses connections meanwhile anyway.
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

  /**
   * Settle once a pipeline has caught up with the WAL: a check finds nothing
   * decoded since the last (decodedLsn) while its window has room (a full
   * window waits for replay, with WAL still to hint), or the pipeline is gone.
   */
  settleOnceCaughtUp(decodedLsn: () => bigint | null, windowHasRoom: () => boolean, running: () => boolean): void {
    if (this.watching) return;
    this.watching = true;
    let decoded = decodedLsn();
    const timer = setInterval(() => {
      const now = decodedLsn();
      if ((now === decoded && windowHasRoom()) || !running()) {
        clearInterval(timer);
        this.settle();
      }
      decoded = now;
    }, CAUGHT_UP_CHECK_MS);
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
