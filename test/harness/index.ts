export { ALL_VERSIONS, selectedVersions, binDir } from './binaries.ts';
export { serverUser, asServerUser } from './user.ts';
export { PgServer, sleep, type StopMode } from './server.ts';
export { createCluster, createPrimary, withCluster, withPrimary, freePort, appendHba, type Cluster, type PrimaryOnly, type ClusterOptions, type Settings } from './cluster.ts';
