// Cascading from a standby, then promoting it: the stream on timeline 1 ends
// with 'end-of-timeline' naming timeline 2, and TIMELINE_HISTORY 2 is served.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { selectedVersions, withCluster } from './harness/index.ts';
import { ReplicationConnection, parseConninfo, resolveConnOptions, parseLsn, formatLsn, type StreamMessage } from '../src/replication/index.ts';

const versions = selectedVersions();
const last = versions[versions.length - 1]!;

test(`PG ${last}: streaming from a standby across its promotion ends the timeline with the next one`, async () => {
  await withCluster(last, { name: 'repl-tli' }, async ({ primary, standby }) => {
    await primary.exec('create table t(x int); insert into t select generate_series(1, 1000)');
    await standby.waitForReplay(await primary.currentLsn());
    const conn = await ReplicationConnection.connect(resolveConnOptions(parseConninfo(standby.conninfo({ sslmode: 'disable' })), {}));
    try {
      const sys = await conn.identifySystem(); // a standby in recovery has a walsender too
      assert.equal(sys.timeline, 1);
      const start = sys.xlogpos - (sys.xlogpos % 8192n);
      const stream = conn.startReplication({ startLsn: start, timeline: 1 });
      const seen: StreamMessage[] = [];
      const reading = (async () => {
        for await (const m of stream) seen.push(m);
      })();
      await primary.exec('insert into t select generate_series(1, 5000)');
      const before = await primary.currentLsn();
      await standby.waitForReplay(before);
      await standby.promote();
      await reading; // the stream ends by itself after the end-of-timeline message
      const eot = seen[seen.length - 1];
      assert.ok(eot && eot.type === 'end-of-timeline', `last message is ${JSON.stringify(eot?.type)}`);
      assert.equal(eot.nextTimeline, 2);
      const xlog = seen.filter((m) => m.type === 'xlogdata');
      assert.ok(xlog.length > 0, 'WAL of timeline 1 was streamed before the switch');
      const lastData = xlog[xlog.length - 1]!;
      // timeline 1 ends exactly where timeline 2 starts
      assert.equal(lastData.walStart + BigInt(lastData.data.length), eot.nextTimelineStart);
      assert.equal(stream.receivedLsn, eot.nextTimelineStart);
      assert.ok(eot.nextTimelineStart >= parseLsn(before), `switch ${formatLsn(eot.nextTimelineStart)} after replayed ${before}`);

      // the connection is idle again: the new timeline and its history
      const after = await conn.identifySystem();
      assert.equal(after.timeline, 2);
      const hist = await conn.timelineHistory(2);
      assert.equal(hist.filename, '00000002.history');
      const line = hist.content.split('\n').find((l) => /^1\t/.test(l));
      assert.ok(line, `history ${JSON.stringify(hist.content)} names timeline 1`);
      assert.equal(parseLsn(line.split('\t')[1]!), eot.nextTimelineStart);

      // and streaming goes on from the switch point on timeline 2
      const next = conn.startReplication({ startLsn: eot.nextTimelineStart, timeline: 2 });
      await standby.exec('insert into t values (42)');
      const first = await next[Symbol.asyncIterator]().next();
      assert.equal(first.done, false);
      assert.equal(first.value.type, 'xlogdata');
      await next.close();
    } finally {
      await conn.close();
    }
  });
});
