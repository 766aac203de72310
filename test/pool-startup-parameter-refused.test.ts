/**
 * Pooled connections log in with their client's startup parameters: a parameter the server refuses fails
 * that login only. The client that asked gets the server's FATAL, as from a direct connection; a client
 * of another login waiting in the same pool is never handed that failure, even when the client it was
 * opened for has left before the server answered.
 */
import net from 'node:net';
import t from 'tap';
import { startProxy } from './fixtures/proxy-fixture.js';

t.setTimeout(120_000);

/** A StartupMessage (protocol 3.0) with `params`. */
function startupPacket(params: Record<string, string>): Buffer {
  const body = Buffer.concat([
    Buffer.from([0, 3, 0, 0]),
    ...Object.entries(params).map(([k, v]) => Buffer.from(`${k}\0${v}\0`)),
    Buffer.from([0]),
  ]);
  const len = Buffer.alloc(4);
  len.writeInt32BE(body.length + 4);
  return Buffer.concat([len, body]);
}

t.test('a refused startup parameter fails its own login with the server\'s error; the pool serves the others', async (t) => {
  const fx = await startProxy(t, { replicas: 0, config: { pool: { mode: 'transaction', size: 1 } } });
  const good = await fx.client();
  const err = await fx.client({ options: '-c no_such_setting_here=1' }).then(() => null, (e: Error & { code?: string }) => e);
  t.match(err?.message ?? '', /no_such_setting_here/, 'the client gets the server\'s words');
  t.equal(err?.code, '42704', 'SQLSTATE 42704 (undefined object), as from a direct connection');
  t.same((await good.query('SELECT 1 AS one')).rows, [{ one: 1 }], 'a client of another login runs on');
  await good.end();
});

t.test('a client of another login never gets the failure of a login opened for a client that left', async (t) => {
  const fx = await startProxy(t, { replicas: 0, config: { pool: { mode: 'transaction', size: 2 } } });
  const holder = await fx.client({ applicationName: 'holder' });
  const waiter = await fx.client({ applicationName: 'waiter' });
  const failures: string[] = [];
  for (let round = 0; round < 50; round++) {
    // The holder keeps one of the two connections; the other is free for the refused login's attempt.
    await holder.query('BEGIN');
    await holder.query('SELECT 1');
    // A client whose startup parameter the server refuses, gone at once: pgsplit opens a connection for
    // it (the pool's last place) and the server's FATAL comes back after the client left.
    const gone = net.connect({ host: '127.0.0.1', port: fx.port }, () => {
      gone.end(startupPacket({ user: 'postgres', database: 'postgres', options: `-c no_such_setting_${round}=1` }));
    });
    gone.on('error', () => undefined);
    gone.resume();
    await new Promise((r) => gone.once('close', r));
    // Meanwhile the waiter's statement queues behind that attempt.
    const q = waiter.query('SELECT 2 AS two').then(() => null, (e: Error) => e.message);
    await holder.query('COMMIT');
    const failed = await q;
    if (failed !== null) failures.push(`round ${round}: ${failed}`);
  }
  t.same(failures, [], 'the waiting client ran every statement');
  await Promise.all([holder.end(), waiter.end()]);
});
