/**
 * A Terminate sent behind an extended batch that fails ends the session: PostgreSQL skips everything up
 * to the client's Sync after the error, but not a Terminate, which it obeys. pgsplit once dropped the
 * Terminate with the skipped messages when a tagged session's replica batch was ended by pgsplit's own
 * Sync (a Query bound for the primary followed it): it then answered the Sync behind the Terminate, ran
 * the Query after it, and kept the connection open for good (found by the protocol fuzzer). Each stream
 * gets through pgsplit, untagged and tagged, the answer of a direct connection, and the connection closes.
 */
import t from 'tap';
import { fe } from './fixtures/raw-pg-client.js';
import { startProxy } from './fixtures/proxy-fixture.js';
import { PAUSE, answerTo, expectDirectAnswers, type StreamPart } from './fixtures/stream-compare.js';

t.setTimeout(240_000);

const OPTIONS = '-c statement_timeout=5000';

/** The fuzzer's case: a Bind of an unnamed statement that does not exist (26000), then what the server skips. */
const failing = [fe.bind('', '', ['abc', 'def']), fe.parse('', 'SELECT pg_is_in_recovery()'), fe.describe('S', ''), fe.query('SELEC 1'), fe.execute()];
/** After the Terminate: never run (a Sync, a Query, a Flush). */
const behind = [fe.sync(), fe.query("SET application_name = 'fuzz'"), fe.flush()];

const terminating: Record<string, StreamPart[]> = {
  // The fuzzer's two writes: the first ends with the Sync behind the Terminate (byte 102 of 143).
  'cut after the Sync behind the Terminate': [...failing, fe.terminate(), fe.sync(), PAUSE, ...behind.slice(1)],
  'in one write': [...failing, fe.terminate(), ...behind],
  'cut before the Terminate': [...failing, PAUSE, fe.terminate(), ...behind],
  'cut after the Terminate': [...failing, fe.terminate(), PAUSE, ...behind],
};

t.test('a Terminate behind a failed batch closes the session as on a direct connection', async (t) => {
  const fx = await startProxy(t, { replicas: 1 });
  for (const [name, parts] of Object.entries(terminating)) {
    // Collected until the connection closes (atLeast: never quiet enough to stop earlier), or a bound.
    const direct = await answerTo(fx.cluster.primary.port, parts, { options: OPTIONS, atLeast: Infinity, maxMs: 15_000 });
    direct.client.close();
    t.equal(direct.closed, true, `${name}: the direct connection closes`);
    for (const options of [OPTIONS, `${OPTIONS} -c pgsplit.route=replica`]) {
      const who = options === OPTIONS ? 'untagged' : 'tagged';
      const a = await answerTo(fx.port, parts, { options, atLeast: Infinity, maxMs: 15_000 });
      a.client.close();
      t.same(a.messages, direct.messages, `${name}: ${who} session gets the direct answer`);
      t.equal(a.closed, true, `${name}: ${who} session closes`);
    }
  }

  // Without the Terminate the same messages are skipped up to the Sync, which is answered after the error.
  await expectDirectAnswers(t, fx, { 'the same stream without the Terminate': [...failing, ...behind] });
});
