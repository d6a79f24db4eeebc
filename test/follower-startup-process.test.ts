// Startup process titles of PostgreSQL 13-18 (the variants XLogFileRead and
// recovery conflicts produce), postmaster.pid lines, timeline history files,
// and the "not visible" answers when postmaster.pid names no postgres here.
// Real titles of each version are read in follower-recovery-progress.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findStartupProcess, parseStartupTitle } from '../src/follower/startup-process.ts';
import { parsePostmasterPid } from '../src/follower/postmaster-pid.ts';
import { parseTimelineHistory, timelineAt } from '../src/follower/timeline-history.ts';

const SEG = 16 * 1024 * 1024;

test('startup titles: recovering, waiting for (archive), a waiting suffix, cluster_name, none yet', () => {
  const r = parseStartupTitle('postgres: startup recovering 000000010000000A000000F3', SEG)!;
  assert.equal(r.segment, '000000010000000A000000F3');
  assert.equal(r.timeline, 1);
  assert.equal(r.segNo, 0xaf3n);
  assert.equal(r.segmentStartLsn, 0xaf3n * BigInt(SEG));
  assert.equal(r.waiting, false);

  const w = parseStartupTitle('postgres: main: startup recovering 00000002000000000000001B waiting', SEG)!;
  assert.equal(w.timeline, 2);
  assert.equal(w.segNo, 0x1bn);
  assert.equal(w.waiting, true);

  const a = parseStartupTitle('postgres: startup waiting for 000000030000000100000002', SEG)!;
  assert.equal(a.timeline, 3);
  assert.equal(a.segNo, 0x102n);
  assert.equal(a.waiting, true);

  // 64 MiB segments: 64 per "log id".
  assert.equal(parseStartupTitle('postgres: startup recovering 000000010000000100000003', 64 * 1024 * 1024)!.segNo, 64n + 3n);

  const bare = parseStartupTitle('postgres: startup   ', SEG)!;
  assert.equal(bare.segment, null);
  assert.equal(bare.segmentStartLsn, null);

  assert.equal(parseStartupTitle('postgres: walreceiver streaming 0/3000000', SEG), null);
  assert.equal(parseStartupTitle('postgres: checkpointer', SEG), null);
  assert.equal(parseStartupTitle('/usr/lib/postgresql/15/bin/postgres -D /data', SEG), null);
});

test('postmaster.pid: all eight lines, a file being written, a single-user backend', () => {
  const pm = parsePostmasterPid('4242\n/var/lib/pg\n1764556800\n5432\n/var/run/postgresql\n*\n  5432001    163840\nready   \n')!;
  assert.equal(pm.pid, 4242);
  assert.equal(pm.dataDir, '/var/lib/pg');
  assert.equal(pm.startedAt?.getTime(), 1764556800_000);
  assert.equal(pm.port, 5432);
  assert.equal(pm.socketDir, '/var/run/postgresql');
  assert.equal(pm.listenAddress, '*');
  assert.equal(pm.status, 'ready');
  const early = parsePostmasterPid('4242\n/var/lib/pg\n1764556800\n5432\n\n')!;
  assert.equal(early.status, null);
  assert.equal(early.socketDir, null);
  assert.equal(parsePostmasterPid(''), null);
  assert.equal(parsePostmasterPid('-77\n/d\n')!.pid, 77);
});

test('timeline history: the timeline holding each LSN', () => {
  const h = parseTimelineHistory('1\t0/3000158\tno recovery target specified\n\n2\t0/5000000\tat restore point "x"\n', 3);
  assert.deepEqual(h, [
    { timeline: 1, end: 0x3000158n },
    { timeline: 2, end: 0x5000000n },
    { timeline: 3, end: null },
  ]);
  assert.equal(timelineAt(h, 0x3000157n), 1);
  assert.equal(timelineAt(h, 0x3000158n), 2);
  assert.equal(timelineAt(h, 0x9000000n), 3);
  assert.throws(() => parseTimelineHistory('garbage\n', 2), /timeline 2 history: cannot parse line "garbage"/);
});

test('not visible: no postmaster.pid, a PID that does not exist, a PID that is not postgres', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pg-prefaulter-pmpid-'));
  try {
    let r = await findStartupProcess(dir, { segmentSize: SEG });
    assert.equal(r.kind, 'not-visible');
    assert.equal(r.kind === 'not-visible' && r.reason, 'no-postmaster-pid');

    // PID_MAX_LIMIT is 2^22: this PID cannot exist.
    writeFileSync(join(dir, 'postmaster.pid'), `${2 ** 22 + 1}\n${dir}\n0\n5432\n/tmp\n`);
    r = await findStartupProcess(dir, { segmentSize: SEG });
    assert.equal(r.kind === 'not-visible' && r.reason, 'pid-not-found');
    assert.match(r.kind === 'not-visible' ? r.detail : '', /shareProcessNamespace: true/);

    // Our own PID: in another namespace the number can name anything.
    writeFileSync(join(dir, 'postmaster.pid'), `${process.pid}\n${dir}\n0\n5432\n/tmp\n`);
    r = await findStartupProcess(dir, { segmentSize: SEG });
    assert.equal(r.kind === 'not-visible' && r.reason, 'pid-not-postgres');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
