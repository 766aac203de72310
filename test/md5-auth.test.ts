import t from 'tap';
import { createHash } from 'node:crypto';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import net from 'node:net';
import pg from 'pg';
import { md5HashResponse, md5PasswordResponse, md5StoredHash, md5Verify } from '../src/auth/md5.js';
import { makeScramVerifier } from '../src/auth/scram.js';

/** Computed here straight from the PostgreSQL docs, independently of the module. */
const md5hex = (data: string | Buffer) => createHash('md5').update(data).digest('hex');
const expectedResponse = (user: string, password: string, salt: Buffer) =>
  'md5' + md5hex(Buffer.concat([Buffer.from(md5hex(password + user)), salt]));

// Stored hash produced by a real PostgreSQL 15.18 server:
// SET password_encryption = 'md5'; CREATE ROLE bob LOGIN PASSWORD 'secret'; SELECT rolpassword FROM pg_authid ...
const PG15_MD5_BOB_SECRET = 'md521f3163f8f86fa10bdefbfbd502a8f06';

const salt = Buffer.from([0x01, 0x02, 0xfe, 0xff]);

t.test('known values', async (t) => {
  t.equal(md5StoredHash('bob', 'secret'), PG15_MD5_BOB_SECRET, 'matches a PostgreSQL-made stored hash');
  t.equal(md5StoredHash('postgres', 'pw'), 'md5' + md5hex('pwpostgres'));
  t.equal(md5PasswordResponse('postgres', 'pw', salt), expectedResponse('postgres', 'pw', salt));
  t.match(md5PasswordResponse('postgres', 'pw', salt), /^md5[0-9a-f]{32}$/);
  // A stored hash answers the challenge as the password does (how users[].password: md5... logs in to md5 servers).
  t.equal(md5HashResponse(PG15_MD5_BOB_SECRET, salt), expectedResponse('bob', 'secret', salt), 'a stored hash answers as its password');
  // Salted twice differently gives different responses; user name is part of the hash.
  t.not(md5PasswordResponse('postgres', 'pw', salt), md5PasswordResponse('postgres', 'pw', Buffer.from([1, 2, 3, 4])));
  t.not(md5StoredHash('alice', 'pw'), md5StoredHash('bob', 'pw'));
  // Non-ASCII user and password are hashed as UTF-8.
  t.equal(md5StoredHash('jürgen', 'paßwort'), 'md5' + md5hex(Buffer.from('paßwortjürgen', 'utf8')));
  t.equal(md5PasswordResponse('jürgen', 'paßwort', salt), expectedResponse('jürgen', 'paßwort', salt));
});

t.test("agrees with the pg client library's md5 implementation", async (t) => {
  const require = createRequire(import.meta.url);
  const utils = require('pg/lib/crypto/utils.js') as {
    postgresMd5PasswordHash(user: string, password: string, salt: Buffer): Promise<string>;
  };
  for (const [user, password] of [
    ['postgres', 'secret'],
    ['app_user', 'p@ss w0rd!'],
    ['jürgen', 'paßwort'],
  ] as const) {
    t.equal(md5PasswordResponse(user, password, salt), await utils.postgresMd5PasswordHash(user, password, salt), user);
  }
});

t.test('md5Verify', async (t) => {
  const response = md5PasswordResponse('bob', 'secret', salt);
  t.equal(md5Verify('bob', 'secret', salt, response), true, 'plaintext secret');
  t.equal(md5Verify('bob', PG15_MD5_BOB_SECRET, salt, response), true, 'stored hash (made by PostgreSQL)');
  t.equal(md5Verify('bob', md5StoredHash('bob', 'secret'), salt, response), true, 'stored hash (made by md5StoredHash)');

  t.equal(md5Verify('bob', 'secret', salt, md5PasswordResponse('bob', 'Secret', salt)), false, 'wrong password');
  t.equal(md5Verify('bob', PG15_MD5_BOB_SECRET, salt, md5PasswordResponse('bob', 'secrets', salt)), false, 'wrong password vs stored');
  t.equal(md5Verify('alice', 'secret', salt, response), false, 'response for another user');
  t.equal(md5Verify('bob', 'secret', Buffer.from([9, 9, 9, 9]), response), false, 'different salt (replay)');
  t.equal(md5Verify('bob', null, salt, response), false, 'unknown user');
  t.equal(md5Verify('bob', null, salt, ''), false, 'unknown user, empty response');
  t.equal(md5Verify('bob', 'secret', salt, ''), false, 'empty response');
  t.equal(md5Verify('bob', 'secret', salt, response.toUpperCase()), false, 'case matters');
  t.equal(md5Verify('bob', 'secret', salt, response + 'x'), false, 'longer response');
  t.equal(md5Verify('bob', 'secret', salt, 'secret'), false, 'plaintext password as response');
  t.equal(md5Verify('bob', '', salt, md5PasswordResponse('bob', '', salt)), false, 'empty password never matches');
  // A stored hash sent as the "password" is not accepted: the client must salt it.
  t.equal(md5Verify('bob', PG15_MD5_BOB_SECRET, salt, PG15_MD5_BOB_SECRET), false, 'unsalted hash');
  // A SCRAM verifier is not a usable md5 secret, and its text does not work as a password either.
  const verifier = makeScramVerifier('secret');
  t.equal(md5Verify('bob', verifier, salt, md5PasswordResponse('bob', verifier, salt)), false, 'SCRAM verifier');
  t.equal(md5Verify('bob', verifier, salt, response), false, 'SCRAM verifier vs right password');
});

// ---------------------------------------------------------------------------------------------------
// Over the wire: a minimal fake server doing AuthenticationMD5Password with md5Verify, and real clients.

function pgMessage(type: string, body: Buffer): Buffer {
  const header = Buffer.alloc(5);
  header.write(type, 0, 'latin1');
  header.writeInt32BE(body.length + 4, 1);
  return Buffer.concat([header, body]);
}
const cstr = (s: string) => Buffer.from(s + '\0', 'utf8');
const int32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeInt32BE(n);
  return b;
};

async function startFakeServer(secrets: Record<string, string>) {
  const outcomes: string[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((sock) => {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    sock.on('error', () => {});
    let buf = Buffer.alloc(0);
    let user: string | undefined;
    const challenge = Buffer.from([0x11, 0x22, 0x33, 0x44]);
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      for (;;) {
        if (user === undefined) {
          if (buf.length < 8 || buf.length < buf.readInt32BE(0)) return;
          const len = buf.readInt32BE(0);
          const code = buf.readInt32BE(4);
          const parts = buf.subarray(8, len).toString('utf8').split('\0');
          buf = buf.subarray(len);
          if (code === 80877103 || code === 80877104) {
            sock.write('N');
            continue;
          }
          user = parts[parts.indexOf('user') + 1] ?? '';
          sock.write(pgMessage('R', Buffer.concat([int32(5), challenge])));
          continue;
        }
        if (buf.length < 5 || buf.length < buf.readInt32BE(1) + 1) return;
        const len = buf.readInt32BE(1);
        const type = String.fromCharCode(buf[0] ?? 0);
        const body = buf.subarray(5, len + 1);
        buf = buf.subarray(len + 1);
        if (type === 'p') {
          const response = body.subarray(0, body.indexOf(0)).toString('utf8');
          const secret = Object.hasOwn(secrets, user) ? (secrets[user] ?? null) : null;
          if (md5Verify(user, secret, challenge, response)) {
            outcomes.push('ok');
            sock.write(
              Buffer.concat([
                pgMessage('R', int32(0)),
                pgMessage('S', Buffer.concat([cstr('server_version'), cstr('15.0')])),
                pgMessage('S', Buffer.concat([cstr('client_encoding'), cstr('UTF8')])),
                pgMessage('K', Buffer.concat([int32(1), int32(2)])),
                pgMessage('Z', Buffer.from('I')),
              ]),
            );
          } else {
            outcomes.push('fail');
            sock.end(
              pgMessage('E', Buffer.concat([cstr('SFATAL'), cstr('C28P01'), cstr('Mpassword authentication failed'), Buffer.from([0])])),
            );
            return;
          }
        } else if (type === 'Q') {
          sock.write(Buffer.concat([pgMessage('I', Buffer.alloc(0)), pgMessage('Z', Buffer.from('I'))]));
        } else {
          sock.end();
          return;
        }
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const addr = server.address();
  if (addr === null || typeof addr === 'string') throw new Error('no port');
  return {
    port: addr.port,
    outcomes,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

t.test('pg.Client and psql over the wire against md5Verify', async (t) => {
  const fake = await startFakeServer({ bob: PG15_MD5_BOB_SECRET, carol: 'c@rol pw' });
  t.teardown(() => fake.close());
  const connect = async (user: string, password: string) => {
    const client = new pg.Client({ host: '127.0.0.1', port: fake.port, user, password, database: 'db' });
    try {
      await client.connect();
      await client.query('');
      return true;
    } finally {
      await client.end().catch(() => {});
    }
  };
  t.equal(await connect('bob', 'secret'), true);
  t.equal(await connect('carol', 'c@rol pw'), true);
  await t.rejects(connect('bob', 'secret2'), /password authentication failed/);
  await t.rejects(connect('nobody', 'secret'), /password authentication failed/);
  const expected = ['ok', 'ok', 'fail', 'fail'];

  const psqlBin = ['/usr/lib/postgresql/15/bin/psql', '/usr/bin/psql'].find((p) => existsSync(p));
  if (psqlBin !== undefined) {
    const psql = (user: string, password: string) =>
      new Promise<number>((resolve) => {
        execFile(
          psqlBin,
          [`host=127.0.0.1 port=${fake.port} user=${user} dbname=db sslmode=disable gssencmode=disable connect_timeout=10`, '-X', '-c', ''],
          { env: { ...process.env, PGPASSWORD: password }, timeout: 20000 },
          (err) => resolve(err ? ((err as { code?: number }).code ?? 1) : 0),
        );
      });
    t.equal(await psql('bob', 'secret'), 0, 'libpq authenticates with md5');
    t.not(await psql('bob', 'wrong'), 0, 'libpq with a wrong password fails');
    expected.push('ok', 'fail');
  }
  t.same(fake.outcomes, expected);
});
