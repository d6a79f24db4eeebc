// Small rules the state machine applies around its sessions.
import type { Config } from '../config/schema.ts';
import { followerPassword } from '../credentials.ts';
import type { FollowerConnOptions } from '../follower/index.ts';

/** The monitoring connection to the follower, as configured. */
export function followerConnectOptions(cfg: Config): FollowerConnOptions {
  return {
    host: cfg.host,
    port: cfg.port,
    user: cfg.username,
    database: cfg.database,
    password: followerPassword(cfg, process.env),
    connectTimeoutMs: cfg.connectTimeoutMs,
    applicationName: `${cfg.applicationName}_monitor`,
  };
}

/** Resolves as work does, or rejects once ms pass without an answer (work's late outcome is ignored). */
export function answerWithin<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  work.catch(() => {}); // a late failure (the connection closed at teardown) is not unhandled
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} got no answer within ${ms} ms; reconnecting (raise connect_timeout if the follower is just slow)`)), ms);
  });
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}

// The follower is local: retrying its socket is cheap, and after a restart
// every moment without prefaulting is replay waiting on reads. So retry it
// quickly (at most every second); backoff is for the remote upstream.
export function followerRetryBounds(cfg: Config): [number, number] {
  return [Math.min(cfg.reconnectMinMs, 100), Math.min(cfg.reconnectMaxMs, 1000)];
}

export function errInfo(e: unknown): { message: string; code?: string } {
  if (e instanceof Error) return { message: e.message, code: (e as { code?: string }).code };
  return { message: String(e) };
}
