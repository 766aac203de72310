/**
 * The proxy's counters as a session's events (src/stats/proxy-stats.ts implements SessionEvents), without a
 * server: each event lands in the counter the metrics and the admin console read, and the routing totals
 * derive from the one record of routed units.
 */
import t from 'tap';
import { ProxyStats } from '../src/stats/proxy-stats.js';
import type { SessionEvents } from '../src/session/session-events.js';

t.test('each session event is counted where the metrics read it', async (t) => {
  const stats = new ProxyStats();
  // Through the interface, as sessions and the relay call it.
  const events: SessionEvents = stats;
  events.routed('primary', 'write');
  events.routed('primary', 'write');
  events.routed('replica1', 'read');
  events.routed('replica1', 'transaction');
  t.same(stats.routedUnits, new Map([['primary', new Map([['write', 2]])], ['replica1', new Map([['read', 1], ['transaction', 1]])]]));
  t.same(stats.routedByNode, new Map([['primary', 2], ['replica1', 2]]));
  t.same(stats.routedByReason, new Map([['write', 2], ['read', 1], ['transaction', 1]]));
  t.equal(stats.unitsRouted(), 4, 'every routed unit, summed');

  events.retry('replica1');
  events.retry('replica1');
  events.retry('replica2');
  t.same(stats.retriesByNode, new Map([['replica1', 2], ['replica2', 1]]));

  events.rerun('rerun-25006');
  events.rerun('rerun-settings');
  t.equal(stats.rerunsOnPrimary, 2);

  events.hints(1);
  events.hints(1);
  events.malformedHints(3);
  t.equal(stats.hintsSeen, 2);
  t.equal(stats.hintsMalformed, 3);

  events.unitDone('primary', 1.5);
  events.unitDone('primary', 40);
  events.unitDone('replica1', 2);
  t.same([...stats.durations.keys()], ['primary', 'replica1']);
  t.equal(stats.durations.get('primary')?.count, 2);
  t.equal(stats.durations.get('replica1')?.count, 1);

  events.error('42P01');
  events.error('42P01');
  events.error('57P01');
  t.same(stats.errorsBySqlState, new Map([['42P01', 2], ['57P01', 1]]));
});
