// libpq's password file (PGPASSFILE or ~/.pgpass), matched as libpq does:
// hostname:port:database:username:password, '*' matches anything, '\' escapes
// ':' and '\'. Shared by the follower and replication connections.
import { readFileSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

export interface PgpassTarget {
  host: string;
  port: number;
  database: string;
  user: string;
}

// A socket in libpq's default directory also matches "localhost" lines.
const DEFAULT_SOCKET_DIRS = new Set(['/tmp', '/var/run/postgresql', '/run/postgresql']);

/** The password file libpq would read: passfile option, PGPASSFILE, else ~/.pgpass. */
export function pgpassPath(env: NodeJS.ProcessEnv, passfile?: string): string {
  return passfile || env.PGPASSFILE || join(env.HOME || homedir(), '.pgpass');
}

function splitLine(line: string): string[] {
  const fields: string[] = [];
  let cur = '';
  for (let i = 0; i < line.length; i++) {
    const ch = line[i]!;
    if (ch === '\\' && i + 1 < line.length) cur += line[++i];
    else if (ch === ':' && fields.length < 4) {
      fields.push(cur);
      cur = '';
    } else cur += ch;
  }
  fields.push(cur);
  return fields;
}

/** Password for target from the file, or undefined (no file, unsafe mode, no match). */
export function lookupPgpass(target: PgpassTarget, file: string): string | undefined {
  let text: string;
  try {
    const st = statSync(file);
    // libpq ignores a password file that group or others can read.
    if (!st.isFile() || (st.mode & 0o077) !== 0) return undefined;
    text = readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
  const hosts = [target.host || 'localhost'];
  if (target.host.startsWith('/') && DEFAULT_SOCKET_DIRS.has(target.host.replace(/\/+$/, ''))) hosts.push('localhost');
  const port = String(target.port);
  for (const raw of text.split(/\r?\n/)) {
    if (raw === '' || raw.startsWith('#')) continue;
    const f = splitLine(raw);
    if (f.length < 5) continue;
    const [h, p, d, u, pw] = f as [string, string, string, string, string];
    if ((h === '*' || hosts.includes(h)) && (p === '*' || p === port) && (d === '*' || d === target.database) && (u === '*' || u === target.user)) {
      return pw;
    }
  }
  return undefined;
}
