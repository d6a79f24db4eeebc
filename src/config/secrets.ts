// The configured credentials as the connections use them; the rules live in
// src/credentials.ts, this only passes the Config's keys to them.
import { followerPassword, readSecretFile, upstreamPassword, type UpstreamTarget } from '../credentials.ts';
import type { Config } from './schema.ts';

export { readSecretFile };

/** Password for the follower connection, or undefined when none is configured anywhere. */
export function resolvePassword(c: Config, env: NodeJS.ProcessEnv): string | undefined {
  return followerPassword(c, env);
}

/** Password for the replication connection to `target` (host/port/user and conninfo password/passfile as finally chosen). */
export function resolveReplicationPassword(c: Config, target: UpstreamTarget, env: NodeJS.ProcessEnv): string | undefined {
  return upstreamPassword(c, target, env);
}
