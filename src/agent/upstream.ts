// Where the agent streams WAL from, and as whom: the configured
// primary_conninfo, else what the follower itself streams from. Passwords
// follow the rules in src/credentials.ts (README, "Credentials").
import type { Config } from '../config/schema.ts';
import { upstreamPassword } from '../credentials.ts';
import type { Follower, FollowerStatus } from '../follower/index.ts';
import { parseConninfo, resolveConnOptions, type ConnOptions } from '../replication/conninfo.ts';

/** host:port of the follower's upstream as pg_stat_wal_receiver shows it, or null. */
export function followerUpstream(s: FollowerStatus): string | null {
  return s.upstream ? `${s.upstream.host}:${s.upstream.port}` : null;
}

/** Connection options for the upstream, or null when none is known (no WAL receiver, no primary_conninfo). */
export async function upstreamConnOptions(cfg: Config, status: FollowerStatus, follower: Follower | null, env = process.env): Promise<ConnOptions | null> {
  let partial: Partial<ConnOptions>;
  if (cfg.primaryConninfo) {
    partial = parseConninfo(cfg.primaryConninfo);
  } else {
    // The follower's own primary_conninfo has the password or passfile
    // (pg_stat_wal_receiver masks the password) and exists before its WAL
    // receiver connects; the receiver says where it really streams from
    // (Patroni rewrites the setting on failover).
    const setting = await follower?.primaryConninfo();
    const fromSetting = setting ? parseConninfoOrNull(setting) : null;
    if (status.upstream) {
      partial = parseConninfoOrNull(status.upstream.conninfo) ?? {};
      delete partial.password;
      partial.host = status.upstream.host || partial.host;
      partial.port = status.upstream.port || partial.port;
      if (fromSetting && (fromSetting.user ?? partial.user) === partial.user) {
        if (fromSetting.password) partial.password = fromSetting.password;
        if (fromSetting.passfile) partial.passfile ??= fromSetting.passfile;
      }
    } else if (fromSetting?.host) {
      partial = fromSetting;
    } else {
      return null;
    }
  }
  if (cfg.replicationUser) partial.user = cfg.replicationUser;
  if (cfg.sslrootcert) partial.sslrootcert = cfg.sslrootcert;
  if (cfg.sslmode && !cfg.primaryConninfo) partial.sslmode = cfg.sslmode;
  partial.applicationName = cfg.applicationName;
  partial.connectTimeoutMs = cfg.connectTimeoutMs;
  delete partial.dbname;
  const conninfoPassword = partial.password;
  delete partial.password;
  // Host, port and user as libpq settles them (PGHOST... defaults), then the password for exactly those.
  const opts = resolveConnOptions(partial, env, 'given');
  const password = upstreamPassword(cfg, { host: opts.host, port: opts.port, user: opts.user, password: conninfoPassword, passfile: opts.passfile }, env);
  if (password !== undefined) opts.password = password;
  return opts;
}

function parseConninfoOrNull(text: string): Partial<ConnOptions> | null {
  try {
    return parseConninfo(text);
  } catch {
    return null;
  }
}
