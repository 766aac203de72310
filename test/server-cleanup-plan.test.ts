/**
 * What a pooled server connection needs before another client may use it, from what was done on it: the
 * mildest statement that undoes it (RESET ALL keeps pgsplit's prepared statements, DEALLOCATE ALL keeps
 * settings, DISCARD ALL undoes the rest), or closing it when it was left inside a transaction or out of
 * step. Pure logic; the real-server half is in settings-difference-plan.test.ts.
 */
import t from 'tap';
import { ServerState } from '../src/server/server-state.js';

const fresh = (): ServerState => new ServerState(new Map([['TimeZone', 'UTC'], ['application_name', '']]), 4);

t.test('a connection nothing was done on needs nothing', async (t) => {
  const s = fresh();
  t.same(s.cleanupPlan(), { kind: 'none', sql: null, reason: 'clean' });
  t.ok(s.clean);
});

t.test('a SET is undone by RESET ALL, which keeps the prepared statements pgsplit made', async (t) => {
  const s = fresh();
  s.prepared.add('pgsplit_1');
  s.settingsChanged = true;
  const plan = s.cleanupPlan();
  t.equal(plan.kind, 'reset-all');
  t.equal(plan.sql, 'RESET ALL');
  s.cleaned(plan.kind);
  t.ok(s.clean, 'clean afterwards');
  t.same(s.prepared.list(), ['pgsplit_1'], 'pgsplit_1 survives');
});

t.test("a client's own prepared statement is undone by DEALLOCATE ALL, which empties pgsplit's cache too", async (t) => {
  const s = fresh();
  s.prepared.add('pgsplit_1');
  s.clientPrepared = true;
  const plan = s.cleanupPlan();
  t.equal(plan.sql, 'DEALLOCATE ALL');
  s.cleaned(plan.kind);
  t.ok(s.clean);
  t.equal(s.prepared.size, 0, 'the server has none left, so the cache says so');
});

t.test('settings and a client prepared statement together: DISCARD ALL', async (t) => {
  const s = fresh();
  s.clientPrepared = true;
  s.settingsChanged = true;
  t.equal(s.cleanupPlan().sql, 'DISCARD ALL');
});

for (const [flag, reason] of [
  ['identityChanged', 'SET ROLE or SESSION AUTHORIZATION ran'],
  ['listening', 'LISTEN ran'],
  ['advisoryLocks', 'an advisory lock was taken'],
  ['heldCursors', 'a cursor WITH HOLD was declared'],
] as const) {
  t.test(`${flag}: beyond RESET ALL, so DISCARD ALL`, async (t) => {
    const s = fresh();
    s.settingsChanged = true;
    s.prepared.add('pgsplit_3');
    s[flag] = true;
    const plan = s.cleanupPlan();
    t.same(plan, { kind: 'discard-all', sql: 'DISCARD ALL', reason });
    s.cleaned(plan.kind);
    t.ok(s.clean, 'every flag is cleared');
    t.equal(s.prepared.size, 0);
  });
}

t.test('a temporary object: closed (DISCARD ALL would leave the backend its temporary schema)', async (t) => {
  const s = fresh();
  s.settingsChanged = true;
  s.listening = true;
  s.tempObjects = true;
  t.same(s.cleanupPlan(), { kind: 'close', sql: null, reason: 'a temporary object was created (its backend keeps a temporary schema)' });
});

t.test('left inside a transaction (or a failed one), or out of step: closed, whatever else', async (t) => {
  for (const status of ['T', 'E'] as const) {
    const s = fresh();
    s.listening = true;
    s.noteReadyForQuery(status);
    t.equal(s.cleanupPlan().kind, 'close', status);
    t.match(s.cleanupPlan().reason, /transaction/);
    s.noteReadyForQuery('I');
    t.equal(s.cleanupPlan().kind, 'discard-all', 'idle again: cleanable');
  }
  const s = fresh();
  s.unusable = 'a reply was still owed';
  t.same(s.cleanupPlan(), { kind: 'close', sql: null, reason: 'a reply was still owed' });
});

t.test('RESET ALL forgets values the server does not report, and keeps the reported ones', async (t) => {
  const s = fresh();
  const plan = s.settingsPlan(new Map([['work_mem', '8MB'], ['TimeZone', 'Asia/Tokyo']]));
  s.applied(plan);
  t.equal(s.get('work_mem'), '8MB');
  t.equal(s.settingsChanged, true, 'an unreported parameter was set: the next client would not know');
  s.cleaned('reset-all');
  t.equal(s.get('work_mem'), undefined, 'unknown after RESET ALL');
  t.equal(s.get('timezone'), 'Asia/Tokyo', 'reported: its ParameterStatus (not fed here) would say what it is');
});

t.test('observe: ParameterStatus and ReadyForQuery from the wire keep the state true; other messages change nothing', async (t) => {
  const s = fresh();
  s.observe(0x53, Buffer.from('TimeZone\0Europe/Oslo\0'));
  t.equal(s.get('timezone'), 'Europe/Oslo');
  s.observe(0x5a, Buffer.from('T'));
  t.equal(s.transactionStatus, 'T');
  t.equal(s.cleanupPlan().kind, 'close');
  s.observe(0x44, Buffer.from([0, 0]));
  s.observe(0x5a, Buffer.from('I'));
  t.ok(s.clean);
});
