/**
 * During COPY FROM STDIN, PostgreSQL reads everything the client sends as part of the COPY: it ignores
 * Sync and Flush, and ends the connection (08P01) over any other message. pgsplit once expected an
 * answer to such a Sync, and routed a Query sent there like any other: a tagged session's read went to a
 * replica and waited forever behind the COPY. After an extended-protocol COPY, the Sync that followed
 * its Execute was swallowed by the COPY, so the batch stays open until the next Sync: an error in the
 * COPY skips the Queries sent before it. Each stream gets through pgsplit (untagged and tagged) the
 * answer of a direct connection, and the session still serves afterwards.
 */
import t from 'tap';
import { fe } from './fixtures/raw-pg-client.js';
import { startProxy } from './fixtures/proxy-fixture.js';
import { PAUSE, answerTo, copyData, copyDone, copyFail, expectDirectAnswers, type StreamPart } from './fixtures/stream-compare.js';

t.setTimeout(240_000);

const after = fe.query("SELECT 'after'");
const copySimple = fe.query('COPY copy_target FROM STDIN');
const copyExtended = [fe.parse('', 'COPY copy_target FROM STDIN'), fe.bind('', ''), fe.execute()];

const streams: Record<string, StreamPart[]> = {
  'Sync inside a simple COPY (ignored)': [copySimple, copyData('1\n'), fe.sync(), copyData('2\n'), copyDone(), after],
  'Flush inside a simple COPY (ignored)': [copySimple, copyData('1\n'), fe.flush(), copyDone(), after],
  'a simple COPY inside a transaction, Sync inside it': [fe.query('BEGIN'), copySimple, copyData('1\n'), fe.sync(), copyDone(), fe.query('COMMIT'), after],
  'a simple COPY, then a pipelined Query and a Sync': [copySimple, copyData('1\n'), copyDone(), fe.query("SELECT 'q'"), fe.sync(), after],
  'extended COPY, Syncs inside and after': [...copyExtended, fe.sync(), copyData('1\n'), fe.sync(), copyDone(), fe.sync(), after],
  'extended COPY with bad data': [...copyExtended, fe.sync(), copyData('x\n'), copyDone(), fe.sync(), after],
  'extended COPY with bad data, then a Query before Sync (skipped)': [...copyExtended, fe.sync(), copyData('x\n'), copyDone(), fe.query("SELECT 'q'"), fe.sync(), after],
  'extended COPY failed by the client, then a Query before Sync (skipped)': [...copyExtended, fe.sync(), copyFail('no'), fe.query("SELECT 'q'"), fe.sync(), after],
  'extended COPY, then a Query before Sync (runs, on the same server)': [...copyExtended, fe.sync(), copyData('1\n'), copyDone(), fe.query("SELECT 'q'"), fe.sync(), after],
  'unsynced extended COPY with bad data, then a Query before Sync': [...copyExtended, copyData('x\n'), copyDone(), fe.query("SELECT 'q'"), fe.sync(), after],
  'unsynced extended COPY sent behind another statement, Sync after its CopyDone, more after': [
    fe.query('SELECT 1'), ...copyExtended, copyData('1\n'), copyDone(), fe.sync(), fe.query('BEGIN'),
    fe.parse('s1', 'SELECT 1'), fe.bind('', 's1'), fe.query('SELECT 2'), fe.sync(), fe.query('ROLLBACK'),
  ],
  'extended COPY whose Execute comes in a later piece (after Flush), Sync after CopyDone': [
    fe.parse('', 'COPY copy_target FROM STDIN'), fe.bind('', ''), fe.flush(), PAUSE, fe.execute(), fe.sync(), copyData('1\n'), copyDone(), fe.sync(), after,
  ],
  'unsynced extended COPY behind a busy link, then a complete batch and Queries pipelined behind its CopyDone': [
    fe.query('SELECT pg_sleep(0.3)'), ...copyExtended, copyData('1\n'), copyDone(),
    fe.parse('', 'INSERT INTO copy_target VALUES (2)'), fe.bind('', ''), fe.execute(), fe.sync(),
    fe.query("INSERT INTO copy_target SELECT 3 FROM pg_sleep(0.3) RETURNING 'slow'"), fe.query("SET pgsplit.max_lag = '2s'"), fe.query("SELECT 'fast'"),
  ],
  'COPY of a table that does not exist, Sync where the data would be': [fe.query('COPY no_such_table FROM STDIN'), copyData('1\n'), fe.sync(), copyDone(), after],
};

t.test('messages during COPY FROM STDIN through pgsplit as on a direct connection', async (t) => {
  const fx = await startProxy(t, { replicas: 1 });
  const setup = await fx.client();
  await setup.query('CREATE TABLE copy_target (n int)');
  await expectDirectAnswers(t, fx, streams);

  // A Query or Parse inside the COPY: the server ends the connection with 08P01, through pgsplit too
  // (a tagged read there once went to a replica and waited forever).
  for (const [name, intruder] of [['Query', fe.query("SELECT 'q'")], ['Parse', fe.parse('', 'SELECT 1')]] as const) {
    for (const options of [undefined, '-c pgsplit.route=replica']) {
      const a = await answerTo(fx.port, [copySimple, copyData('1\n'), intruder, copyDone(), fe.sync(), after], { options });
      a.client.close();
      t.equal(a.closed, true, `${name} inside COPY: the session ends (${options ? 'tagged' : 'untagged'})`);
      t.notOk(a.messages.some((m) => m.startsWith('Row:')), 'nothing behind it ran');
      // The server's own 08P01 errors; or, when the server's reset of the connection (it closes with input
      // unread) destroyed them on the way, pgsplit's 08006 alone: never both.
      const errs = a.messages.filter((m) => m.startsWith('Error:'));
      t.ok(errs.length > 0 && (errs.every((e) => e === 'Error:08P01') || (errs.length === 1 && errs[0] === 'Error:08006')),
        `the server's errors, or pgsplit's when the server's were lost: ${a.messages.join(' ')}`);
    }
  }
  // SHOW pgsplit.* inside the COPY: pgsplit answers as PostgreSQL would answer a Query there.
  const local = await answerTo(fx.port, [copySimple, copyData('1\n'), fe.query('SHOW pgsplit.route'), copyDone(), after]);
  local.client.close();
  t.equal(local.closed, true, 'SHOW pgsplit.route inside COPY ends the session');
  t.same(local.messages, ['Unknown(G)', 'Error:08P01'], 'with FATAL 08P01');

  // Bad data, then a Sync still inside the COPY: PostgreSQL answers that Sync (its COPY had already
  // failed); pgsplit drops a Sync it sees inside a COPY, so the client gets one ReadyForQuery fewer,
  // never a session that waits. Written down in the README.
  for (const options of [undefined, '-c pgsplit.route=replica']) {
    const a = await answerTo(fx.port, [copySimple, copyData('x\n'), fe.sync(), copyData('2\n'), copyDone(), after, fe.query('SHOW pgsplit.route')], { options, atLeast: 8 });
    a.client.close();
    t.same(a.messages.slice(0, 3), ['Unknown(G)', 'Error:22P02', 'Ready:I'], 'bad data: the error and its ReadyForQuery');
    t.ok(a.messages.includes('Row:after') && a.messages.at(-1) === 'Ready:I', `the session goes on: ${a.messages.join(' ')}`);
  }
});
