// Passwords at connect time: explicit value, else the secret file, else the
// libpq password file (PGPASSFILE or ~/.pgpass). Read on every call so a
// rotated secret is picked up on the next reconnect.

import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { Config } from './schema.ts';

/** Contents of a secret file (e.g. a mounted k8s Secret) without the trailing newline. */
export function readSecretFile(path: string): string {
  try {
    return readFileSync(path, 'utf8').replace(/\r?\n$/, '');
  } catch (err) {
    throw new Error(`cannot read password file ${path}: ${(err as Error).message}; check the path and that this user may read it`);
  }
}

export interface PgpassTarget {
  host: string;
  port: number;
  database: string;
  user: string;
}

// libpq's default socket directories: a socket host equal to one of them also matches "localhost" lines.
const DEFAULT_SOCKET_DIRS = new Set(['/tmp', '/var/run/postgresql', '/run/postgresql']);

/** Splits a .pgpass line on unescaped colons; backslash escapes ':' and '\'. */
function splitPgpassLine(line: string): string[] {
  const fields: string[] = [];
  let cur = '';
  for (let i = 0; i < line.length; i++) {
    const ch = line[i]!;
    if (ch === '\\' && i + 1 < line.length) {
      cur += line[++i];
    } else if (ch === ':' && fields.length < 4) {
      fields.push(cur);
      cur = '';
    } else {
      cur += ch;
    }
  }
  fields.push(cur);
  return fields;
}

/** Password for the target from the libpq password file, or undefined (no file, no match). */
export function lookupPgpass(target: PgpassTarget, env: NodeJS.ProcessEnv): string | undefined {
  const path = env.PGPASSFILE || join(env.HOME || homedir(), '.pgpass');
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return undefined; // libpq silently ignores a missing password file too
  }
  const hosts = [target.host || 'localhost'];
  if (target.host.startsWith('/') && DEFAULT_SOCKET_DIRS.has(target.host.replace(/\/+$/, ''))) hosts.push('localhost');
  const port = String(target.port);
  for (const raw of text.split('\n')) {
    const line = raw.replace(/\r$/, '');
    if (line === '' || line.startsWith('#')) continue;
    const f = splitPgpassLine(line);
    if (f.length < 5) continue;
    const [h, p, d, u, pw] = f as [string, string, string, string, string];
    if ((h === '*' || hosts.includes(h)) && (p === '*' || p === port)
      && (d === '*' || d === target.database) && (u === '*' || u === target.user)) {
      return pw;
    }
  }
  return undefined;
}

/** Password for the follower connection, or undefined when none is configured anywhere. */
export function resolvePassword(c: Config, env: NodeJS.ProcessEnv): string | undefined {
  if (c.password !== '') return c.password;
  if (c.passwordFile !== '') return readSecretFile(c.passwordFile);
  return lookupPgpass({ host: c.host, port: c.port, database: c.database, user: c.username }, env);
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
  return lookupPgpass({ ...target, database: 'replication' }, env);
}
