// shared_buffers without SQL, off the main shared memory segment in
// /proc/<pid>/maps (src/follower/shared-memory.ts): synthetic maps of each
// shared_memory_type, and real servers of every selected version.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mainSegmentBytes, readSharedBufferPages, sharedBufferPagesFromSegment } from '../src/follower/shared-memory.ts';
import { readControlFile } from '../src/follower/control-file.ts';
import { readPostmasterPid } from '../src/follower/postmaster-pid.ts';
import { selectedVersions, withPrimary } from './harness/index.ts';

const DEFAULTS = { maxConnections: 100, maxWorkerProcesses: 8, maxWalSenders: 10, maxPreparedXacts: 0, maxLocksPerXact: 64 };
const MB = 1024 * 1024;

test('shared memory: the main segment is the largest shared mapping of /dev/zero, huge pages or SysV; not dynamic shared memory', () => {
  const mmap = [
    '55d0c0000000-55d0c0a00000 r-xp 00000000 08:01 123 /usr/lib/postgresql/15/bin/postgres',
    '7f0000000000-7f0008b6a000 rw-s 00000000 00:01 4242                       /dev/zero (deleted)',
    '7f0010000000-7f0010004000 rw-s 00000000 00:05 7                          /SYSV0052e2c1 (deleted)',
    '7f0020000000-7f0028000000 rw-s 00000000 00:19 99                         /dev/shm/PostgreSQL.1447145263',
    '7f0030000000-7f0038000000 rw-p 00000000 00:00 0 ',
  ].join('\n');
  assert.equal(mainSegmentBytes(mmap), 0x8b6a000);
  const huge = '7f0000000000-7f0009000000 rw-s 00000000 00:0f 31337                      /anon_hugepage (deleted)\n';
  assert.equal(mainSegmentBytes(huge), 0x9000000);
  // shared_memory_type = sysv: the SysV segment is the main one.
  const sysv = '7f0000000000-7f0008b6a000 rw-s 00000000 00:05 8                          /SYSV0052e2c1 (deleted)\n';
  assert.equal(mainSegmentBytes(sysv), 0x8b6a000);
  // A private mapping of /dev/zero, dynamic shared memory only, nothing: no answer.
  assert.equal(mainSegmentBytes('7f0000000000-7f0008b6a000 rw-p 00000000 00:01 4242 /dev/zero (deleted)\n'), null);
  assert.equal(mainSegmentBytes('7f0020000000-7f0028000000 rw-s 00000000 00:19 99 /dev/shm/PostgreSQL.1\n'), null);
  assert.equal(mainSegmentBytes(''), null);
});

test('shared memory: shared_buffers from the segment\'s size, less what more connections take', () => {
  // Sizes seen on PostgreSQL 15 (shared_buffers 16 MB, 128 MB, 1 GB; 100 and 500 connections).
  const at = (mb: number, conns: number) => sharedBufferPagesFromSegment(mb * MB, 8192, { ...DEFAULTS, maxConnections: conns });
  for (const [mb, conns, pages] of [[20.563, 100, 2048], [43.625, 500, 2048], [139.414, 100, 16384], [162.477, 500, 16384], [1070.156, 100, 131072], [1093.219, 500, 131072]] as const) {
    const got = at(mb, conns);
    assert.ok(got >= pages * 0.95 && got <= pages * 1.05, `${mb} MB at ${conns} connections: ${got} pages, expected about ${pages}`);
  }
  // The same segment with five times the connections leaves less for buffers.
  assert.ok(at(139.414, 500) < at(139.414, 100));
  // Smaller than the fixed tables: the floor, not a negative size.
  assert.equal(at(1, 500), 16);
});

test('shared memory: no maps to read (no such process, not ours) is null, never a throw', async () => {
  const proc = mkdtempSync(join(tmpdir(), 'pg-prefaulter-proc-'));
  try {
    assert.equal(await readSharedBufferPages(123, 8192, DEFAULTS, proc), null);
    mkdirSync(join(proc, '124'));
    writeFileSync(join(proc, '124', 'maps'), '55d0c0000000-55d0c0a00000 r-xp 00000000 08:01 123 /usr/bin/postgres\n');
    assert.equal(await readSharedBufferPages(124, 8192, DEFAULTS, proc), null);
    mkdirSync(join(proc, '125'));
    writeFileSync(join(proc, '125', 'maps'), '7f0000000000-7f0008b6a000 rw-s 00000000 00:01 4242 /dev/zero (deleted)\n');
    assert.ok((await readSharedBufferPages(125, 8192, DEFAULTS, proc))! > 16000);
  } finally {
    rmSync(proc, { recursive: true, force: true });
  }
});

// Two settings per server, off the sizes the fit came from; pg_control gives the connection settings.
for (const version of selectedVersions()) {
  test(`PG ${version}: shared_buffers read off the postmaster's shared memory is within -5 %/+20 % of SHOW shared_buffers`, async () => {
    for (const [sharedBuffers, maxConnections] of [['48MB', 60], ['200MB', 300]] as const) {
      await withPrimary(version, { name: 'shared-memory', primaryConf: { shared_buffers: sharedBuffers, max_connections: maxConnections } }, async ({ primary }) => {
        const pm = await readPostmasterPid(primary.dataDir);
        assert.ok(pm, 'postmaster.pid');
        const control = await readControlFile(primary.dataDir);
        assert.equal(control.maxConnections, maxConnections);
        const pages = await readSharedBufferPages(pm.pid, control.blcksz, control);
        const truth = Number(await primary.scalar<string>(`select pg_size_bytes(current_setting('shared_buffers'))::text`)) / control.blcksz;
        assert.ok(pages !== null, 'the postmaster\'s maps are readable (the test runs as root or as the server\'s user)');
        assert.ok(pages >= truth * 0.95 && pages <= truth * 1.2, `PG ${version} shared_buffers ${sharedBuffers}, ${maxConnections} connections: read ${pages} pages, SHOW says ${truth}`);
      });
    }
  });
}
