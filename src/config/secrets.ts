// Passwords at connect time: explicit value, else the secret file, else the
// libpq password file (PGPASSFILE or ~/.pgpass). Read on every call so a
// rotated secret is picked up on the next reconnect.

import { readFileSync } from 'node:fs';
import { lookupPgpass, pgpassPath, type PgpassTarget } from '../pgpass.ts';
import type { Config } from './schema.ts';

/** Contents of a secret file (e.g. a mounted k8s Secret) without the trailing newline. */
export function readSecretFile(path: string): string {
  try {
    return readFileSync(path, 'utf8').replace(/\r?\n$/, '');
  } catch (err) {
    throw new Error(`cannot read password file ${path}: ${(err as Error).message}; check the path and that this user may read it`);
  }
}

/** Password for the follower connection, or undefined when none is configured anywhere. */
export function resolvePassword(c: Config, env: NodeJS.ProcessEnv): string | undefined {
  if (c.password !== '') return c.password;
  if (c.passwordFile !== '') return readSecretFile(c.passwordFile);
  return lookupPgpass({ host: c.host, port: c.port, database: c.database, user: c.username }, pgpassPath(env));
}

/**
 * Password for the replication connection to `target` (host/port/user as
 * finally chosen from the upstream conninfo and replication_user). A password
 * inside primary_conninfo is the caller's to prefer.
 */
export function resolveReplicationPassword(c: Config, target: Omit<PgpassTarget, 'database'>, env: NodeJS.ProcessEnv): string | undefined {
  if (c.replicationPassword !== '') return c.replicationPassword;
  if (c.replicationPasswordFile !== '') return readSecretFile(c.replicationPasswordFile);
  // libpq matches physical replication connections against database "replication".
  return lookupPgpass({ ...target, database: 'replication' }, pgpassPath(env));
}
