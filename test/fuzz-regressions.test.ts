// Every input the fuzzers ever failed on (fuzz/crashes/<target>/) and every
// corpus entry (fuzz/corpus/<target>/) still passes its target's properties,
// run through the fuzz runner itself so a hang is caught by its watchdog
// instead of stalling this suite; and each crash found, as a unit test.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { Parser } from 'pg-protocol/dist/parser.js';
import { REPO } from './helpers/agent-process.ts';
import { parseBackendMessage } from '../src/replication/messages.ts';
import { ReplicationError } from '../src/replication/errors.ts';

test('fuzz crashes and corpora replay clean (no throw, no hang, properties hold)', () => {
  const r = spawnSync(process.execPath, ['--import', 'tsx', join(REPO, 'fuzz', 'run.ts'), '--time', '0', '--hang', '20'], { cwd: REPO, encoding: 'utf8', timeout: 300_000 });
  assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
  for (const t of ['wal-decoder', 'replication-stream', 'conninfo', 'pgpass', 'config']) assert.match(r.stdout, new RegExp(`^${t}: \\d+ inputs`, 'm'));
});

function frame(type: string, body: Buffer): Buffer {
  const h = Buffer.alloc(5);
  h.write(type, 0, 'latin1');
  h.writeUInt32BE(body.length + 4, 1);
  return Buffer.concat([h, body]);
}

test('an ErrorResponse without its final NUL is a protocol error, not an endless loop in pg-protocol (fuzz crash 98cc8c4f2df22ae2)', () => {
  for (const body of ['SERROR\0C58P01\0Mremoved\0', 'SERROR\0Mno terminator', '', 'S']) {
    assert.throws(() => parseBackendMessage(new Parser(), frame('E', Buffer.from(body, 'latin1'))), (e) => e instanceof ReplicationError && e.code === 'PROTOCOL' && /malformed ErrorResponse/.test(e.message));
  }
  assert.throws(() => parseBackendMessage(new Parser(), frame('N', Buffer.from('SNOTICE\0Mx'))), /malformed NoticeResponse/);
  const ok = parseBackendMessage(new Parser(), frame('E', Buffer.from('SERROR\0C58P01\0Mremoved\0\0')));
  assert.equal(ok.name, 'error');
});

test('an end-of-timeline row with a bad LSN fails the stream instead of throwing out of the data handler (fuzz crash be0a6c940bb1d627)', async () => {
  const { PhysicalStream } = await import('../src/replication/stream.ts');
  const destroyed: ReplicationError[] = [];
  const parser = new Parser();
  const host = {
    write() {},
    setReading() {},
    parseFrame: (f: Buffer) => parseBackendMessage(parser, f),
    serverError: () => new ReplicationError('PROTOCOL', 'x'),
    detachStream() {},
    destroy: (e: ReplicationError) => void destroyed.push(e),
    pendingBytes: 0,
    writeBacklog: 0,
    lastReceiveAt: Date.now(),
    walSenderTimeoutMs: 0,
    readTimeoutMs: 0,
  };
  const stream = new PhysicalStream(host, { startLsn: 0n, timeline: 1 });
  const row = (a: string, b: string) => Buffer.concat([Buffer.from([0, 2]), ...[a, b].flatMap((v) => [Buffer.from([0, 0, 0, v.length]), Buffer.from(v)])]);
  stream.onFrame(frame('W', Buffer.from([0, 0, 0])));
  stream.onFrame(frame('c', Buffer.alloc(0)));
  stream.onFrame(frame('D', row('2', '0/3startp')));
  await assert.rejects(stream.next(), (e) => e instanceof ReplicationError && e.code === 'PROTOCOL' && /end-of-timeline row/.test(e.message));
});
