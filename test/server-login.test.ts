/**
 * The login decision of server-login.ts without a server: for each kind of users: entry and server URL,
 * as whom, with which kind of secret (named by its config key) and into which database a session logs in.
 */
import t from 'tap';
import { resolveConfig } from '../src/config/load-config.js';
import { loginTarget, sessionLogin } from '../src/server/server-login.js';
import { makeScramVerifier } from '../src/auth/scram.js';
import { md5StoredHash } from '../src/auth/md5.js';

const verifier = makeScramVerifier('bob-pw');
const config = resolveConfig({
  primary: 'postgres://db1/app',
  replicas: ['postgres://forced:f-pw@db2/app', 'postgres://mapped:m-pw@db3/app'],
  auth: { method: 'md5' },
  users: [
    { name: 'alice', password: 'alice-pw' },
    { name: 'bob', password: verifier },
    { name: 'carol', password: md5StoredHash('carol', 'carol-pw') },
    { name: 'dave', password: 'dave-pw', server_user: 'app', server_password: 'app-pw' },
    { name: 'erin', password: 'erin-pw', server_user: 'mapped' },
  ],
  databases: { app: 'app_prod' },
});
const [primary, forced, mapped] = [config.primary, ...config.replicas];
if (primary === undefined || forced === undefined || mapped === undefined) throw new Error('config');
const key = Buffer.alloc(32, 1);

/** The parts of a target that say who logs in with what. */
function who(user: string, db: string, node = primary as typeof primary, clientKey: Buffer | null = null) {
  const tg = loginTarget(node, 'k', sessionLogin(config, user, db, clientKey));
  return { user: tg.user, kind: tg.secret?.kind, key: tg.secretKey, database: tg.database };
}

t.test('a URL without a user: each user as itself, with its own kind of secret', async (t) => {
  t.same(who('alice', 'app'), { user: 'alice', kind: 'password', key: 'users[0].password', database: 'app_prod' }, 'plaintext; databases: maps app');
  t.same(who('bob', 'other', primary, key), { user: 'bob', kind: 'scram-keys', key: 'users[1].password', database: 'other' }, 'a verifier: SCRAM pass-through');
  const bob = loginTarget(primary, 'primary', sessionLogin(config, 'bob', 'x', key)).secret;
  t.same(bob?.kind === 'scram-keys' ? bob.keys.clientKey : null, key, 'with the ClientKey the client proved');
  t.same(who('carol', 'x'), { user: 'carol', kind: 'md5-hash', key: 'users[2].password', database: 'x' }, 'an md5 hash');
  t.same(who('dave', 'x'), { user: 'app', kind: 'password', key: 'users[3].server_password', database: 'x' }, 'server_user with server_password');
});

t.test('a URL with a user forces it, except for a mapped user', async (t) => {
  t.same(who('alice', 'x', forced), { user: 'forced', kind: 'password', key: 'k', database: 'x' }, "the URL's user and password");
  t.same(who('dave', 'x', forced), { user: 'app', kind: 'password', key: 'users[3].server_password', database: 'x' }, 'server_user wins');
  t.same(who('erin', 'x', mapped), { user: 'mapped', kind: 'password', key: 'k', database: 'x' }, 'server_user without a password: the URL naming that role gives it');
  t.same(who('erin', 'x', forced), { user: 'mapped', kind: undefined, key: undefined, database: 'x' }, 'no password for the mapped role elsewhere');
});

t.test('development mode: the client as it said, with the URL password if any', async (t) => {
  const dev = resolveConfig({ primary: 'postgres://:url-pw@db1/app', replicas: ['postgres://db2/app'] });
  const [p, r] = [dev.primary, dev.replicas[0]];
  if (r === undefined) throw new Error('config');
  const tp = loginTarget(p, 'primary', sessionLogin(dev, 'anyone', 'db', null));
  t.same([tp.user, tp.secret?.kind, tp.database], [undefined, 'password', 'db'], "the client's name (left to the startup packet) and the URL's password");
  const tr = loginTarget(r, 'replicas[0]', sessionLogin(dev, 'anyone', 'db', null));
  t.same([tr.user, tr.secret], [undefined, undefined], 'no password when the URL has none');
});
