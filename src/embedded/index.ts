// Embedded PostgreSQL primary/standby pairs from the npm server packages
// (pg13..pg18): the test harness and the `demo` command share this code.
export { ALL_VERSIONS, selectedVersions, binDir, installedVersions } from './binaries.ts';
export { serverUser, asServerUser } from './user.ts';
export { PgServer, sleep, type StopMode } from './server.ts';
export { createCluster, createPrimary, withCluster, withPrimary, freePort, appendHba, postgresRunning, type Cluster, type PrimaryOnly, type ClusterOptions, type Settings } from './cluster.ts';
