// Every fuzz target by name, the pg_control parser (src/follower/control-file.ts) included.
import { existsSync, readFileSync } from 'node:fs';
import { crc32c } from '../../src/wal/crc32c.ts';
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
    // Real files of PostgreSQL 13 and 18 (the two CRC offsets), from initdb.
    seeds: () => [Buffer.alloc(8192), ...['13', '18'].map((v) => readFileSync(new URL(`../seeds/pg_control-${v}`, import.meta.url)))],
    run(input) {
      // A mutation almost always breaks the CRC: also parse it with the CRC made right for
      // each layout's offset (PostgreSQL 13-17: 288, 18: 292), so the fields get fuzzed too.
      for (const candidate of [input, withCrcAt(input, 288), withCrcAt(input, 292)]) {
        if (candidate === null) continue;
        try {
          parse(candidate);
        } catch (e) {
          if (e instanceof Error && !(e instanceof TypeError) && !(e instanceof RangeError)) continue;
          throw e;
        }
      }
    },
  };
}

function withCrcAt(input: Buffer, offset: number): Buffer | null {
  if (input.length < offset + 4) return null;
  const copy = Buffer.from(input);
  copy.writeUInt32LE(crc32c(copy, 0, offset), offset);
  return copy;
}
