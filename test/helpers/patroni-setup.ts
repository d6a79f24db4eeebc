// What the Patroni suite needs from the system (Debian's patroni, etcd-server
// and a PostgreSQL server package: its bin_dir has pg_basebackup and
// pg_rewind, which Patroni needs and the npm server packages lack) and the
// configuration each Patroni node runs with.
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

export const SCOPE = 'pgpf';
export const SUPERUSER_PASSWORD = 'super-secret-pw';
export const REPLICATION_USER = 'replicator';
export const REPLICATION_PASSWORD = 'repl-secret-pw';

/** Debian's PostgreSQL server bin dirs, newest first (those with pg_basebackup). */
function debianBinDirs(): string[] {
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return [];
  return readdirSync(root)
    .filter((v) => /^\d+$/.test(v) && existsSync(join(root, v, 'bin', 'pg_basebackup')) && existsSync(join(root, v, 'bin', 'postgres')))
    .sort((a, b) => Number(b) - Number(a))
    .map((v) => join(root, v, 'bin'));
}

function onPath(cmd: string): boolean {
  return (process.env.PATH ?? '').split(':').some((d) => d && existsSync(join(d, cmd)));
}

/** Why a Patroni cluster cannot run here (the Debian package to install), or null when it can. */
export function patroniMissing(): string | null {
  const missing: string[] = [];
  if (!onPath('patroni') || !onPath('patronictl')) missing.push('patroni');
  if (!onPath('etcd')) missing.push('etcd-server');
  if (!debianBinDirs().length) missing.push('postgresql-15 (or the PostgreSQL server package of this Debian release)');
  if (process.platform !== 'linux') return 'Linux only';
  return missing.length ? `missing Debian package(s): ${missing.join(', ')} (apt-get install -y ${missing.map((m) => m.split(' ')[0]).join(' ')})` : null;
}

export function pgBinDir(): string {
  const dir = debianBinDirs()[0];
  if (!dir) throw new Error('no Debian PostgreSQL server install under /usr/lib/postgresql: apt-get install -y postgresql-15');
  return dir;
}

export function pgMajor(): number {
  return Number(/postgresql\/(\d+)\//.exec(pgBinDir() + '/')![1]);
}


export interface NodeLayout {
  name: string;
  apiPort: number;
  pgPort: number;
  dataDir: string;
  socketDir: string;
  pgpass: string;
}

/** patroni.yml for one node (JSON, which is YAML). */
export function nodeConfig(node: NodeLayout, etcdPort: number, binDir: string): string {
  const cfg = {
    scope: SCOPE,
    name: node.name,
    log: { level: 'INFO' },
    restapi: { listen: `127.0.0.1:${node.apiPort}`, connect_address: `127.0.0.1:${node.apiPort}` },
    etcd3: { hosts: [`127.0.0.1:${etcdPort}`] },
    bootstrap: {
      dcs: {
        ttl: 10,
        loop_wait: 1,
        retry_timeout: 5,
        maximum_lag_on_failover: 1 << 30,
        // A crashed primary fails over instead of being restarted in place.
        primary_start_timeout: 0,
        postgresql: {
          use_pg_rewind: true,
          use_slots: true,
          parameters: {
            wal_level: 'replica',
            hot_standby: 'on',
            wal_log_hints: 'on',
            // One walsender per replica for Patroni's streaming and one for its agent.
            max_wal_senders: 10,
            max_replication_slots: 10,
            wal_keep_size: '128MB',
            // The agent prefaults; PostgreSQL's own prefetcher would do the same work twice.
            recovery_prefetch: 'off',
            shared_buffers: '32MB',
            max_connections: 40,
            fsync: 'off',
          },
        },
      },
      initdb: [{ encoding: 'UTF8' }, { 'auth-local': 'trust' }],
    },
    postgresql: {
      listen: `127.0.0.1:${node.pgPort}`,
      connect_address: `127.0.0.1:${node.pgPort}`,
      data_dir: node.dataDir,
      bin_dir: binDir,
      pgpass: node.pgpass,
      // Without it pg_basebackup waits for a spread checkpoint: minutes after a write load.
      basebackup: [{ checkpoint: 'fast' }],
      authentication: {
        superuser: { username: 'postgres', password: SUPERUSER_PASSWORD },
        replication: { username: REPLICATION_USER, password: REPLICATION_PASSWORD },
      },
      parameters: { unix_socket_directories: node.socketDir, password_encryption: 'scram-sha-256' },
      // The local socket needs the password too: the agent gets it from
      // PGPASSWORD (the #16 setup) and must not send it upstream.
      pg_hba: [
        'local all all scram-sha-256',
        `host replication ${REPLICATION_USER} 127.0.0.1/32 scram-sha-256`,
        'host all all 127.0.0.1/32 scram-sha-256',
      ],
    },
    tags: { nofailover: false, noloadbalance: false, clonefrom: false, nosync: false },
  };
  return JSON.stringify(cfg, null, 2) + '\n';
}

