// Which password each connection uses: the one place for these rules (README,
// "Credentials"). libpq's order, with one deliberate difference: the
// follower's password (password, PGPASSWORD) is never tried on the upstream,
// where it would only fail as the wrong user's (Patroni gives the replication
// user's password through passfile= in primary_conninfo). Files are read on
// every call, so a rotated secret is picked up at the next reconnect.
import { readFileSync } from 'node:fs';
import { lookupPgpass, pgpassPath } from './pgpass.ts';

/** Contents of a secret file (e.g. a mounted k8s Secret) without the trailing newline. */
export function readSecretFile(path: string): string {
  try {
    return readFileSync(path, 'utf8').replace(/\r?\n$/, '');
  } catch (err) {
    throw new Error(`cannot read password file ${path}: ${(err as Error).message}; check the path and that this user may read it`);
  }
}

export interface FollowerCredentials {
  host: string;
  port: number;
  database: string;
  username: string;
  /** `password` key, or PGPASSWORD (the config loader maps it here). */
  password: string;
  passwordFile: string;
}

/** Follower: password (or PGPASSWORD), else password_file, else PGPASSFILE / ~/.pgpass. */
export function followerPassword(c: FollowerCredentials, env: NodeJS.ProcessEnv): string | undefined {
  if (c.password !== '') return c.password;
  if (c.passwordFile !== '') return readSecretFile(c.passwordFile);
  return lookupPgpass({ host: c.host, port: c.port, database: c.database, user: c.username }, pgpassPath(env));
}

export interface UpstreamCredentials {
  replicationPassword: string;
  replicationPasswordFile: string;
}

/** The upstream as finally chosen, with what its conninfo says about the password. */
export interface UpstreamTarget {
  host: string;
  port: number;
  user: string;
  /** password= in primary_conninfo. */
  password?: string | undefined;
  /** passfile= in primary_conninfo. */
  passfile?: string | undefined;
}

/**
 * Upstream (replication) connection: replication_password, else
 * replication_password_file, else password= in the conninfo, else the
 * conninfo's passfile= or else PGPASSFILE / ~/.pgpass, matched against
 * database "replication" as libpq does for physical replication. Never
 * PGPASSWORD nor the follower's password.
 */
export function upstreamPassword(c: UpstreamCredentials, t: UpstreamTarget, env: NodeJS.ProcessEnv): string | undefined {
  if (c.replicationPassword !== '') return c.replicationPassword;
  if (c.replicationPasswordFile !== '') return readSecretFile(c.replicationPasswordFile);
  if (t.password !== undefined && t.password !== '') return t.password;
  return lookupPgpass({ host: t.host, port: t.port, database: 'replication', user: t.user }, pgpassPath(env, t.passfile));
}

/** Plain libpq (for a bare conninfo, e.g. the tests' own connections): password=, PGPASSWORD, passfile= / PGPASSFILE / ~/.pgpass. */
export function libpqPassword(t: UpstreamTarget & { database: string }, env: NodeJS.ProcessEnv): string | undefined {
  if (t.password !== undefined) return t.password;
  if (env.PGPASSWORD) return env.PGPASSWORD;
  return lookupPgpass({ host: t.host, port: t.port, database: t.database, user: t.user }, pgpassPath(env, t.passfile));
}
