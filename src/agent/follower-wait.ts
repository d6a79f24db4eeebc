// Waiting before the next attempt to reach the local PostgreSQL. Replay starts
// before the server accepts connections, and every page it reads before the
// sidecar is connected misses: so the wait (the follower backoff) is cut short
// the moment the server's unix socket appears in the socket directory, also
// when that directory itself was removed and is made again (a re-basebackup,
// a new pod volume): then its nearest existing parent is watched until it is back.
import { existsSync, statSync, watch, type FSWatcher } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { sleep } from '../sleep.ts';

/** Resolves after ms, when signal aborts, or when `.s.PGSQL.<port>` is created in the socket directory `host`. */
export function waitForFollower(host: string, port: number, ms: number, signal: AbortSignal): Promise<void> {
  if (!host.startsWith('/')) return sleep(ms, signal);
  const early = new AbortController();
  const socketWatch = new SocketWatch(host, `.s.PGSQL.${port}`, () => early.abort());
  // (AbortSignal.any needs node 20.3; engines allow 20.0.)
  const onAbort = () => early.abort();
  signal.addEventListener('abort', onAbort, { once: true });
  if (signal.aborted) early.abort();
  return sleep(ms, early.signal).finally(() => {
    signal.removeEventListener('abort', onAbort);
    socketWatch.close();
  });
}

class SocketWatch {
  private watcher: FSWatcher | null = null;
  private closed = false;

  constructor(
    private readonly dir: string,
    private readonly socketName: string,
    private readonly onAppear: () => void,
  ) {
    this.arm(false);
  }

  close(): void {
    this.closed = true;
    this.watcher?.close();
    this.watcher = null;
  }

  // Watch the socket directory, or while it is missing the nearest existing
  // ancestor, re-arming whenever something on that path changes.
  private arm(rearmed: boolean): void {
    this.watcher?.close();
    this.watcher = null;
    if (this.closed) return;
    const target = deepestExisting(this.dir);
    if (target === null) return;
    const onDir = target === this.dir;
    // The directory came back since the wait began: the socket may already be in it.
    if (onDir && rearmed && existsSync(join(this.dir, this.socketName))) return this.onAppear();
    const inode = inodeOf(target);
    try {
      this.watcher = watch(target, { persistent: false }, (_event, name) => {
        if (!onDir) this.arm(true);
        else if (name === this.socketName) this.onAppear();
        // The directory itself was removed (an event named after it; it may be
        // back already, even with the same inode number, which the old watch never sees).
        else if (name === basename(this.dir) || inodeOf(this.dir) !== inode) this.arm(true);
      });
      this.watcher.on('error', () => this.arm(true)); // the directory went away under the watch
    } catch {
      return; // No inotify (or no permission): plain backoff.
    }
    // The path grew (or shrank) between the look and the watch: look again.
    if (deepestExisting(this.dir) !== target) this.arm(true);
  }
}

function inodeOf(path: string): string | null {
  try {
    const st = statSync(path);
    return `${st.dev}:${st.ino}`;
  } catch {
    return null;
  }
}

function deepestExisting(path: string): string | null {
  let p = path;
  while (!existsSync(p)) {
    const up = dirname(p);
    if (up === p) return null;
    p = up;
  }
  return p;
}
