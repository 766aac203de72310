/**
 * Classifications per second of the statement classifier, for the statements a proxy actually sees:
 *
 * - pgbench TPC-B (its 7 statements with random literals), pgbench -S (one SELECT by primary key), and a
 *   mix of short OLTP SELECT / INSERT / UPDATE / DELETE statements with literals;
 * - long ORM-generated statements (2-5 kB): Hibernate- and SQLAlchemy-style 40-column SELECTs with joins
 *   and a sqlcommenter comment, and a 30-column ORM UPDATE.
 *
 * Modes:
 * - uncached: classifyQuery() on every statement, every text distinct (literals vary), as for clients that
 *   inline literals;
 * - router miss: Router.classify() on distinct texts (classification plus cache insertion and eviction);
 * - router hit: Router.classify() on a few repeating texts ($n parameters, as prepared statements and ORMs
 *   send them), the same string objects every time (V8 caches a string's hash in it);
 * - router hit, decoded: the same, but each text is first decoded from a Buffer as the proxy decodes a
 *   Query/Parse message (utf8 decode, fresh string: the Map hashes and compares the whole text); the
 *   decode alone is shown as a baseline.
 *
 *   npx tsc -p tsconfig.json && node dist/bench/classify.js [--quick] [--json]
 *
 * The "read every character" baseline is a loop summing charCodeAt over each text: the floor for any
 * lexer on this machine, to read the classifier's figures against.
 *
 * Each cell runs for ~1 s (0.3 s with --quick) after a warm-up, three times; the median is printed.
 */
import { classifyQuery } from '../src/router/statement-classifier.js';
import { Router } from '../src/router/router.js';

const quick = process.argv.includes('--quick');
const asJson = process.argv.includes('--json');
const CELL_MS = quick ? 300 : 1000;
const REPEATS = 3;

// ---------------------------------------------------------------------------------------------------
// Deterministic pseudo-random numbers (the same statements on every run)

let seed = 0x2545f491;
function rnd(n: number): number {
  seed ^= seed << 13;
  seed ^= seed >>> 17;
  seed ^= seed << 5;
  return (seed >>> 0) % n;
}
const pick = <T>(xs: readonly T[]): T => xs[rnd(xs.length)]!;

// ---------------------------------------------------------------------------------------------------
// Workloads

/** pgbench's built-in TPC-B-like script, as pgbench sends it with -M simple. */
function pgbenchTpcb(): string[] {
  const aid = 1 + rnd(100_000);
  const bid = 1 + rnd(1);
  const tid = 1 + rnd(10);
  const delta = rnd(10_001) - 5000;
  return [
    'BEGIN;',
    `UPDATE pgbench_accounts SET abalance = abalance + ${delta} WHERE aid = ${aid};`,
    `SELECT abalance FROM pgbench_accounts WHERE aid = ${aid};`,
    `UPDATE pgbench_tellers SET tbalance = tbalance + ${delta} WHERE tid = ${tid};`,
    `UPDATE pgbench_branches SET bbalance = bbalance + ${delta} WHERE bid = ${bid};`,
    `INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (${tid}, ${bid}, ${aid}, ${delta}, CURRENT_TIMESTAMP);`,
    'END;',
  ];
}
const PGBENCH_TPCB_PREPARED = [
  'BEGIN;',
  'UPDATE pgbench_accounts SET abalance = abalance + $1 WHERE aid = $2;',
  'SELECT abalance FROM pgbench_accounts WHERE aid = $1;',
  'UPDATE pgbench_tellers SET tbalance = tbalance + $1 WHERE tid = $2;',
  'UPDATE pgbench_branches SET bbalance = bbalance + $1 WHERE bid = $2;',
  'INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES ($1, $2, $3, $4, CURRENT_TIMESTAMP);',
  'END;',
];

const pgbenchSelect = (): string => `SELECT abalance FROM pgbench_accounts WHERE aid = ${1 + rnd(100_000)};`;

const NAMES = ['alice', 'bob', "o'brien", 'carol', 'dave', 'erin', 'frank', 'grace'];
const STATUSES = ['new', 'paid', 'shipped', 'cancelled'];
/** Short statements of a typical web application, with literals. */
function oltpShort(): string {
  const id = 1 + rnd(1_000_000);
  const name = pick(NAMES).replace(/'/g, "''");
  switch (rnd(10)) {
    case 0:
      return `SELECT id, name, email, created_at FROM users WHERE id = ${id}`;
    case 1:
      return `SELECT * FROM orders WHERE customer_id = ${id} AND status = '${pick(STATUSES)}' ORDER BY created_at DESC LIMIT 20`;
    case 2:
      return `SELECT count(*) FROM sessions WHERE user_id = ${id} AND expires_at > now()`;
    case 3:
      return `SELECT p.id, p.title, p.price FROM products p JOIN stock s ON s.product_id = p.id WHERE p.category_id = ${rnd(500)} AND s.quantity > 0 LIMIT 50`;
    case 4:
      return `SELECT value FROM settings WHERE key = 'feature.${name}'`;
    case 5:
      return `INSERT INTO events (user_id, kind, payload, created_at) VALUES (${id}, 'login', '{"ip": "10.0.${rnd(256)}.${rnd(256)}"}', now())`;
    case 6:
      return `UPDATE users SET last_seen = now(), login_count = login_count + 1 WHERE id = ${id}`;
    case 7:
      return `INSERT INTO orders (customer_id, status, total) VALUES (${id}, 'new', ${rnd(100000) / 100}) RETURNING id`;
    case 8:
      return `DELETE FROM cart_items WHERE cart_id = ${id} AND product_id = ${rnd(50_000)}`;
    default:
      return `SELECT name FROM users WHERE name = '${name}' AND deleted_at IS NULL`;
  }
}
const OLTP_PREPARED = [
  'SELECT id, name, email, created_at FROM users WHERE id = $1',
  'SELECT * FROM orders WHERE customer_id = $1 AND status = $2 ORDER BY created_at DESC LIMIT 20',
  'SELECT count(*) FROM sessions WHERE user_id = $1 AND expires_at > now()',
  'SELECT p.id, p.title, p.price FROM products p JOIN stock s ON s.product_id = p.id WHERE p.category_id = $1 AND s.quantity > 0 LIMIT 50',
  'SELECT value FROM settings WHERE key = $1',
  'INSERT INTO events (user_id, kind, payload, created_at) VALUES ($1, $2, $3, now())',
  'UPDATE users SET last_seen = now(), login_count = login_count + 1 WHERE id = $1',
  'INSERT INTO orders (customer_id, status, total) VALUES ($1, $2, $3) RETURNING id',
  'DELETE FROM cart_items WHERE cart_id = $1 AND product_id = $2',
  'SELECT name FROM users WHERE name = $1 AND deleted_at IS NULL',
];

const COLUMNS = [
  'id', 'version', 'created_at', 'updated_at', 'created_by', 'updated_by', 'tenant_id', 'external_ref', 'status',
  'status_reason', 'title', 'description', 'priority', 'due_date', 'completed_at', 'assignee_id', 'reporter_id',
  'project_id', 'parent_id', 'estimate_minutes', 'spent_minutes', 'labels', 'is_archived', 'archived_at', 'sort_order',
  'visibility', 'locale', 'time_zone', 'currency', 'amount', 'tax_amount', 'discount', 'notes', 'metadata', 'checksum',
  'source', 'channel', 'campaign', 'score', 'rank',
];

/** Columns of the joined tables (p: project, u: user, l: label). */
const JOINED: Array<[string, string]> = [
  ['p', 'id'], ['p', 'name'], ['p', 'owner_id'], ['p', 'created_at'], ['p', 'updated_at'], ['p', 'visibility'], ['p', 'archived'], ['p', 'key_prefix'],
  ['u', 'id'], ['u', 'email'], ['u', 'display_name'], ['u', 'avatar_url'], ['u', 'locale'], ['u', 'time_zone'], ['u', 'last_login_at'], ['u', 'is_active'],
  ['l', 'task_id'], ['l', 'label'], ['l', 'color'], ['l', 'created_at'],
];

/** sqlcommenter, as Django / SQLAlchemy / Spring emit it (URL-encoded values). */
function sqlcommenter(route: boolean): string {
  const parts = [
    `action='${pick(['index', 'show', 'update', 'list'])}'`,
    `controller='${pick(['tasks', 'projects', 'reports'])}'`,
    `db_driver='psycopg%3A3.1.18'`,
    `framework='sqlalchemy%3A2.0.29'`,
    `route='%2Fapi%2Fv2%2Ftasks%2F%3Cint%3Aid%3E'`,
    `traceparent='00-${rnd(1e9).toString(16).padStart(8, '0')}a1b2c3d4e5f6a7b8c9d0e1f2-${rnd(1e9).toString(16).padStart(8, '0')}e5f6a7b8-01'`,
  ];
  if (route) parts.push(`pgsplit_route='replica'`);
  return `/*${parts.join(',')}*/`;
}

/** Hibernate: aliases t0_, columns as c1_0_ ..., ANSI joins, ? turned into $n by the driver or literals. */
function hibernateSelect(param: (i: number) => string): string {
  const cols = COLUMNS.map((c, i) => `task0_.${c} as ${c.slice(0, 8)}${i}_0_`);
  const joined = JOINED.map(([t, c], i) => `${t === 'p' ? 'project1_' : t === 'u' ? 'user2_' : 'label3_'}.${c} as ${c.slice(0, 6)}${i}_${t === 'p' ? 1 : t === 'u' ? 2 : 3}_`);
  return (
    `select ${[...cols, ...joined].join(', ')} ` +
    `from tracker.task task0_ ` +
    `inner join tracker.project project1_ on task0_.project_id=project1_.id ` +
    `left outer join tracker.app_user user2_ on task0_.assignee_id=user2_.id ` +
    `left outer join tracker.task_label label3_ on task0_.id=label3_.task_id ` +
    `where task0_.tenant_id=${param(1)} and task0_.status in (${param(2)}, ${param(3)}, ${param(4)}) ` +
    `and (task0_.due_date between ${param(5)} and ${param(6)}) and task0_.is_archived=false ` +
    `and (exists (select 1 from tracker.project_member member4_ where member4_.project_id=project1_.id and member4_.user_id=${param(7)})) ` +
    `order by task0_.priority desc, task0_.due_date asc nulls last, task0_.id asc offset ${param(8)} rows fetch first ${param(9)} rows only`
  );
}

/** SQLAlchemy: quoted-less table.column AS table_column, LEFT OUTER JOIN, %(name)s turned into literals or $n. */
function sqlalchemySelect(param: (i: number) => string): string {
  const cols = COLUMNS.map((c) => `tasks.${c} AS tasks_${c}`);
  const joined = JOINED.filter(([t]) => t !== 'l').map(([t, c]) => (t === 'p' ? `projects_1.${c} AS projects_1_${c}` : `users_1.${c} AS users_1_${c}`));
  return (
    `SELECT ${[...cols, ...joined].join(', \n')} \n` +
    `FROM tasks JOIN projects AS projects_1 ON projects_1.id = tasks.project_id ` +
    `LEFT OUTER JOIN users AS users_1 ON users_1.id = tasks.assignee_id \n` +
    `WHERE tasks.tenant_id = ${param(1)} AND tasks.status IN (${param(2)}, ${param(3)}) AND tasks.updated_at >= ${param(4)} ` +
    `AND lower(tasks.title) LIKE lower(${param(5)}) AND tasks.metadata @> ${param(6)}::jsonb ORDER BY tasks.updated_at DESC \n` +
    ` LIMIT ${param(7)} OFFSET ${param(8)}`
  );
}

/** An ORM UPDATE of every column, with optimistic locking and RETURNING (EF Core / SQLAlchemy eager defaults). */
function ormUpdate(param: (i: number) => string): string {
  const sets = COLUMNS.slice(1).map((c, i) => `${c}=${param(i + 1)}`);
  return (
    `update tracker.task set ${sets.join(', ')} where id=${param(COLUMNS.length)} and version=${param(COLUMNS.length + 1)} ` +
    `returning ${COLUMNS.map((c) => `task.${c} as task_${c}`).join(', ')}`
  );
}

const literal = (i: number): string => {
  switch (i % 4) {
    case 0:
      return String(rnd(1_000_000));
    case 1:
      return `'${pick(STATUSES)}'`;
    case 2:
      return `'2024-0${1 + rnd(9)}-1${rnd(9)} 12:00:00+00'`;
    default:
      return `'%${pick(NAMES).replace(/'/g, "''")}%'`;
  }
};
const dollar = (i: number): string => `$${i}`;

function ormLiteral(): string {
  switch (rnd(3)) {
    case 0:
      return `${sqlcommenter(rnd(2) === 0)} ${hibernateSelect(literal)}`;
    case 1:
      return `${sqlalchemySelect(literal)} ${sqlcommenter(rnd(2) === 0)}`;
    default:
      return `${ormUpdate(literal)} ${sqlcommenter(false)}`;
  }
}
function ormPreparedSet(): string[] {
  const out: string[] = [];
  // an application has a few hundred distinct ORM statements; the comment varies with the route
  for (let i = 0; i < 40; i++) {
    out.push(`${sqlcommenter(i % 2 === 0)} ${hibernateSelect(dollar)}`.replace('tracker.task ', `tracker.task${i % 8} `));
    out.push(`${sqlalchemySelect(dollar)} ${sqlcommenter(i % 2 === 1)}`.replace('FROM tasks ', `FROM tasks${i % 8} `));
    if (i % 4 === 0) out.push(`${ormUpdate(dollar)} ${sqlcommenter(false)}`.replace('tracker.task ', `tracker.task${i} `));
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------
// Measurement

interface Cell {
  workload: string;
  mode: string;
  opsPerSec: number;
  nsPerOp: number;
  avgBytes: number;
  safeShare: number;
}

let sink = 0;

/** Runs `body(i)` for i = 0, 1, ... in batches until `ms` have passed; returns operations per second. */
function measure(ms: number, body: (i: number) => boolean): number {
  const batch = 256;
  let ops = 0;
  let safe = 0;
  const started = process.hrtime.bigint();
  const limit = BigInt(ms) * 1_000_000n;
  let elapsed = 0n;
  do {
    for (let k = 0; k < batch; k++) if (body(ops + k)) safe++;
    ops += batch;
    elapsed = process.hrtime.bigint() - started;
  } while (elapsed < limit);
  sink += safe;
  return ops / (Number(elapsed) / 1e9);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

function cell(workload: string, mode: string, texts: readonly string[], body: (i: number) => boolean): Cell {
  measure(Math.min(CELL_MS, 300), body); // warm up
  const runs: number[] = [];
  for (let r = 0; r < REPEATS; r++) runs.push(measure(CELL_MS, body));
  const ops = median(runs);
  const avgBytes = texts.reduce((n, s) => n + Buffer.byteLength(s), 0) / texts.length;
  let safe = 0;
  for (const s of texts) if (classifyQuery(s).replicaSafe) safe++;
  return { workload, mode, opsPerSec: ops, nsPerOp: 1e9 / ops, avgBytes, safeShare: safe / texts.length };
}

/**
 * A pool of distinct texts, length a power of two (index with a mask). Each text is decoded from UTF-8
 * bytes, as the proxy gets it from a Query or Parse message: a flat string. (A text built with `+` or a
 * template is a rope that V8 flattens on first use; measuring on ropes would charge that to the lexer.)
 */
function pool(n: number, make: () => string[] | string): string[] {
  const out: string[] = [];
  while (out.length < n) {
    const x = make();
    if (Array.isArray(x)) out.push(...x);
    else out.push(x);
  }
  return out.slice(0, n).map((s) => Buffer.from(s, 'utf8').toString('utf8'));
}

/** Sum of every character code: the least any lexer must do, to show how fast this machine reads a string. */
function charLoop(s: string): number {
  let x = 0;
  for (let i = 0; i < s.length; i++) x = (x + s.charCodeAt(i)) | 0;
  return x;
}

interface Workload {
  name: string;
  /** Distinct texts, literals varying. */
  distinct: string[];
  /** A few texts that repeat (prepared / ORM statements). */
  repeating: string[];
}

function workloads(): Workload[] {
  // Pools of distinct texts are larger than the Router's cache (5000 entries), so that 'miss' misses.
  const shortN = quick ? 1 << 15 : 1 << 17;
  const longN = 1 << 13;
  return [
    { name: 'pgbench TPC-B (7 stmts)', distinct: pool(shortN, pgbenchTpcb), repeating: PGBENCH_TPCB_PREPARED },
    { name: 'pgbench -S (SELECT by key)', distinct: pool(shortN, pgbenchSelect), repeating: ['SELECT abalance FROM pgbench_accounts WHERE aid = $1;'] },
    { name: 'short OLTP mix', distinct: pool(shortN, oltpShort), repeating: OLTP_PREPARED },
    { name: 'ORM 40-col SELECT/UPDATE 2-5 kB', distinct: pool(longN, ormLiteral), repeating: ormPreparedSet() },
  ];
}

function run(): Cell[] {
  const cells: Cell[] = [];
  for (const w of workloads()) {
    const d = w.distinct;
    const dm = d.length - 1;
    cells.push(cell(w.name, 'uncached: classifyQuery, literals vary', d, (i) => classifyQuery(d[i & dm]!).replicaSafe));
    cells.push(cell(w.name, '  (baseline: read every character once)', d, (i) => charLoop(d[i & dm]!) !== 1));

    // Router with distinct texts: every call misses, inserts, and evicts the oldest entry.
    let router = new Router();
    cells.push(cell(w.name, 'Router.classify, every text new (miss)', d, (i) => router.classify(d[i & dm]!).replicaSafe));

    // Router with repeating texts. Pad the list to a power of two by repeating it.
    const rep = pool(64, () => w.repeating);
    router = new Router();
    for (const s of rep) router.classify(s);
    cells.push(cell(w.name, 'Router.classify, repeating texts (hit)', w.repeating, (i) => router.classify(rep[i & 63]!).replicaSafe));

    // The same, each text decoded from a Buffer first, as the proxy gets it from a Query/Parse message.
    const bufs = rep.map((s) => Buffer.from(s, 'utf8'));
    cells.push(
      cell(w.name, 'Router.classify, hit, text decoded from the wire', w.repeating, (i) => {
        const b = bufs[i & 63]!;
        return router.classify(b.toString('utf8', 0, b.length)).replicaSafe;
      }),
    );
    cells.push(
      cell(w.name, '  (baseline: the utf8 decode alone)', w.repeating, (i) => {
        const b = bufs[i & 63]!;
        return b.toString('utf8', 0, b.length).length > 0;
      }),
    );
  }
  return cells;
}

function fmtOps(n: number): string {
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)} M/s`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)} k/s`;
  return `${n.toFixed(0)} /s`;
}

const cells = run();
if (asJson) {
  console.log(JSON.stringify({ node: process.version, cells }, null, 2));
} else {
  const rows = [
    ['workload', 'mode', 'classifications', 'ns/op', 'avg bytes', 'MB/s', 'safe'],
    ...cells.map((c) => [
      c.workload,
      c.mode,
      fmtOps(c.opsPerSec),
      c.nsPerOp.toFixed(0),
      c.avgBytes.toFixed(0),
      ((c.opsPerSec * c.avgBytes) / 1e6).toFixed(0),
      `${(c.safeShare * 100).toFixed(0)}%`,
    ]),
  ];
  const widths = rows[0]!.map((_, j) => Math.max(...rows.map((r) => r[j]!.length)));
  const line = (r: string[]): string => r.map((x, j) => (j >= 2 ? x.padStart(widths[j]!) : x.padEnd(widths[j]!))).join('  ');
  console.log(`classifier throughput, node ${process.version}, ${CELL_MS} ms per cell, median of ${REPEATS}${quick ? ' (quick)' : ''}`);
  console.log(line(rows[0]!));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  let last = '';
  for (const r of rows.slice(1)) {
    if (r[0] !== last && last !== '') console.log('');
    last = r[0]!;
    console.log(line(r));
  }
}
if (sink < 0) console.log(sink); // keep the results alive
