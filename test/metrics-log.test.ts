// The logger: bunyan-compatible JSON records, level filtering, and secrets
// scrubbed by the logger whatever the caller passes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { hostname } from 'node:os';
import { createLogger } from '../src/log.ts';
import { captureLog } from './helpers/log-capture.ts';

test('records carry the bunyan fields: name, hostname, pid, numeric level, msg, ISO time, v', () => {
  const out = captureLog();
  const log = createLogger('info', { stream: out.stream });
  log.info({ lsn: '0/16B3748' }, 'streaming started');
  log.debug('not shown at info');
  log.error('boom');
  const [info, error, ...rest] = out.lines();
  assert.equal(rest.length, 0, 'debug is filtered at level info');
  assert.equal(info!.name, 'pg-prefaulter');
  assert.equal(info!.hostname, hostname());
  assert.equal(info!.pid, process.pid);
  assert.equal(info!.level, 30);
  assert.equal(info!.v, 0);
  assert.equal(info!.msg, 'streaming started');
  assert.equal(info!.lsn, '0/16B3748');
  assert.match(String(info!.time), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  assert.equal(error!.level, 50);
});

test('password-like fields print "***", at any of the first three levels; conninfo passwords are scrubbed', () => {
  const out = captureLog();
  const log = createLogger('trace', { stream: out.stream });
  log.info({
    password: 'hunter2',
    config: { password: 'swordfish', replicationPassword: 'opensesame', passwordFile: '/etc/secret/pw', primaryConninfo: "host=up user=rep password='pa ss'" },
    session: { upstream: { conninfo: 'postgresql://rep:letmein@up:5432/postgres', password: 'deep' } },
    empty: { password: '' },
  }, 'connecting');
  const raw = out.raw();
  for (const secret of ['hunter2', 'swordfish', 'opensesame', 'pa ss', 'letmein', 'deep']) {
    assert.ok(!raw.includes(secret), `${secret} leaked: ${raw}`);
  }
  const [rec] = out.lines() as [Record<string, any>];
  assert.equal(rec.password, '***');
  assert.equal(rec.config.password, '***');
  assert.equal(rec.config.replicationPassword, '***');
  assert.equal(rec.config.passwordFile, '/etc/secret/pw', 'a path is not a secret');
  assert.equal(rec.config.primaryConninfo, 'host=up user=rep password=***');
  assert.equal(rec.session.upstream.conninfo, 'postgresql://rep:***@up:5432/postgres');
  assert.equal(rec.session.upstream.password, '***');
  assert.equal(rec.empty.password, '', 'an unset secret stays visibly unset');
});

test('the level can be changed at run time (SIGHUP reload)', () => {
  const out = captureLog();
  const log = createLogger('warn', { stream: out.stream });
  log.info('hidden');
  log.level = 'debug';
  log.debug('shown');
  assert.deepEqual(out.lines().map((r) => r.msg), ['shown']);
});
