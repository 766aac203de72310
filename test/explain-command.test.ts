/**
 * `pgsplit explain`, run as users run it: the built CLI (node bin/pgsplit.js explain ...).
 * Needs dist/ (npm test builds it first: tsc -p tsconfig.json && tap).
 */
import t from 'tap';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);
const root = fileURLToPath(new URL('..', import.meta.url));
const bin = join(root, 'bin/pgsplit.js');
const built = existsSync(join(root, 'dist/src/router/explain.js'));

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

async function pgsplit(...args: string[]): Promise<Run> {
  try {
    const { stdout, stderr } = await execFileAsync(process.execPath, [bin, ...args], { cwd: root, timeout: 30_000 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

async function explainJson(...args: string[]): Promise<{ route: string; reason: string; [k: string]: unknown }> {
  const r = await pgsplit('explain', '--json', ...args);
  if (r.code !== 0) throw new Error(`exit ${r.code}: ${r.stderr}`);
  const lines = r.stdout.trim().split('\n');
  if (lines.length !== 1) throw new Error(`expected one JSON line, got ${JSON.stringify(r.stdout)}`);
  return JSON.parse(lines[0]!) as { route: string; reason: string };
}

t.test('explain', { skip: built ? false : 'dist/ is not built: run npx tsc -p tsconfig.json first' }, async (t) => {
  const dir = t.testdir({
    'vouch.yaml': 'primary: postgres://app:${UNSET_PASSWORD_FOR_TEST}@db/app\nrouting:\n  read_only_functions: [report_totals, reporting.monthly]\n  writing_functions: [audit_touch]\n',
    'lenient.yaml': 'routing:\n  unknown_functions: replica\n',
    'bad.yaml': 'routing:\n  read_only_functions: [nextval]\n',
    'workload.sql': [
      '-- a psql script, as psql -f would run it', //  1
      '\\set ON_ERROR_STOP on', //                      2
      '\\timing on', //                                  3
      'SELECT * FROM orders WHERE id = 1;', //           4
      'SELECT id', //                                    5
      '  FROM orders', //                                6
      ' WHERE id = 2 FOR UPDATE;', //                    7
      'CREATE TABLE items (id int, note text);', //      8
      'COPY items (id, note) FROM stdin;', //            9
      '1\tDELETE FROM orders; -- data, not SQL', //      10
      '2\t\\N', //                                       11
      '\\.', //                                          12
      'SELECT report_totals(1);', //                     13
      '/* pgsplit:route=primary */ SELECT 1;', //        14
      "SELECT nextval('orders_id_seq') AS id \\gset", // 15
      'SELECT $$ a body', //                             16
      '\\d is text here; so is this', //                 17
      '$$ AS body; SELECT 2;', //                        18
      'WITH d AS (DELETE FROM orders RETURNING *) SELECT count(*) FROM d;', // 19
      '\\d orders', //                                   20
      'SELECT lower(note) FROM items', //                21 (no final ;)
    ].join('\n'),
  });

  await t.test('a read goes to a replica', async (t) => {
    const j = await explainJson('SELECT * FROM orders WHERE id = 1');
    t.equal(j.route, 'replica');
    t.equal(j.reason, 'tagged-read');
    t.match(j, { statements: [{ kind: 'read', replicaSafe: true, reason: 'select' }] });
    const plain = await pgsplit('explain', 'SELECT 1');
    t.equal(plain.code, 0);
    t.equal(plain.stdout, 'route: replica\nreason: tagged-read\n');
  });

  await t.test('writes and things that look like reads go to the primary', async (t) => {
    t.match(await explainJson('SELECT * FROM orders WHERE id = 1 FOR UPDATE'), { route: 'primary', reason: 'locking-clause' });
    t.match(await explainJson('WITH d AS (DELETE FROM orders WHERE id = 1 RETURNING *) SELECT * FROM d'), { route: 'primary', reason: 'cte-dml' });
    t.match(await explainJson("SELECT nextval('s')"), { route: 'primary', reason: 'writing-function:nextval' });
    t.match(await explainJson('UPDATE orders SET total = 0'), { route: 'primary', reason: 'update' });
    t.match(await explainJson('/* pgsplit:route=primary */ SELECT 1'), { route: 'primary', reason: 'hint-primary' });
    t.match(await explainJson("/* pgsplit:route=replica */ SELECT setval('s', 1)"), { route: 'primary', reason: 'writing-function:setval' });
  });

  await t.test('unknown functions, with and without --config', async (t) => {
    t.match(await explainJson('SELECT report_totals(1)'), { route: 'primary', reason: 'unknown-function:report_totals' });
    t.match(await explainJson('--config', join(dir, 'vouch.yaml'), 'SELECT report_totals(1)'), { route: 'replica', reason: 'tagged-read' },
      'vouched for in routing.read_only_functions (the unset ${VAR} outside routing: does not matter)');
    t.match(await explainJson('--config', join(dir, 'vouch.yaml'), 'SELECT reporting.monthly(1)'), { route: 'replica' });
    t.match(await explainJson('--config', join(dir, 'vouch.yaml'), 'SELECT monthly(1)'), { route: 'primary', reason: 'unknown-function:monthly' });
    t.match(await explainJson('--config', join(dir, 'vouch.yaml'), 'SELECT audit_touch(1)'), { route: 'primary', reason: 'writing-function:audit_touch' });
    t.match(await explainJson('--config', join(dir, 'lenient.yaml'), 'SELECT anything(1)'), { route: 'replica' }, 'unknown_functions: replica');
    t.match(await explainJson('/* pgsplit:route=replica */ SELECT report_totals(1)'), { route: 'replica', reason: 'hint-replica' });
    const bad = await pgsplit('explain', '--config', join(dir, 'bad.yaml'), 'SELECT 1');
    t.equal(bad.code, 2);
    t.match(bad.stderr, /routing\.read_only_functions\[0\]: "nextval" is a writing function/);
  });

  await t.test('--file: every statement of a psql script', async (t) => {
    const r = await pgsplit('explain', '--json', '--file', join(dir, 'workload.sql'));
    t.equal(r.code, 0, r.stderr);
    const rows = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    const summary = rows.pop();
    t.strictSame(rows, [
      { line: 4, route: 'replica', reason: 'tagged-read', statement: 'SELECT * FROM orders WHERE id = 1' },
      { line: 5, route: 'primary', reason: 'locking-clause', statement: 'SELECT id FROM orders WHERE id = 2 FOR UPDATE' },
      { line: 8, route: 'primary', reason: 'create', statement: 'CREATE TABLE items (id int, note text)' },
      { line: 9, route: 'primary', reason: 'copy-from', statement: 'COPY items (id, note) FROM stdin' },
      { line: 13, route: 'primary', reason: 'unknown-function:report_totals', statement: 'SELECT report_totals(1)' },
      { line: 14, route: 'primary', reason: 'hint-primary', statement: 'SELECT 1' },
      { line: 15, route: 'primary', reason: 'writing-function:nextval', statement: "SELECT nextval('orders_id_seq') AS id" },
      { line: 16, route: 'replica', reason: 'tagged-read', statement: 'SELECT $$ a body \\d is text here; so is this $$ AS body' },
      { line: 18, route: 'replica', reason: 'tagged-read', statement: 'SELECT 2' },
      { line: 19, route: 'primary', reason: 'cte-dml', statement: 'WITH d AS (DELETE FROM orders RETURNING *) SELECT count(*) FROM d' },
      { line: 21, route: 'replica', reason: 'tagged-read', statement: 'SELECT lower(note) FROM items' },
    ]);
    t.strictSame(summary, { summary: { statements: 11, replica: 4, primary: 7 } });

    const vouched = await pgsplit('explain', '--json', '--config', join(dir, 'vouch.yaml'), '--file', join(dir, 'workload.sql'));
    const row13 = vouched.stdout.split('\n').map((l) => (l === '' ? {} : JSON.parse(l) as Record<string, unknown>)).find((x) => x['line'] === 13);
    t.match(row13, { route: 'replica', reason: 'tagged-read' }, '--config applies to --file too');

    const text = await pgsplit('explain', '--file', join(dir, 'workload.sql'));
    t.equal(text.code, 0);
    const lines = text.stdout.trimEnd().split('\n');
    t.equal(lines.length, 12);
    t.match(lines[0], /^ {3}4 {2}replica {2}tagged-read +SELECT \* FROM orders WHERE id = 1$/);
    t.match(lines[4], /^ {2}13 {2}primary {2}unknown-function:report_totals {2}SELECT report_totals\(1\)$/);
    t.equal(lines[11], '11 statement(s): 4 replica, 7 primary');
  });

  await t.test('a transaction reads on a replica until its write; a pin keeps the session on the primary', async (t) => {
    const d = t.testdir({ 'tx.sql': 'SELECT 1;\nBEGIN;\nSELECT 2;\nSAVEPOINT a;\nINSERT INTO t VALUES (1);\nSELECT 2;\nCOMMIT;\nBEGIN ISOLATION LEVEL SERIALIZABLE;\nSELECT 2;\nCOMMIT;\nSELECT 3;\nBEGIN READ ONLY;\nSELECT 4;\nROLLBACK;\nLISTEN chan;\nSELECT 5;\n' });
    const r = await pgsplit('explain', '--json', '--file', join(d, 'tx.sql'));
    const rows = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { route?: string; reason?: string });
    t.strictSame(rows.slice(0, -1).map((x) => `${x.route} ${x.reason}`), [
      'replica tagged-read',
      'replica tx-begin',
      'replica tx-read',
      'replica transaction',
      'primary tx-moved',
      'primary transaction',
      'primary transaction',
      'primary begin',
      'primary transaction',
      'primary transaction',
      'replica tagged-read',
      'replica tagged-read',
      'replica transaction',
      'replica transaction',
      'primary listen',
      'primary pinned:listen',
    ]);
  });

  await t.test('usage errors', async (t) => {
    const missing = await pgsplit('explain', '--file', join(dir, 'nope.sql'));
    t.equal(missing.code, 2);
    t.match(missing.stderr, /cannot read .*nope\.sql: no such file; check the path given to --file/);
    const both = await pgsplit('explain', '--file', join(dir, 'workload.sql'), 'SELECT 1');
    t.equal(both.code, 2);
    t.match(both.stderr, /explain takes SQL or --file, not both/);
    const none = await pgsplit('explain', '--json');
    t.equal(none.code, 2);
    t.match(none.stderr, /explain needs a SQL statement/);
  });
});
