// Starts a harness server's postgres without waiting for it to accept
// connections (PgServer.start() waits), for tests that watch recovery from
// outside: crash recovery, a standby with hot_standby = off.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { asServerUser, type PgServer } from '../harness/index.ts';

export interface UnreadyServer {
  proc: ChildProcess;
  /** Stop it (SIGQUIT: immediate) and wait for the exit. */
  kill(): Promise<void>;
}

export function startUnready(server: PgServer, env: Record<string, string> = {}): UnreadyServer {
  const out = openSync(server.logFile, 'a');
  const proc = spawn(join(server.binDir, 'postgres'), ['-D', server.dataDir], {
    stdio: ['ignore', out, out],
    env: { ...process.env, ...env },
    ...asServerUser(),
  });
  closeSync(out);
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  const onExit = () => proc.kill('SIGQUIT');
  process.once('exit', onExit);
  return {
    proc,
    async kill() {
      process.off('exit', onExit);
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGQUIT');
      await exited;
    },
  };
}

/** Poll fn until ok(value), at most timeoutMs; returns the value. */
export async function pollUntil<T>(what: string, fn: () => Promise<T>, ok: (v: T) => boolean, timeoutMs = 30_000, intervalMs = 20): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (ok(v)) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; last value ${JSON.stringify(v, (_k, x) => (typeof x === 'bigint' ? x.toString() : x))}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
