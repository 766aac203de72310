/**
 * A client's own startup parameters reach the server unchanged: client_encoding LATIN1 asked for by psql
 * (PGCLIENTENCODING) is the encoding the server speaks to it (pgsplit once appended
 * client_encoding=UTF8 after the client's parameters, and the server takes the last value).
 */
import t from 'tap';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { startProxy } from './fixtures/proxy-fixture.js';

t.setTimeout(120_000);
const run = promisify(execFile);

t.test('client_encoding from the startup packet is kept', async (t) => {
  const fx = await startProxy(t, { replicas: 1 });
  const bin = path.join((await run('pg_config', ['--bindir'])).stdout.trim(), 'psql');
  for (const tagged of [false, true]) {
    const env = fx.env({ PGCLIENTENCODING: 'LATIN1', ...(tagged ? { PGOPTIONS: '-c pgsplit.route=replica' } : {}) });
    const { stdout } = await run(bin, ['-X', '-At', '-c', 'SHOW client_encoding', '-c', "SELECT encode(convert_to(chr(233), 'LATIN1'), 'hex')", '-c', 'SELECT pg_is_in_recovery()'], { env });
    t.same(stdout.trim().split('\n'), ['LATIN1', 'e9', String(tagged ? 't' : 'f')], `psql with PGCLIENTENCODING=LATIN1 (${tagged ? 'tagged: replica' : 'primary'})`);
    // The text itself comes back in LATIN1: one byte for é.
    const raw = await run(bin, ['-X', '-At', '-c', 'SELECT chr(233)'], { env, encoding: 'buffer' });
    t.same([...(raw.stdout as unknown as Buffer)], [0xe9, 0x0a], 'é arrives as the single LATIN1 byte e9');
  }
});
