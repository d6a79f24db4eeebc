// The end-of-recovery checkpoint's "shut down" (src/agent/recovery-checks.ts):
// a running recovery prefetch keeps going through it, processes in view or not.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { endOfRecoveryCheckpoint, recoveryWanted } from '../src/agent/recovery-checks.ts';
import type { RecoveryProgress } from '../src/follower/recovery-progress.ts';
import type { PostmasterStatus } from '../src/follower/postmaster-pid.ts';

function progress(state: string, status: PostmasterStatus | null | 'no-file', alive: boolean | null): RecoveryProgress {
  const postmaster = status === 'no-file' ? null : { pid: 7, dataDir: '/d', startedAt: null, port: 5432, socketDir: '/tmp', listenAddress: '*', status };
  return {
    control: { state },
    postmaster,
    startup: { kind: 'not-visible', reason: 'pid-not-found', detail: 'out of view', postmaster },
    recovery: 'none',
    recovering: false,
    postmasterAlive: alive,
    acceptsConnections: status === 'ready',
  } as unknown as RecoveryProgress;
}

test('the end-of-recovery checkpoint ("shut down" while the postmaster starts) is told from a clean start only by a pipeline already running', () => {
  // Out of view (a pod without a shared PID namespace), the checkpoint at the end of a crash recovery:
  // nothing else says a recovery is on, so the pipeline must keep itself.
  const checkpoint = progress('shut down', 'starting', null);
  assert.equal(recoveryWanted(checkpoint), false);
  assert.equal(endOfRecoveryCheckpoint(checkpoint), true);
  assert.equal(endOfRecoveryCheckpoint(progress('shut down', null, true)), true, 'status line not written yet');
  // Not it: PostgreSQL up (the SQL path takes over), stopped (no postmaster.pid), stopping, or in production.
  assert.equal(endOfRecoveryCheckpoint(progress('shut down', 'ready', null)), false);
  assert.equal(endOfRecoveryCheckpoint(progress('shut down', 'no-file', false)), false);
  assert.equal(endOfRecoveryCheckpoint(progress('shut down', 'stopping', true)), false);
  assert.equal(endOfRecoveryCheckpoint(progress('in production', 'starting', null)), false);
});
