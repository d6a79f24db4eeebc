// Waiting before the next attempt to reach the local PostgreSQL. Replay starts
// before the server accepts connections, and every page it reads before the
// sidecar is connected misses: so the wait (the follower backoff) is cut short
// the moment the server's unix socket appears in the socket directory.
import { watch, type FSWatcher } from 'node:fs';
import { sleep } from '../sleep.ts';

/** Resolves after ms, when signal aborts, or when `.s.PGSQL.<port>` is created in the socket directory `host`. */
export function waitForFollower(host: string, port: number, ms: number, signal: AbortSignal): Promise<void> {
  if (!host.startsWith('/')) return sleep(ms, signal);
  const socketName = `.s.PGSQL.${port}`;
  const early = new AbortController();
  let watcher: FSWatcher | null = null;
  try {
    watcher = watch(host, { persistent: false }, (_event, name) => {
      if (name === socketName) early.abort();
    });
    watcher.on('error', () => {}); // the directory went away: the timeout still ends the wait
  } catch {
    // No such directory (yet), or no inotify: plain backoff.
  }
  // (AbortSignal.any needs node 20.3; engines allow 20.0.)
  const onAbort = () => early.abort();
  signal.addEventListener('abort', onAbort, { once: true });
  if (signal.aborted) early.abort();
  return sleep(ms, early.signal).finally(() => {
    signal.removeEventListener('abort', onAbort);
    watcher?.close();
  });
}
