// Dead socket read buffers are freed by a young-generation collection every
// COLLECT_EVERY bytes read (src/replication/read-buffers.ts), not whenever V8
// next collects on its own.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PerformanceObserver, constants } from 'node:perf_hooks';
import { COLLECT_EVERY, noteSocketRead } from '../src/replication/read-buffers.ts';

function minorCollections(fn: () => void): Promise<number> {
  return new Promise((resolve) => {
    let n = 0;
    const obs = new PerformanceObserver((list) => {
      for (const e of list.getEntries()) if (((e as unknown as { detail?: { kind?: number } }).detail)?.kind === constants.NODE_PERFORMANCE_GC_MINOR) n++;
    });
    obs.observe({ entryTypes: ['gc'] });
    fn();
    // gc entries are delivered asynchronously
    setTimeout(() => {
      obs.disconnect();
      resolve(n);
    }, 100);
  });
}

test('a young-generation collection after COLLECT_EVERY bytes read, one per COLLECT_EVERY', async () => {
  const n = await minorCollections(() => {
    for (let read = 0; read < 3 * COLLECT_EVERY; read += 64 * 1024) noteSocketRead(64 * 1024);
  });
  assert.ok(n >= 3, `${n} young-generation collections for 3 x COLLECT_EVERY bytes read`);
});
