// One place that builds a Prefaulter from the configuration and the cluster's
// layout: from SQL facts (a session) or from pg_control (a recovery prefetch).
import type { Config } from '../config/schema.ts';
import { Prefaulter, type ResolvedIoMethod } from '../prefault/index.ts';

export interface ClusterLayout {
  pgdata: string;
  blockSize: number;
  majorVersion: number;
  catalogVersion: number;
}

export function newPrefaulter(cfg: Config, layout: ClusterLayout, io: ResolvedIoMethod, observeReadSeconds: ((s: number) => void) | undefined): Prefaulter {
  return new Prefaulter({
    ...layout,
    readaheadBytes: cfg.readaheadBytes,
    maxPagesAhead: cfg.maxPagesAhead,
    ioConcurrency: cfg.ioConcurrency,
    ioMethod: io,
    maxOpenFiles: cfg.maxOpenFiles || undefined,
    observeReadSeconds,
  });
}
