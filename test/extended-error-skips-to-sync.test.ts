/**
 * After an error in an extended-protocol batch, PostgreSQL skips every message up to the client's Sync,
 * Queries and function calls included, and answers none of them. pgsplit once kept waiting for the
 * skipped Query's ReadyForQuery: the session stayed busy for good, so a statement pgsplit answers itself,
 * a Terminate, or a tagged session's next read on another server waited forever. Each stream here gets
 * through pgsplit (untagged and tagged) exactly the answer PostgreSQL gives on a direct connection, and
 * the session still answers SHOW pgsplit.route afterwards.
 */
import t from 'tap';
import { fe } from './fixtures/raw-pg-client.js';
import { startProxy } from './fixtures/proxy-fixture.js';
import { PAUSE, expectDirectAnswers, type StreamPart } from './fixtures/stream-compare.js';

t.setTimeout(180_000);

const failing = [fe.parse('', 'SELECT 1/0'), fe.bind('', ''), fe.execute()];
const working = [fe.parse('', 'SELECT 1'), fe.bind('', ''), fe.execute()];
const after = fe.query("SELECT 'after'");

const streams: Record<string, StreamPart[]> = {
  'error, then a Query before Sync (skipped)': [...failing, fe.query('SELECT 2'), fe.sync(), after],
  'error, then two pieces with a Query each before Sync (all skipped)': [
    ...failing, fe.query('SELECT 2'), fe.parse('', 'SELECT 3'), fe.bind('', ''), fe.execute(), fe.query('SELECT 4'), fe.sync(), after,
  ],
  'error already answered (Flush), then a Query before Sync': [...failing, fe.flush(), PAUSE, fe.query('SELECT 2'), fe.sync(), after],
  'no error: the Query behind the batch runs': [...working, fe.query('SELECT 2'), fe.sync(), after],
  'no error in the batch; the Query itself fails': [...working, fe.query('SELECT 1/0'), fe.sync(), after],
  'a named statement parsed after the error does not exist': [
    ...failing, fe.parse('s1', 'SELECT 1'), fe.sync(), fe.bind('', 's1'), fe.execute(), fe.sync(), after,
  ],
  'a Query behind a batch ends it: a SET after that is replayed on the server the batch used': [
    ...working, fe.query('SELECT 2'), fe.query('INSERT INTO skip_t VALUES (1)'), fe.sync(), PAUSE,
    fe.query("SET statement_timeout = '100ms'"), fe.query('SELECT pg_sleep(0.5)'),
  ],
  'COMMIT in an unsynced piece (Flush, then Sync): the SET of the transaction follows the session': [
    fe.query('BEGIN'), fe.query("SET statement_timeout = '100ms'"), fe.parse('', 'COMMIT'), fe.bind('', ''), fe.execute(), fe.flush(), fe.sync(),
    PAUSE, fe.query('SELECT pg_sleep(0.5)'),
  ],
  'COMMIT in a piece ended by a Query: the SET of the transaction follows the session': [
    fe.query('BEGIN'), fe.query("SET statement_timeout = '100ms'"), fe.parse('', 'COMMIT'), fe.bind('', ''), fe.execute(), fe.query('SELECT 1'),
    PAUSE, fe.query('SELECT pg_sleep(0.5)'),
  ],
  'error in a Query-separated batch, the unnamed statement is used again after Sync': [
    ...failing, fe.query('SELECT 2'), fe.sync(), fe.bind('', ''), fe.execute(), fe.sync(), after,
  ],
};

t.test('extended-protocol errors skip to Sync through pgsplit as on a direct connection', async (t) => {
  const fx = await startProxy(t, { replicas: 1 });
  await (await fx.client()).query('CREATE TABLE skip_t (n int)');
  await fx.cluster.waitForReplication(15_000);
  await expectDirectAnswers(t, fx, streams);
});
