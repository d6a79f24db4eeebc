// A child memory cgroup for tests that run a process under a memory limit
// (needs root and a writable memory controller: cgroup v1, or v2 with memory
// delegated); null where there is none.
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { readMemoryCgroup } from '../../src/prefault/memory-cgroup.ts';

export interface TestCgroup {
  version: 1 | 2;
  dir: string;
  procs: string;
  /** Removes it once its processes have left (waits up to 5 s). */
  remove(): Promise<void>;
}

export function createMemoryCgroup(name: string, limitBytes: number): TestCgroup | null {
  if (process.getuid?.() !== 0) return null;
  const self = readMemoryCgroup('/');
  if (self === null) return null;
  const dir = join(self.dir, `${name}-${process.pid}`);
  try {
    if (self.version === 2 && !readFileSync(join(self.dir, 'cgroup.subtree_control'), 'utf8').includes('memory')) return null;
    mkdirSync(dir);
    writeFileSync(join(dir, self.version === 1 ? 'memory.limit_in_bytes' : 'memory.max'), String(limitBytes));
  } catch {
    return null;
  }
  return {
    version: self.version,
    dir,
    procs: join(dir, 'cgroup.procs'),
    async remove() {
      for (let i = 0; i < 50 && existsSync(dir); i++) {
        try {
          rmdirSync(dir);
        } catch {
          await new Promise((r) => setTimeout(r, 100)); // its processes are still leaving
        }
      }
    },
  };
}
