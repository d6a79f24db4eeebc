// PostgreSQL refuses to run as root. When the tests run as root (CI does),
// servers run as an unprivileged user: PG_TEST_USER, default "nobody".
import { execFileSync } from 'node:child_process';

export interface ServerUser {
  name: string;
  uid: number;
  gid: number;
}

let cached: ServerUser | null | undefined;

/** The user servers run as, or null when the tests are not root (servers run as us). */
export function serverUser(): ServerUser | null {
  if (cached !== undefined) return cached;
  if (process.getuid?.() !== 0) return (cached = null);
  const name = process.env.PG_TEST_USER ?? 'nobody';
  const uid = Number(execFileSync('id', ['-u', name], { encoding: 'utf8' }).trim());
  const gid = Number(execFileSync('id', ['-g', name], { encoding: 'utf8' }).trim());
  if (!Number.isInteger(uid) || uid === 0) throw new Error(`PG_TEST_USER ${name} must be an unprivileged user`);
  return (cached = { name, uid, gid });
}

/** spawn() options that run a child as the server user. */
export function asServerUser(): { uid?: number; gid?: number } {
  const u = serverUser();
  return u ? { uid: u.uid, gid: u.gid } : {};
}
