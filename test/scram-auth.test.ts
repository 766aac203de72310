import t from 'tap';
import * as crypto from 'node:crypto';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import net from 'node:net';
import pg from 'pg';
import {
  makeScramVerifier,
  parseScramVerifier,
  ScramClientSession,
  ScramError,
  ScramServerSession,
  ScramVerifierMismatch,
} from '../src/auth/scram.js';

// ---------------------------------------------------------------------------------------------------
// An independent implementation of the RFC 5802 formulas, written straight from the RFC (Hi() as an
// explicit HMAC loop rather than pbkdf2), used to check the module's output.

function hmac(key: Buffer, data: string | Buffer): Buffer {
  return crypto.createHmac('sha256', key).update(data).digest();
}
function sha256(data: Buffer): Buffer {
  return crypto.createHash('sha256').update(data).digest();
}
/** RFC 5802 section 2.2: Hi(str, salt, i) = U1 XOR U2 XOR ... XOR Ui, U1 = HMAC(str, salt + INT(1)). */
function rfcHi(password: string, salt: Buffer, iterations: number): Buffer {
  let u = hmac(Buffer.from(password, 'utf8'), Buffer.concat([salt, Buffer.from([0, 0, 0, 1])]));
  const out = Buffer.from(u);
  for (let i = 1; i < iterations; i++) {
    u = hmac(Buffer.from(password, 'utf8'), u);
    for (let j = 0; j < out.length; j++) out[j] = (out[j] ?? 0) ^ (u[j] ?? 0);
  }
  return out;
}
function rfcKeys(password: string, salt: Buffer, iterations: number) {
  const salted = rfcHi(password, salt, iterations);
  const clientKey = hmac(salted, 'Client Key');
  return { clientKey, storedKey: sha256(clientKey), serverKey: hmac(salted, 'Server Key') };
}
function rfcProof(password: string, salt: Buffer, iterations: number, authMessage: string) {
  const { clientKey, storedKey, serverKey } = rfcKeys(password, salt, iterations);
  const sig = hmac(storedKey, authMessage);
  const proof = Buffer.from(clientKey.map((b, i) => b ^ (sig[i] ?? 0)));
  return { proof: proof.toString('base64'), serverSignature: hmac(serverKey, authMessage).toString('base64') };
}
/** Parse "a=x,b=y" into a map (test helper). */
function attrs(msg: string): Map<string, string> {
  return new Map(msg.split(',').map((p) => [p.slice(0, 1), p.slice(2)] as [string, string]));
}

/** Run a full exchange between our client and our server. */
function exchange(server: ScramServerSession, client: ScramClientSession) {
  const { mechanism, clientFirst } = client.start(server.mechanisms());
  const serverFirst = server.handleClientFirst(mechanism, clientFirst);
  const clientFinal = client.handleServerFirst(serverFirst);
  return { clientFirst, serverFirst, clientFinal, result: server.handleClientFinal(clientFinal) };
}

// A verifier produced by a real PostgreSQL 15.18 server (`initdb --auth=scram-sha-256` with password
// 'secret', then `SELECT rolpassword FROM pg_authid WHERE rolname = 'postgres'`).
const PG15_VERIFIER_SECRET =
  'SCRAM-SHA-256$4096:bvwAYdI2rBI52U7juE+JtA==$nLQIK2utouFWm/r/jAQW+zJBtMCe88Yrwi2g+PdMpNI=:ikLW05yInAtFpRnyL6yiYDe53Btv7qrQrGkvW6vcd/8=';

// ---------------------------------------------------------------------------------------------------

t.test('makeScramVerifier with a fixed salt matches the RFC 5802 formula', async (t) => {
  const salt = Buffer.from('0123456789abcdef0123456789abcdef', 'hex');
  const { storedKey, serverKey } = rfcKeys('correct horse', salt, 4096);
  const expected = `SCRAM-SHA-256$4096:${salt.toString('base64')}$${storedKey.toString('base64')}:${serverKey.toString('base64')}`;
  t.equal(makeScramVerifier('correct horse', { salt, iterations: 4096 }), expected);
  // Default iteration count is 4096, and a different iteration count changes the keys.
  t.equal(makeScramVerifier('correct horse', { salt }), expected);
  const k7 = rfcKeys('correct horse', salt, 7);
  t.equal(
    makeScramVerifier('correct horse', { salt, iterations: 7 }),
    `SCRAM-SHA-256$7:${salt.toString('base64')}$${k7.storedKey.toString('base64')}:${k7.serverKey.toString('base64')}`,
  );
  // Random salt by default: 16 bytes, different each time.
  const a = parseScramVerifier(makeScramVerifier('x'));
  const b = parseScramVerifier(makeScramVerifier('x'));
  t.equal(a?.salt.length, 16);
  t.equal(a?.iterations, 4096);
  t.not(a?.salt.toString('hex'), b?.salt.toString('hex'));
  t.throws(() => makeScramVerifier('x', { iterations: 0 }), ScramError);
  t.throws(() => makeScramVerifier('x', { salt: Buffer.alloc(0) }), ScramError);
});

t.test('a verifier made by PostgreSQL 15 parses and is reproduced exactly', async (t) => {
  const v = parseScramVerifier(PG15_VERIFIER_SECRET);
  t.ok(v);
  if (v === null) return;
  t.equal(v.iterations, 4096);
  t.equal(v.salt.toString('base64'), 'bvwAYdI2rBI52U7juE+JtA==');
  t.equal(v.storedKey.length, 32);
  t.equal(v.serverKey.length, 32);
  const keys = rfcKeys('secret', v.salt, v.iterations);
  t.ok(keys.storedKey.equals(v.storedKey), 'StoredKey matches the RFC formula');
  t.ok(keys.serverKey.equals(v.serverKey), 'ServerKey matches the RFC formula');
  t.equal(makeScramVerifier('secret', { salt: v.salt, iterations: 4096 }), PG15_VERIFIER_SECRET);
});

t.test('parseScramVerifier rejects what is not a verifier', async (t) => {
  const good = makeScramVerifier('pw', { salt: Buffer.from('saltsaltsaltsalt') });
  t.ok(parseScramVerifier(good));
  for (const bad of [
    '',
    'secret',
    'md5' + '0'.repeat(32),
    good.replace('SCRAM-SHA-256$', 'SCRAM-SHA-1$'),
    good.replace('$4096:', '$0:'),
    good.replace('$4096:', '$-1:'),
    good.replace('$4096:', '$abc:'),
    good + 'x',
    good + '$',
    good.slice(0, -4), // truncated ServerKey
    good.replace(/\$[^$:]+:/, '$!!!!:'), // bad base64 salt
    good.replace(/\$4096:[^$]+\$/, '$4096:$'), // empty salt
    good.replace(/:[^$:]+$/, ':QUFB'), // ServerKey too short
    good.replace(/\$[^$:]+:([^$:]+)$/, '$QUFB:$1'), // StoredKey too short
  ]) {
    t.equal(parseScramVerifier(bad), null, `rejects ${JSON.stringify(bad.slice(0, 40))}`);
  }
});

t.test('round trip: our client against our server', async (t) => {
  t.test('plaintext secret, right password', async (t) => {
    const server = new ScramServerSession('hunter2');
    t.same(server.mechanisms(), ['SCRAM-SHA-256']);
    const client = new ScramClientSession('hunter2');
    const { clientFirst, serverFirst, clientFinal, result } = exchange(server, client);
    t.match(clientFirst, /^n,,n=,r=[A-Za-z0-9+/]{24}$/, 'gs2 header n,,, empty user name, 18-byte base64 nonce');
    t.match(serverFirst, /^r=[A-Za-z0-9+/]{48},s=[A-Za-z0-9+/]{22}==,i=4096$/);
    t.match(clientFinal, /^c=biws,r=[A-Za-z0-9+/]{48},p=[A-Za-z0-9+/]{43}=$/);
    t.equal(result.ok, true);
    if (!result.ok) return;
    t.match(result.serverFinal, /^v=[A-Za-z0-9+/]{43}=$/);
    t.doesNotThrow(() => client.handleServerFinal(result.serverFinal), 'client verifies the server signature');
  });

  t.test('stored verifier, right password', async (t) => {
    const server = new ScramServerSession(makeScramVerifier('hunter2', { iterations: 1000 }));
    const client = new ScramClientSession('hunter2');
    const { serverFirst, result } = exchange(server, client);
    t.match(serverFirst, /,i=1000$/, 'the verifier iteration count is advertised');
    t.equal(result.ok, true);
    if (result.ok) client.handleServerFinal(result.serverFinal);
  });

  t.test('PostgreSQL-made verifier, right password', async (t) => {
    const server = new ScramServerSession(PG15_VERIFIER_SECRET);
    const client = new ScramClientSession('secret');
    const { serverFirst, result } = exchange(server, client);
    t.match(serverFirst, /,s=bvwAYdI2rBI52U7juE\+JtA==,i=4096$/);
    t.equal(result.ok, true);
    if (result.ok) client.handleServerFinal(result.serverFinal);
  });

  t.test('wrong password fails (plaintext and stored secret)', async (t) => {
    t.same(exchange(new ScramServerSession('hunter2'), new ScramClientSession('hunter3')).result, { ok: false });
    t.same(exchange(new ScramServerSession(makeScramVerifier('hunter2')), new ScramClientSession('Hunter2')).result, {
      ok: false,
    });
    t.same(exchange(new ScramServerSession(PG15_VERIFIER_SECRET), new ScramClientSession('secret ')).result, { ok: false });
  });

  t.test('unknown user (null secret) runs the exchange and fails', async (t) => {
    const server = new ScramServerSession(null);
    const { serverFirst, result } = exchange(server, new ScramClientSession(''));
    t.match(serverFirst, /^r=[^,]+,s=[A-Za-z0-9+/]{22}==,i=4096$/, 'looks like a normal server-first-message');
    t.same(result, { ok: false });
    t.same(exchange(new ScramServerSession(null), new ScramClientSession('anything')).result, { ok: false });
  });

  t.test('unusable secrets fail like an unknown user', async (t) => {
    t.same(exchange(new ScramServerSession(''), new ScramClientSession('')).result, { ok: false }, 'empty password');
    const md5 = 'md5' + crypto.createHash('md5').update('pwuser').digest('hex');
    t.same(exchange(new ScramServerSession(md5), new ScramClientSession(md5)).result, { ok: false }, 'md5 hash');
  });

  t.test('non-ASCII password is used as UTF-8 bytes', async (t) => {
    const pw = 'pässwörd-密码';
    const salt = Buffer.from('fedcba9876543210');
    const { storedKey, serverKey } = rfcKeys(pw, salt, 4096);
    t.equal(
      makeScramVerifier(pw, { salt }),
      `SCRAM-SHA-256$4096:${salt.toString('base64')}$${storedKey.toString('base64')}:${serverKey.toString('base64')}`,
    );
    t.equal(exchange(new ScramServerSession(pw), new ScramClientSession(pw)).result.ok, true);
  });
});

t.test('client-final-message is exactly what the RFC formula gives', async (t) => {
  const salt = Buffer.from('a salt of sorts!');
  const server = new ScramServerSession(makeScramVerifier('pencil', { salt, iterations: 4096 }));
  const client = new ScramClientSession('pencil');
  const { clientFirst, serverFirst, clientFinal, result } = exchange(server, client);
  const bare = clientFirst.slice(3);
  const withoutProof = `c=biws,r=${attrs(serverFirst).get('r')}`;
  const { proof, serverSignature } = rfcProof('pencil', salt, 4096, `${bare},${serverFirst},${withoutProof}`);
  t.equal(clientFinal, `${withoutProof},p=${proof}`);
  // The ClientKey recovered from the proof is the client's own (what SCRAM pass-through logs in with).
  t.same(result, { ok: true, serverFinal: `v=${serverSignature}`, clientKey: rfcKeys('pencil', salt, 4096).clientKey });
});

t.test('RFC 7677 test vector (server side, nonces pinned via mocked randomBytes)', async (t) => {
  const serverNonceSuffix = '%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0';
  const mod = await t.mockImport<typeof import('../src/auth/scram.js')>('../src/auth/scram.js', {
    'node:crypto': {
      ...crypto,
      randomBytes: (n: number) =>
        n === 18 ? ({ toString: () => serverNonceSuffix } as unknown as Buffer) : crypto.randomBytes(n),
    },
  });
  const verifier = mod.makeScramVerifier('pencil', { salt: Buffer.from('W22ZaJ0SNY7soEsUEjb6gQ==', 'base64'), iterations: 4096 });
  const server = new mod.ScramServerSession(verifier);
  const serverFirst = server.handleClientFirst('SCRAM-SHA-256', 'n,,n=user,r=rOprNGfwEbeRWgbNEkqO');
  t.equal(serverFirst, 'r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096');
  const result = server.handleClientFinal(
    'c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=',
  );
  t.same(result, {
    ok: true, serverFinal: 'v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=',
    clientKey: rfcKeys('pencil', Buffer.from('W22ZaJ0SNY7soEsUEjb6gQ==', 'base64'), 4096).clientKey,
  });
});

t.test('SCRAM pass-through: the ClientKey of one login logs in to a server holding the same verifier', async (t) => {
  const verifier = makeScramVerifier('pass-through pw', { iterations: 4096 });
  const v = parseScramVerifier(verifier);
  if (v === null) throw new Error('verifier did not parse');
  // The client's login to pgsplit, against the verifier in users:.
  const first = exchange(new ScramServerSession(verifier), new ScramClientSession('pass-through pw')).result;
  if (!first.ok) throw new Error('the client login failed');
  const keys = { clientKey: first.clientKey, serverKey: v.serverKey, salt: v.salt, iterations: v.iterations };
  // pgsplit's login to a server with that same verifier: accepted, and the server's signature checks out.
  const client = new ScramClientSession(keys);
  const second = exchange(new ScramServerSession(verifier), client).result;
  t.equal(second.ok, true, 'the server accepts the proof made from the ClientKey');
  if (second.ok) t.doesNotThrow(() => client.handleServerFinal(second.serverFinal), 'and pgsplit accepts the server signature');
  // A server whose verifier for the role has another salt: refused before any proof is sent.
  const other = new ScramServerSession(makeScramVerifier('pass-through pw', { iterations: 4096 }));
  const c2 = new ScramClientSession(keys);
  const serverFirst = other.handleClientFirst('SCRAM-SHA-256', c2.start(['SCRAM-SHA-256']).clientFirst);
  t.throws(() => c2.handleServerFirst(serverFirst), ScramVerifierMismatch, 'another salt: ScramVerifierMismatch');
  // A wrong ClientKey (a client that did not prove the password) is refused by the server.
  const wrong = exchange(new ScramServerSession(verifier), new ScramClientSession({ ...keys, clientKey: Buffer.alloc(32, 7) })).result;
  t.same(wrong, { ok: false }, 'a made-up ClientKey does not log in');
});

t.test('tampering and malformed input', async (t) => {
  const start = (secret: string | null = 'pw') => {
    const server = new ScramServerSession(secret);
    const client = new ScramClientSession('pw');
    const { mechanism, clientFirst } = client.start(server.mechanisms());
    const serverFirst = server.handleClientFirst(mechanism, clientFirst);
    return { server, client, clientFirst, serverFirst, clientFinal: client.handleServerFirst(serverFirst) };
  };

  t.test('server rejects a tampered nonce in client-final', async (t) => {
    const { server, clientFinal } = start();
    const tampered = clientFinal.replace(/,r=([^,]+),/, (_m, r: string) => `,r=${r.slice(0, -1)}${r.endsWith('A') ? 'B' : 'A'},`);
    t.not(tampered, clientFinal);
    t.throws(() => server.handleClientFinal(tampered), ScramError);
  });

  t.test('server rejects a client-final nonce that is only the client part', async (t) => {
    const { server, clientFirst, clientFinal } = start();
    const clientNonce = attrs(clientFirst.slice(3)).get('r') ?? '';
    t.throws(() => server.handleClientFinal(clientFinal.replace(/,r=[^,]+,/, `,r=${clientNonce},`)), ScramError);
  });

  t.test('a tampered proof fails authentication', async (t) => {
    const { server, clientFinal } = start();
    const p = attrs(clientFinal).get('p') ?? '';
    const bytes = Buffer.from(p, 'base64');
    bytes[0] = (bytes[0] ?? 0) ^ 1;
    t.same(server.handleClientFinal(clientFinal.replace(`p=${p}`, `p=${bytes.toString('base64')}`)), { ok: false });
  });

  t.test('malformed client-final messages throw', async (t) => {
    const cases: Array<[string, (f: string) => string]> = [
      ['wrong channel binding', (f) => f.replace('c=biws', 'c=eSws')],
      ['channel binding not base64', (f) => f.replace('c=biws', 'c=b!ws')],
      ['missing proof', (f) => f.replace(/,p=.*$/, '')],
      ['proof not base64', (f) => f.replace(/,p=.*$/, ',p=***')],
      ['short proof', (f) => f.replace(/,p=.*$/, ',p=QUFB')],
      ['attributes out of order', (f) => f.replace(/^c=biws,(r=[^,]+)/, '$1,c=biws')],
      ['garbage', () => 'hello'],
      ['empty', () => ''],
    ];
    for (const [name, mutate] of cases) {
      const { server, clientFinal } = start();
      t.throws(() => server.handleClientFinal(mutate(clientFinal)), ScramError, name);
    }
    // Extensions between nonce and proof are allowed and covered by the signature.
    const { server, client, clientFinal } = start();
    t.equal(server.handleClientFinal(clientFinal.replace(',p=', ',x=ext,p=')).ok, false, 'extension changes AuthMessage');
    void client;
  });

  t.test('malformed client-first messages throw', async (t) => {
    const cases: Array<[string, string, string]> = [
      ['unknown mechanism', 'SCRAM-SHA-1', 'n,,n=,r=abc'],
      ['PLUS not offered', 'SCRAM-SHA-256-PLUS', 'p=tls-server-end-point,,n=,r=abc'],
      ['p flag with plain mechanism', 'SCRAM-SHA-256', 'p=tls-server-end-point,,n=,r=abc'],
      ['authzid', 'SCRAM-SHA-256', 'n,a=bob,n=,r=abc'],
      ['mandatory extension', 'SCRAM-SHA-256', 'n,,m=ext,n=,r=abc'],
      ['bad flag', 'SCRAM-SHA-256', 'x,,n=,r=abc'],
      ['no gs2 header', 'SCRAM-SHA-256', 'n=,r=abc'],
      ['missing nonce', 'SCRAM-SHA-256', 'n,,n='],
      ['empty nonce', 'SCRAM-SHA-256', 'n,,n=,r='],
      ['non-printable nonce', 'SCRAM-SHA-256', 'n,,n=,r=ab\u0001c'],
      ['nonce before user', 'SCRAM-SHA-256', 'n,,r=abc,n='],
    ];
    for (const [name, mech, first] of cases) {
      t.throws(() => new ScramServerSession('pw').handleClientFirst(mech, first), ScramError, name);
    }
    // The user name is ignored, whatever it says.
    t.match(new ScramServerSession('pw').handleClientFirst('SCRAM-SHA-256', 'n,,n=alice,r=abc'), /^r=abc/);
    t.match(new ScramServerSession('pw').handleClientFirst('SCRAM-SHA-256', 'y,,n=*,r=abc,z=ext'), /^r=abc/);
  });

  t.test('server enforces message order', async (t) => {
    t.throws(() => new ScramServerSession('pw').handleClientFinal('c=biws,r=x,p=x'), ScramError);
    const { server, clientFinal } = start();
    t.equal(server.handleClientFinal(clientFinal).ok, true);
    t.throws(() => server.handleClientFinal(clientFinal), ScramError, 'no replay on the same session');
    t.throws(() => server.handleClientFirst('SCRAM-SHA-256', 'n,,n=,r=abc'), ScramError);
  });

  t.test('client rejects a bad server-first-message', async (t) => {
    const mk = () => {
      const c = new ScramClientSession('pw');
      const nonce = attrs(c.start(['SCRAM-SHA-256']).clientFirst.slice(3)).get('r') ?? '';
      return { c, nonce };
    };
    const cases: Array<[string, (n: string) => string]> = [
      ['nonce not extending client nonce', () => 'r=somethingelse,s=QUFBQQ==,i=4096'],
      ['nonce equal to client nonce', (n) => `r=${n},s=QUFBQQ==,i=4096`],
      ['iteration count 0', (n) => `r=${n}xyz,s=QUFBQQ==,i=0`],
      ['iteration count negative', (n) => `r=${n}xyz,s=QUFBQQ==,i=-5`],
      ['iteration count not a number', (n) => `r=${n}xyz,s=QUFBQQ==,i=4k`],
      ['salt not base64', (n) => `r=${n}xyz,s=QUF!QQ==,i=4096`],
      ['salt empty', (n) => `r=${n}xyz,s=,i=4096`],
      ['missing iteration', (n) => `r=${n}xyz,s=QUFBQQ==`],
      ['mandatory extension', (n) => `m=x,r=${n}xyz,s=QUFBQQ==,i=4096`],
      ['garbage', () => 'nonsense'],
    ];
    for (const [name, msg] of cases) {
      const { c, nonce } = mk();
      t.throws(() => c.handleServerFirst(msg(nonce)), ScramError, name);
    }
    const { c, nonce } = mk();
    t.match(c.handleServerFirst(`r=${nonce}xyz,s=QUFBQQ==,i=1`), /^c=biws,r=/, 'i=1 is accepted');
  });

  t.test('client rejects a wrong or failing server-final-message', async (t) => {
    const run = (mutate: (serverFinal: string) => string) => {
      const { server, client, clientFinal } = start();
      const res = server.handleClientFinal(clientFinal);
      if (!res.ok) throw new Error('expected success');
      return () => client.handleServerFinal(mutate(res.serverFinal));
    };
    t.doesNotThrow(run((f) => f));
    t.throws(
      run((f) => {
        const sig = Buffer.from(f.slice(2), 'base64');
        sig[5] = (sig[5] ?? 0) ^ 0x80;
        return `v=${sig.toString('base64')}`;
      }),
      ScramError,
      'wrong signature',
    );
    t.throws(run(() => 'e=invalid-proof'), /invalid-proof/, 'e= attribute');
    t.throws(run(() => 'e=other-error'), ScramError);
    t.throws(run((f) => f.slice(0, -4)), ScramError, 'truncated signature');
    t.throws(run(() => 'v=***'), ScramError, 'non-base64 signature');
    t.throws(run(() => ''), ScramError, 'empty');
    // A server-final from a different exchange (same password) does not verify.
    const other = start();
    const otherRes = other.server.handleClientFinal(other.clientFinal);
    t.throws(run(() => (otherRes.ok ? otherRes.serverFinal : '')), ScramError, 'signature from another session');
  });

  t.test('client mechanism selection and ordering', async (t) => {
    t.throws(() => new ScramClientSession('pw').start(['SCRAM-SHA-256-PLUS']), ScramError);
    t.throws(() => new ScramClientSession('pw').start([]), ScramError);
    t.throws(() => new ScramClientSession('pw').start(['MD5']), ScramError);
    const c = new ScramClientSession('pw');
    t.same(c.start(['SCRAM-SHA-256-PLUS', 'SCRAM-SHA-256']).mechanism, 'SCRAM-SHA-256');
    t.throws(() => c.start(['SCRAM-SHA-256']), ScramError, 'cannot start twice');
    t.throws(() => new ScramClientSession('pw').handleServerFirst('r=a,s=QUFBQQ==,i=1'), ScramError);
    t.throws(() => new ScramClientSession('pw').handleServerFinal('v=QUFBQQ=='), ScramError);
  });
});

t.test('channel binding (tls-server-end-point) on the server side', async (t) => {
  const cb = crypto.randomBytes(32);
  const salt = Buffer.from('0000111122223333');
  const verifier = makeScramVerifier('pw', { salt, iterations: 4096 });

  t.same(new ScramServerSession('pw', { channelBinding: cb }).mechanisms(), ['SCRAM-SHA-256-PLUS', 'SCRAM-SHA-256']);

  const plus = (cbData: Buffer, password = 'pw') => {
    const server = new ScramServerSession(verifier, { channelBinding: cb });
    const gs2 = 'p=tls-server-end-point,,';
    const bare = 'n=,r=clientnonce';
    const serverFirst = server.handleClientFirst('SCRAM-SHA-256-PLUS', gs2 + bare);
    const withoutProof = `c=${Buffer.concat([Buffer.from(gs2), cbData]).toString('base64')},r=${attrs(serverFirst).get('r')}`;
    const { proof, serverSignature } = rfcProof(password, salt, 4096, `${bare},${serverFirst},${withoutProof}`);
    return { run: () => server.handleClientFinal(`${withoutProof},p=${proof}`), serverSignature };
  };
  const good = plus(cb);
  t.same(good.run(), { ok: true, serverFinal: `v=${good.serverSignature}`, clientKey: rfcKeys('pw', salt, 4096).clientKey });
  t.same(plus(cb, 'wrong').run(), { ok: false });
  t.throws(plus(crypto.randomBytes(32)).run, ScramError, 'wrong channel binding data');

  const s = () => new ScramServerSession(verifier, { channelBinding: cb });
  t.throws(() => s().handleClientFirst('SCRAM-SHA-256', 'y,,n=,r=abc'), ScramError, "'y' when binding was offered is a downgrade");
  t.throws(() => s().handleClientFirst('SCRAM-SHA-256-PLUS', 'n,,n=,r=abc'), ScramError, 'PLUS without binding data');
  t.throws(() => s().handleClientFirst('SCRAM-SHA-256-PLUS', 'p=tls-unique,,n=,r=abc'), ScramError, 'other binding type');
  // A client that does not bind at all may still use plain SCRAM-SHA-256 on a binding-capable server.
  t.equal(exchange(s(), new ScramClientSession('pw')).result.ok, true);
});

// ---------------------------------------------------------------------------------------------------
// Interop with the `pg` client library's own SCRAM implementation (pg/lib/crypto/sasl.js).

interface PgSaslSession {
  mechanism: string;
  response: string;
  message: string;
}
interface PgSasl {
  startSession(mechanisms: string[], stream?: unknown): PgSaslSession;
  continueSession(session: PgSaslSession, password: string, serverData: string, stream?: unknown): Promise<void>;
  finalizeSession(session: PgSaslSession, serverData: string): void;
}
const require = createRequire(import.meta.url);
const pgSasl = require('pg/lib/crypto/sasl.js') as PgSasl;

async function pgExchange(server: ScramServerSession, password: string, stream?: unknown) {
  const session = pgSasl.startSession(server.mechanisms(), stream);
  const serverFirst = server.handleClientFirst(session.mechanism, session.response);
  await pgSasl.continueSession(session, password, serverFirst, stream);
  const result = server.handleClientFinal(session.response);
  return { session, result };
}

t.test("pg's SASL client against ScramServerSession", async (t) => {
  t.test('right password (plaintext, stored, PostgreSQL-made)', async (t) => {
    for (const [secret, password] of [
      ['s3cret!', 's3cret!'],
      [makeScramVerifier('s3cret!'), 's3cret!'],
      [PG15_VERIFIER_SECRET, 'secret'],
    ] as const) {
      const { session, result } = await pgExchange(new ScramServerSession(secret), password);
      t.equal(session.mechanism, 'SCRAM-SHA-256');
      t.match(session.response, /^c=biws,/);
      t.equal(result.ok, true);
      if (result.ok) t.doesNotThrow(() => pgSasl.finalizeSession(session, result.serverFinal), 'pg verifies our server signature');
    }
  });

  t.test('wrong password and unknown user', async (t) => {
    t.same((await pgExchange(new ScramServerSession('s3cret!'), 's3cret?')).result, { ok: false });
    t.same((await pgExchange(new ScramServerSession(PG15_VERIFIER_SECRET), 'Secret')).result, { ok: false });
    t.same((await pgExchange(new ScramServerSession(null), 'whatever')).result, { ok: false });
  });

  t.test("client that could bind but was not offered PLUS sends 'y'", async (t) => {
    const stream = {}; // pg only checks that a stream is present to choose 'y'
    const { session, result } = await pgExchange(new ScramServerSession('pw'), 'pw', stream);
    t.match(session.response, /^c=eSws,/, "base64('y,,')");
    t.equal(result.ok, true);
    if (result.ok) pgSasl.finalizeSession(session, result.serverFinal);
  });

  t.test('SCRAM-SHA-256-PLUS with tls-server-end-point', async (t) => {
    // A throwaway self-signed certificate (ecdsa-with-SHA256, so the end-point hash is SHA-256).
    const pem = `-----BEGIN CERTIFICATE-----
MIIBhTCCASugAwIBAgIUBpeWjL2OWWVvazOSYnEPovwJ1tEwCgYIKoZIzj0EAwIw
FzEVMBMGA1UEAwwMcGdzcGxpdC10ZXN0MCAXDTI2MTEyNTEzMTkyNloYDzIxMjYx
MTAxMTMxOTI2WjAXMRUwEwYDVQQDDAxwZ3NwbGl0LXRlc3QwWTATBgcqhkjOPQIB
BggqhkjOPQMBBwNCAATEBtTUdyh4C1szC9r2k3bm64lM1JPpt9nat9j3P2qXjUco
XW/yEjGz7mxKfbszwgGV81qfY5kyxkDEkxQZgrJ0o1MwUTAdBgNVHQ4EFgQUVkfV
5Qqq3fxX3m0IQlUVVC46vZowHwYDVR0jBBgwFoAUVkfV5Qqq3fxX3m0IQlUVVC46
vZowDwYDVR0TAQH/BAUwAwEB/zAKBggqhkjOPQQDAgNIADBFAiEAktFFYB8JnPqL
QDOvxR22+ce1EEv9231gEkI0MCi8PnQCIG0P161QdNkNNTFucR8JG3gVUKXQJdOc
9LMz45q9vuIR
-----END CERTIFICATE-----`;
    const der = new crypto.X509Certificate(pem).raw;
    const stream = { getPeerCertificate: () => ({ raw: der }) };
    const server = new ScramServerSession(makeScramVerifier('pw'), { channelBinding: sha256(der) });
    const { session, result } = await pgExchange(server, 'pw', stream);
    t.equal(session.mechanism, 'SCRAM-SHA-256-PLUS');
    t.equal(result.ok, true);
    if (result.ok) pgSasl.finalizeSession(session, result.serverFinal);
    // Binding data for another certificate is rejected.
    const other = new ScramServerSession(makeScramVerifier('pw'), { channelBinding: sha256(Buffer.from('other')) });
    await t.rejects(pgExchange(other, 'pw', stream), ScramError);
  });
});

// ---------------------------------------------------------------------------------------------------
// Interop over the wire: a minimal fake PostgreSQL server whose authentication is ScramServerSession,
// and real clients (pg.Client, and libpq's psql when installed) connecting to it.

function pgMessage(type: string, body: Buffer): Buffer {
  const header = Buffer.alloc(5);
  header.write(type, 0, 'latin1');
  header.writeInt32BE(body.length + 4, 1);
  return Buffer.concat([header, body]);
}
function cstr(s: string): Buffer {
  return Buffer.from(s + '\0', 'utf8');
}
function int32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeInt32BE(n);
  return b;
}
function int16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeInt16BE(n);
  return b;
}
function errorResponse(code: string, message: string): Buffer {
  return pgMessage('E', Buffer.concat([cstr('SFATAL'), cstr('VFATAL'), cstr('C' + code), cstr('M' + message), Buffer.from([0])]));
}

interface FakeServer {
  port: number;
  outcomes: string[];
  close(): Promise<void>;
}

/** Serves SCRAM authentication for users in `secrets`, then answers any query with one row "1". */
async function startFakeServer(secrets: Record<string, string>): Promise<FakeServer> {
  const outcomes: string[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((sock) => {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    sock.on('error', () => {});
    let buf = Buffer.alloc(0);
    let started = false;
    let scram: ScramServerSession | undefined;
    let step: 'first' | 'final' | 'ready' = 'first';
    const fail = (code: string, msg: string, outcome: string) => {
      outcomes.push(outcome);
      sock.end(errorResponse(code, msg));
    };
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      for (;;) {
        if (!started) {
          if (buf.length < 8) return;
          const len = buf.readInt32BE(0);
          if (buf.length < len) return;
          const code = buf.readInt32BE(4);
          const body = buf.subarray(8, len);
          buf = buf.subarray(len);
          if (code === 80877103 || code === 80877104) {
            sock.write('N'); // no SSL / GSS encryption
            continue;
          }
          started = true;
          const parts = body.toString('utf8').split('\0');
          const user = parts[parts.indexOf('user') + 1] ?? '';
          scram = new ScramServerSession(Object.hasOwn(secrets, user) ? (secrets[user] ?? null) : null);
          const mechs = Buffer.concat([...scram.mechanisms().map(cstr), Buffer.from([0])]);
          sock.write(pgMessage('R', Buffer.concat([int32(10), mechs])));
          continue;
        }
        if (buf.length < 5) return;
        const len = buf.readInt32BE(1);
        if (buf.length < len + 1) return;
        const type = String.fromCharCode(buf[0] ?? 0);
        const body = buf.subarray(5, len + 1);
        buf = buf.subarray(len + 1);
        try {
          if (type === 'p' && step === 'first' && scram) {
            const nul = body.indexOf(0);
            const mechanism = body.subarray(0, nul).toString('utf8');
            const dataLen = body.readInt32BE(nul + 1);
            const data = body.subarray(nul + 5, nul + 5 + dataLen).toString('utf8');
            sock.write(pgMessage('R', Buffer.concat([int32(11), Buffer.from(scram.handleClientFirst(mechanism, data))])));
            step = 'final';
          } else if (type === 'p' && step === 'final' && scram) {
            const res = scram.handleClientFinal(body.toString('utf8'));
            if (!res.ok) return fail('28P01', 'password authentication failed', 'fail');
            outcomes.push('ok');
            step = 'ready';
            sock.write(
              Buffer.concat([
                pgMessage('R', Buffer.concat([int32(12), Buffer.from(res.serverFinal)])),
                pgMessage('R', int32(0)),
                pgMessage('S', Buffer.concat([cstr('server_version'), cstr('15.0')])),
                pgMessage('S', Buffer.concat([cstr('client_encoding'), cstr('UTF8')])),
                pgMessage('S', Buffer.concat([cstr('standard_conforming_strings'), cstr('on')])),
                pgMessage('K', Buffer.concat([int32(1), int32(2)])),
                pgMessage('Z', Buffer.from('I')),
              ]),
            );
          } else if (type === 'Q' && step === 'ready') {
            const field = Buffer.concat([cstr('x'), int32(0), int16(0), int32(25), int16(-1), int32(-1), int16(0)]);
            sock.write(
              Buffer.concat([
                pgMessage('T', Buffer.concat([int16(1), field])),
                pgMessage('D', Buffer.concat([int16(1), int32(1), Buffer.from('1')])),
                pgMessage('C', cstr('SELECT 1')),
                pgMessage('Z', Buffer.from('I')),
              ]),
            );
          } else if (type === 'X') {
            sock.end();
            return;
          } else {
            return fail('08P01', `unexpected message ${type}`, 'protocol');
          }
        } catch (err) {
          return fail('08P01', String(err), err instanceof ScramError ? 'scram-error' : 'error');
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

t.test('pg.Client over the wire against ScramServerSession', async (t) => {
  const fake = await startFakeServer({ alice: 'wonderland', bob: makeScramVerifier('builder'), pgu: PG15_VERIFIER_SECRET });
  t.teardown(() => fake.close());
  const connect = async (user: string, password: string) => {
    const client = new pg.Client({ host: '127.0.0.1', port: fake.port, user, password, database: 'db' });
    try {
      await client.connect();
      const res = await client.query('select 1');
      return res.rows[0]?.x as string;
    } finally {
      await client.end().catch(() => {});
    }
  };
  t.equal(await connect('alice', 'wonderland'), '1');
  t.equal(await connect('bob', 'builder'), '1');
  t.equal(await connect('pgu', 'secret'), '1');
  await t.rejects(connect('alice', 'wonderlands'), /password authentication failed/);
  await t.rejects(connect('nobody', 'wonderland'), /password authentication failed/);
  t.same(fake.outcomes, ['ok', 'ok', 'ok', 'fail', 'fail']);
});

const psqlBin = ['/usr/lib/postgresql/15/bin/psql', '/usr/bin/psql'].find((p) => existsSync(p));

t.test('libpq (psql) over the wire against ScramServerSession', { skip: psqlBin ? false : 'psql not installed' }, async (t) => {
  const fake = await startFakeServer({ carol: 'p@ss w0rd', dave: makeScramVerifier('dave-pw', { iterations: 10000 }) });
  t.teardown(() => fake.close());
  const psql = (user: string, password: string) =>
    new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      execFile(
        psqlBin as string,
        [`host=127.0.0.1 port=${fake.port} user=${user} dbname=db sslmode=disable gssencmode=disable connect_timeout=10`, '-X', '-Atc', 'select 1'],
        { env: { ...process.env, PGPASSWORD: password, PGCHANNELBINDING: 'disable' }, timeout: 20000 },
        (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
      );
    });
  const good = await psql('carol', 'p@ss w0rd');
  t.equal(good.code, 0, good.stderr);
  t.equal(good.stdout.trim(), '1');
  const stored = await psql('dave', 'dave-pw');
  t.equal(stored.code, 0, stored.stderr);
  const bad = await psql('carol', 'nope');
  t.not(bad.code, 0);
  t.match(bad.stderr, /password authentication failed/);
  const unknown = await psql('erin', 'p@ss w0rd');
  t.not(unknown.code, 0);
  t.same(fake.outcomes, ['ok', 'ok', 'fail', 'fail']);
});
