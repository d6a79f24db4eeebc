// Every fuzz target by name. The pg_control parser (src/follower/control-file.ts,
// parseControlFile(buf)) gets a target once that module exists: see controlFileTarget.
import { existsSync } from 'node:fs';
import type { FuzzTarget } from '../engine.ts';
import { walDecoderTarget } from './wal-decoder.ts';
import { replicationStreamTarget } from './replication-stream.ts';
import { conninfoTarget, pgpassTarget, configTarget } from './text-parsers.ts';

export async function loadTargets(): Promise<FuzzTarget[]> {
  const targets = [walDecoderTarget, replicationStreamTarget, conninfoTarget, pgpassTarget, configTarget];
  const control = await controlFileTarget();
  if (control) targets.push(control);
  return targets;
}

/** pg_control bytes: parseControlFile must return or throw an Error naming the problem, never crash or hang. */
async function controlFileTarget(): Promise<FuzzTarget | null> {
  const path = new URL('../../src/follower/control-file.ts', import.meta.url);
  if (!existsSync(path)) return null;
  const mod = (await import(path.href)) as { parseControlFile?: (b: Buffer) => unknown };
  const parse = mod.parseControlFile;
  if (typeof parse !== 'function') return null;
  return {
    name: 'control-file',
    covers: ['/src/follower/control-file.ts'],
    maxLen: 8192,
    seeds: () => [Buffer.alloc(8192)],
    run(input) {
      try {
        parse(input);
      } catch (e) {
        if (e instanceof Error && !(e instanceof TypeError) && !(e instanceof RangeError)) return;
        throw e;
      }
    },
  };
}
