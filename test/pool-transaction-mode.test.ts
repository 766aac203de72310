/**
 * pool.mode transaction, against real servers and real clients (pg, pgbench): a session borrows a pooled
 * server connection for one transaction (or one statement outside a transaction) and gives it back at the
 * ReadyForQuery 'I' that ends it, unless something pins it (LISTEN, a temporary table, SQL PREPARE).
 * Many clients share pool.size backends; what a client sets (SET, startup parameters, named prepared
 * statements) stays its own although its statements run on backends other clients use too; a cancel stops
 * only the statement of the client that sent it.
 *
 * Server connections are counted in pg_stat_activity through a direct connection to the server: client
 * backends of the database, less the counting connection itself and the monitor's (application_name
 * pgsplit-monitor). Pooled connections log in without an application_name, so nothing else tells them apart.
 */
import t, { type Test } from 'tap';
import { execFile, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { sendCancel, startCluster, startProxy, type ProxyFixture } from './fixtures/proxy-fixture.js';
import { clientBackendPid as pid } from './fixtures/pool-fixture.js';
import type { LocalNode } from '../src/cluster/local-cluster.js';

t.setTimeout(240_000);

const TAGGED = '-c pgsplit.route=replica';
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** pgsplit's server connections to `node`'s database postgres: client backends, less the counting connection and the monitor. */
const PGSPLIT_BACKENDS_SQL = `SELECT count(*)::int AS n FROM pg_stat_activity
  WHERE backend_type = 'client backend' AND datname = 'postgres' AND pid <> pg_backend_pid() AND application_name <> 'pgsplit-monitor'`;

async function backendCount(node: LocalNode): Promise<number> {
  return (await node.query<{ n: number }>(PGSPLIT_BACKENDS_SQL))[0]?.n ?? -1;
}

/**
 * Samples pgsplit's backends on `node` over and over through one direct connection until stopped; stop()
 * gives the largest count seen and how many samples were taken (at least one after the work ended).
 */
async function watchBackends(node: LocalNode): Promise<{ stop(): Promise<{ max: number; samples: number }> }> {
  const c = new pg.Client({ host: node.host, port: node.port, user: 'postgres', database: 'postgres' });
  c.on('error', () => undefined);
  await c.connect();
  let running = true;
  let max = 0;
  let samples = 0;
  const sample = async (): Promise<void> => {
    const n = (await c.query<{ n: number }>(PGSPLIT_BACKENDS_SQL)).rows[0]?.n ?? 0;
    max = Math.max(max, n);
    samples++;
  };
  const loop = (async () => {
    while (running) {
      await sample();
      await sleep(10);
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      await sample();
      await c.end();
      return { max, samples };
    },
  };
}

/** Clients waiting for a pooled connection, over every pool of the proxy. */
function waitingClients(fx: ProxyFixture): number {
  return fx.proxy.pools.rows().reduce((n, r) => n + r.clientsWaiting, 0);
}

/** A statement sent by another client, and whether it has been answered (or failed) yet. */
interface Pending<T> {
  result: Promise<T>;
  readonly answered: boolean;
}

function pending<T>(result: Promise<T>): Pending<T> {
  const p = { result, answered: false };
  result.then(() => (p.answered = true), () => (p.answered = true));
  return p;
}

/**
 * Whether `p` is held back or was answered, whichever shows first. Held back: a client waits in one of the
 * proxy's pools, or no answer has come after a second. The second only guards against a design that
 * queues the client elsewhere than in a pool (the test would otherwise sit until max_client_wait): a
 * statement that need not wait is answered within milliseconds, and one that must wait stays unanswered
 * however long, so a slow machine can only make this miss a bug, never fail a correct pool. The test
 * checks `answered` again after further statements of the transaction.
 */
async function waitsOrAnswers(fx: ProxyFixture, p: Pending<unknown>): Promise<'waits' | 'answered'> {
  const giveUp = Date.now() + 1000;
  for (;;) {
    if (p.answered) return 'answered';
    if (waitingClients(fx) > 0 || Date.now() > giveUp) return 'waits';
    await sleep(5);
  }
}

/** The value of the metric sample `name` with `labels` on the proxy's /metrics, or undefined. */
async function metric(fx: ProxyFixture, name: string, labels: Record<string, string>): Promise<number | undefined> {
  const addr = fx.proxy.metricsAddress;
  if (addr === null) throw new Error('metrics.listen is not set for this proxy');
  const text = await (await fetch(`http://127.0.0.1:${addr.port}/metrics`)).text();
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (!Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) continue;
    return Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return undefined;
}

function pgBin(name: string): string {
  try {
    const p = path.join(execFileSync('pg_config', ['--bindir'], { encoding: 'utf8' }).trim(), name);
    if (fs.existsSync(p)) return p;
  } catch {
    // PATH then
  }
  return name;
}

function pgbench(env: NodeJS.ProcessEnv, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(pgBin('pgbench'), args, { env, timeout: 90_000, maxBuffer: 16 * 1024 * 1024, encoding: 'utf8' }, (err, stdout, stderr) => {
      const exit = (err as { code?: unknown } | null)?.code;
      resolve({ code: err ? (typeof exit === 'number' ? exit : -1) : 0, stdout, stderr });
    });
  });
}

const transactionPool = (size: number, extra: Record<string, unknown> = {}): Record<string, unknown> => ({ pool: { mode: 'transaction', size, ...extra } });

t.test('many clients, few backends: 40 clients through pool.size 3 use at most 3 backends and lose no statement', async (t) => {
  const fx = await startProxy(t, { replicas: 0, config: transactionPool(3) });
  await fx.cluster.primary.query('CREATE TABLE tx_rows (client int NOT NULL, n int NOT NULL)');
  const clients = await Promise.all(Array.from({ length: 40 }, (_, i) => fx.client({ applicationName: `many-${i}` })));
  const watch = await watchBackends(fx.cluster.primary);
  const pids = new Set<number>();
  const errors: string[] = [];
  let answered = 0;
  await Promise.all(clients.map(async (c, i) => {
    try {
      for (let k = 0; k < 20; k++) {
        pids.add(await pid(c));
        answered++;
        if (k % 7 === 0) {
          await c.query('INSERT INTO tx_rows (client, n) VALUES ($1, $2)', [i, k]);
          answered++;
        }
      }
    } catch (e) {
      errors.push(`client ${i}: ${String(e)}`);
    }
  }));
  const seen = await watch.stop();
  t.same(errors, [], 'no statement failed');
  t.equal(answered, 40 * (20 + 3), 'every statement answered');
  t.ok(pids.size >= 1 && pids.size <= 3, `distinct backends that answered pg_backend_pid(): ${pids.size} (at most pool.size 3)`);
  t.ok(seen.max <= 3, `most pgsplit backends in pg_stat_activity at once: ${seen.max} over ${seen.samples} samples (at most pool.size 3)`);
  const rows = await fx.cluster.primary.query<{ n: number; d: number }>('SELECT count(*)::int AS n, count(DISTINCT (client, n))::int AS d FROM tx_rows');
  t.same(rows[0], { n: 120, d: 120 }, 'every insert landed once: 40 clients x 3 rows, none twice');
});

t.test('idle clients hold no server connection: 30 idle clients on pool.size 2 leave the 31st served', async (t) => {
  // A 31st client that had to wait for a connection an idle client holds gets an error after 5 s instead of hanging.
  const fx = await startProxy(t, { replicas: 0, config: transactionPool(2, { max_client_wait: '5s' }) });
  const clients = await Promise.all(Array.from({ length: 30 }, (_, i) => fx.client({ applicationName: `idle-${i}` })));
  const answers = await Promise.all(clients.map(async (c, i) => (await c.query<{ i: number }>('SELECT $1::int AS i', [i])).rows[0]?.i));
  t.same(answers, Array.from({ length: 30 }, (_, i) => i), 'each of the 30 clients got its own answer');
  const n = await backendCount(fx.cluster.primary);
  t.ok(n <= 2, `pgsplit backends while 30 clients sit idle and connected: ${n} (at most pool.size 2)`);
  const last = await fx.client({ applicationName: 'idle-31' });
  t.same((await last.query('SELECT 31 AS n')).rows, [{ n: 31 }], 'a 31st client is served while the 30 stay connected');
  t.same((await clients[0]!.query('SELECT 1 AS one')).rows, [{ one: 1 }], 'an idle client is served again when it comes back');
});

t.test('a transaction keeps its connection until it ends; other clients wait for it (pool.size 1)', async (t) => {
  const fx = await startProxy(t, { replicas: 0, config: transactionPool(1) });
  // Both connect first: a client's startup may need the one connection too.
  const a = await fx.client({ applicationName: 'tx-a' });
  const b = await fx.client({ applicationName: 'tx-b' });

  await a.query('BEGIN');
  const first = await pid(a);
  const other = pending(b.query<{ p: number }>('SELECT pg_backend_pid() AS p'));
  t.equal(await waitsOrAnswers(fx, other), 'waits', "the other client's statement waits while the transaction is open");
  t.equal(await pid(a), first, 'the same backend for the next statement of the transaction');
  t.equal(Number((await a.query<{ p: number }>('SELECT pg_backend_pid() + $1::int AS p', [0])).rows[0]?.p), first, 'and for an extended-protocol statement in it');
  t.notOk(other.answered, 'the other client has still no answer after two more statements of the transaction');
  await a.query('COMMIT');
  t.equal(Number((await other.result).rows[0]?.p), first, 'after COMMIT the other client runs, on the backend the transaction gave back');

  // A failed transaction (status E) keeps its backend until ROLLBACK.
  await a.query('BEGIN');
  const failedPid = await pid(a);
  t.equal((await a.query('SELECT 1/0').then(() => null, (e: { code?: string }) => e.code)), '22012', 'division by zero fails the transaction');
  const otherAgain = pending(b.query<{ p: number }>('SELECT pg_backend_pid() AS p'));
  t.equal(await waitsOrAnswers(fx, otherAgain), 'waits', "the other client waits while the transaction is failed but not ended");
  t.equal((await a.query('SELECT 1').then(() => null, (e: { code?: string }) => e.code)), '25P02',
    'the next statement reaches the same failed transaction (25P02), not a fresh backend');
  t.notOk(otherAgain.answered, 'the other client has still no answer before ROLLBACK');
  await a.query('ROLLBACK');
  t.equal(Number((await otherAgain.result).rows[0]?.p), failedPid, 'after ROLLBACK the other client runs on that backend');
  t.equal(await pid(a), failedPid, 'and the first client, outside a transaction, shares it (pool.size 1)');
});

t.test('settings stay per client: SET and startup parameters follow the client across one shared backend', async (t) => {
  const fx = await startProxy(t, { replicas: 0, config: transactionPool(1) });
  const defaultWorkMem = (await fx.cluster.primary.query<{ work_mem: string }>('SHOW work_mem'))[0]?.work_mem;
  const defaultPath = (await fx.cluster.primary.query<{ search_path: string }>('SHOW search_path'))[0]?.search_path;
  const a = await fx.client({ applicationName: 'alpha-start' });
  const b = await fx.client({ applicationName: 'beta' });
  const show = async (c: pg.Client): Promise<{ p: number; wm: string; app: string; sp: string }> => {
    const r = await c.query<{ p: number; wm: string; app: string; sp: string }>(
      "SELECT pg_backend_pid() AS p, current_setting('work_mem') AS wm, current_setting('application_name') AS app, current_setting('search_path') AS sp");
    return r.rows[0]!;
  };
  const pids = new Set<number>();
  await a.query("SET work_mem = '7MB'");
  await a.query("SET application_name = 'alpha'");
  const b1 = await show(b);
  pids.add(b1.p);
  t.same([b1.wm, b1.app], [defaultWorkMem, 'beta'], "B does not see A's SETs: default work_mem, its own application_name");
  const a1 = await show(a);
  pids.add(a1.p);
  t.same([a1.wm, a1.app], ['7MB', 'alpha'], 'A still has its SETs after B used the connection');
  await b.query("SET work_mem = '9MB'");
  const a2 = await show(a);
  pids.add(a2.p);
  t.equal(a2.wm, '7MB', "A keeps 7MB after B's own SET");
  const b2 = await show(b);
  pids.add(b2.p);
  t.same([b2.wm, b2.app], ['9MB', 'beta'], 'B has its own SET');
  await a.query('RESET work_mem');
  const b3 = await show(b);
  const a3 = await show(a);
  pids.add(a3.p).add(b3.p);
  t.same([a3.wm, b3.wm], [defaultWorkMem, '9MB'], "A's RESET undoes A's value only");

  t.same([...pids], [a1.p], 'every statement of A and B (same startup parameters) ran on the one pooled backend (pool.size 1)');

  // C's startup parameters differ: it borrows connections logged in with them (pool.size 1: the other
  // login's connection is closed to make way), so that its RESET returns to its startup value.
  const c = await fx.client({ options: '-c search_path=pg_catalog' });
  const cs = await show(c);
  const ds = await show(a);
  const cs2 = await show(c);
  t.same([cs.sp, ds.sp, cs2.sp], ['pg_catalog', defaultPath, 'pg_catalog'], 'startup options -c search_path hold for that client only, interleaved');
  t.ok(cs.p !== ds.p && ds.p !== cs2.p, `C and A ran on connections of their own logins, one at a time (${cs.p}, ${ds.p}, ${cs2.p})`);
  await c.query('SET search_path = public');
  await c.query('RESET search_path');
  t.equal((await show(c)).sp, 'pg_catalog', "C's RESET returns to its startup value, as on a direct connection");
  await a.query('RESET ALL');
  const a4 = await show(a);
  // application_name is not part of a login (clients tagged by name share connections): RESET ALL returns it to the server's default.
  t.same([a4.wm, a4.sp], [defaultWorkMem, defaultPath], "A's RESET ALL returns to its own startup values, not C's");
});

t.test('named prepared statements of the protocol work across borrowed connections', async (t) => {
  t.test('same name, same and different texts, two clients on one backend (pool.size 1)', async (t) => {
    const fx = await startProxy(t, { replicas: 0, config: transactionPool(1) });
    const a = await fx.client();
    const b = await fx.client();
    const q1 = (c: pg.Client, i: number): Promise<number> =>
      c.query<{ x: number; p: number }>({ name: 'q1', text: 'SELECT $1::int + 1 AS x, pg_backend_pid() AS p', values: [i] }).then((r) => {
        pids.add(Number(r.rows[0]?.p));
        return Number(r.rows[0]?.x);
      });
    const pids = new Set<number>();
    const wrong: string[] = [];
    const round = async (k: number): Promise<void> => {
      if (await q1(a, k) !== k + 1) wrong.push(`A q1(${k})`);
      if (await q1(b, 100 + k) !== 101 + k) wrong.push(`B q1(${100 + k})`);
      const ra = await a.query({ name: 'q2', text: 'SELECT 1 AS a' });
      if (JSON.stringify(ra.rows) !== '[{"a":1}]') wrong.push(`A q2 gave ${JSON.stringify(ra.rows)}`);
      const rb = await b.query({ name: 'q2', text: 'SELECT 2 AS b' });
      if (JSON.stringify(rb.rows) !== '[{"b":2}]') wrong.push(`B q2 gave ${JSON.stringify(rb.rows)}`);
    };
    for (let k = 0; k < 5; k++) await round(k);
    // And both at once, so that their statements interleave on the one backend.
    await Promise.all([0, 1, 2, 3, 4].flatMap((k) => [
      q1(a, k).then((x) => { if (x !== k + 1) wrong.push(`A q1(${k}) at once`); }),
      q1(b, 50 + k).then((x) => { if (x !== 51 + k) wrong.push(`B q1(${50 + k}) at once`); }),
      a.query({ name: 'q2', text: 'SELECT 1 AS a' }).then((r) => { if (!('a' in (r.rows[0] ?? {}))) wrong.push('A q2 at once'); }),
      b.query({ name: 'q2', text: 'SELECT 2 AS b' }).then((r) => { if (!('b' in (r.rows[0] ?? {}))) wrong.push('B q2 at once'); }),
    ]));
    t.same(wrong, [], "each client always got its own statement's answer");
    t.equal(pids.size, 1, `both clients' statements ran on one backend (pool.size 1): ${[...pids].join(', ')}`);
  });

  t.test('a statement prepared on one backend runs when the client next borrows another (pool.size 2)', async (t) => {
    const fx = await startProxy(t, { replicas: 0, config: transactionPool(2) });
    const a = await fx.client();
    const helpers = [await fx.client(), await fx.client(), await fx.client()];
    const run = async (i: number): Promise<{ x: number; p: number }> => {
      const r = await a.query<{ x: number; p: number }>({ name: 'moving', text: 'SELECT $1::int * 2 AS x, pg_backend_pid() AS p', values: [i] });
      return { x: Number(r.rows[0]?.x), p: Number(r.rows[0]?.p) };
    };
    const first = await run(3);
    t.equal(first.x, 6, 'the named statement answered where it was prepared');
    // Other clients open transactions until one holds the backend the statement was prepared on: the
    // connection stays with its client between transactions (parked) until the pool is full and another
    // client needs one.
    const holding: pg.Client[] = [];
    let held: pg.Client | undefined;
    for (const h of helpers) {
      await h.query('BEGIN');
      if (await pid(h) === first.p) {
        held = h;
        break;
      }
      holding.push(h);
    }
    t.ok(held, `another client's transaction holds backend ${first.p}, where the statement was prepared`);
    const second = run(4);
    for (const h of holding) await h.query('COMMIT');
    const moved = await second;
    t.equal(moved.x, 8, 'the named statement answered on the other backend');
    t.not(moved.p, first.p, 'it ran on another backend than the one it was prepared on');
    await held?.query('COMMIT');
  });

  t.test('pgbench -M prepared -S, 8 clients through pool.size 2', async (t) => {
    const fx = await startProxy(t, { replicas: 0, config: transactionPool(2) });
    const direct = { ...process.env, PGHOST: '127.0.0.1', PGPORT: String(fx.cluster.primary.port), PGUSER: 'postgres', PGDATABASE: 'postgres', PGOPTIONS: '' };
    const init = await pgbench(direct, ['-i', '-s', '1', '-q']);
    t.equal(init.code, 0, `pgbench -i on the primary directly${init.code === 0 ? '' : `\n${init.stderr}`}`);
    const watch = await watchBackends(fx.cluster.primary);
    const r = await pgbench(fx.env({ PGOPTIONS: '' }), ['-M', 'prepared', '-S', '-n', '-c', '8', '-t', '50']);
    const seen = await watch.stop();
    t.equal(r.code, 0, 'pgbench exits 0');
    t.match(r.stdout, /number of transactions actually processed: 400\/400/, 'all 8 x 50 transactions processed');
    t.match(r.stdout, /number of failed transactions: 0 /, '0 failed transactions');
    // pgbench goes on after a failed PREPARE when another client's statement of the same name and text is there: its errors are the tell.
    t.notMatch(r.stderr, /error/i, `pgbench reported no error${/error/i.test(r.stderr) ? `:\n${r.stderr.slice(0, 1000)}` : ''}`);
    t.ok(seen.max <= 2, `most pgsplit backends at once during the run: ${seen.max} over ${seen.samples} samples (at most pool.size 2)`);
  });
});

t.test('pins keep the connection: LISTEN, a temporary table, SQL PREPARE; the next client finds none of them', async (t) => {
  const fx = await startProxy(t, { replicas: 0, config: { ...transactionPool(2), metrics: { listen: '127.0.0.1:0' } } });
  const others = await Promise.all([0, 1, 2].map((i) => fx.client({ applicationName: `other-${i}` })));

  /**
   * Runs `use` on the pinned client 10 times while three other clients run autocommit statements on the
   * pool: the pinned client's backend never changes, and nobody else gets it.
   */
  const whileOthersRun = async (t: Test, pinned: pg.Client, pinnedPid: number, use: (k: number) => Promise<number>): Promise<void> => {
    const mine = new Set<number>();
    const theirs = new Set<number>();
    await Promise.all([
      (async () => {
        for (let k = 0; k < 10; k++) mine.add(await use(k));
      })(),
      ...others.map(async (o) => {
        for (let k = 0; k < 10; k++) theirs.add(await pid(o));
      }),
    ]);
    t.same([...mine], [pinnedPid], 'the pinned client stayed on its backend');
    t.notOk(theirs.has(pinnedPid), 'no other client ran on the pinned backend');
    t.equal(theirs.size, 1, `the three other clients shared the one other backend (pool.size 2): ${[...theirs].join(', ')}`);
  };

  /**
   * After the pinned client left: checks both of the pool's backends (one held by an open transaction so
   * that the other statement must take the other one) for what the pinned client could have left.
   */
  const leftovers = async (t: Test, pinnedPid: number, fate: 'pooled' | 'closed' = 'pooled'): Promise<void> => {
    const [x, y] = [await fx.client(), await fx.client()];
    const check = async (c: pg.Client): Promise<{ p: number; listening: number; prepared: number; temp: boolean }> =>
      (await c.query<{ p: number; listening: number; prepared: number; temp: boolean }>(`SELECT pg_backend_pid() AS p,
        (SELECT count(*)::int FROM pg_listening_channels()) AS listening, (SELECT count(*)::int FROM pg_prepared_statements) AS prepared,
        to_regclass('pg_temp.pinned_tmp') IS NOT NULL AS temp`)).rows[0]!;
    await x.query('BEGIN');
    const inTx = await check(x);
    const auto = await check(y);
    await x.query('COMMIT');
    t.not(inTx.p, auto.p, 'the checks ran on both backends of the pool');
    if (fate === 'pooled') t.ok(inTx.p === pinnedPid || auto.p === pinnedPid, `the pinned backend ${pinnedPid} went back to the pool when its client left (${inTx.p}, ${auto.p})`);
    else {
      t.ok(inTx.p !== pinnedPid && auto.p !== pinnedPid, `the pinned backend ${pinnedPid} was not lent again (${inTx.p}, ${auto.p})`);
      // Closing sends Terminate; the backend leaves pg_stat_activity a moment later.
      let alive: Array<{ n: number }> = [];
      for (let i = 0; i < 100; i++) {
        alive = await fx.cluster.primary.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE pid = ${pinnedPid}`);
        if (alive[0]?.n === 0) break;
        await sleep(50);
      }
      t.same(alive, [{ n: 0 }], `the pinned backend ${pinnedPid} was closed`);
    }
    t.same([inTx, auto].map((r) => [r.listening, r.prepared, r.temp]), [[0, 0, false], [0, 0, false]], 'no LISTEN, prepared statement or temporary table left on either');
    await Promise.all([x.end(), y.end()]);
  };

  t.test('LISTEN', async (t) => {
    const before = (await metric(fx, 'pgsplit_pool_pins_total', { reason: 'listen' })) ?? 0;
    const l = await fx.client({ applicationName: 'listener' });
    await l.query('LISTEN pin_channel');
    const lp = await pid(l);
    await whileOthersRun(t, l, lp, () => pid(l));
    const got: string[] = [];
    l.on('notification', (m) => got.push(m.payload ?? ''));
    await others[0]!.query("NOTIFY pin_channel, 'hello'");
    // The listener is idle on its pinned backend; a statement of its own is the latest point it must have the notification by.
    for (let i = 0; i < 100 && got.length === 0; i++) {
      await l.query('SELECT 1');
      if (got.length === 0) await sleep(20);
    }
    t.same(got, ['hello'], "another client's NOTIFY reached the listener");
    t.ok(((await metric(fx, 'pgsplit_pool_pins_total', { reason: 'listen' })) ?? 0) > before, 'pgsplit_pool_pins_total{reason="listen"} counted it');
    await l.end();
    await leftovers(t, lp);
  });

  t.test('CREATE TEMP TABLE', async (t) => {
    const before = (await metric(fx, 'pgsplit_pool_pins_total', { reason: 'temp-table' })) ?? 0;
    const c = await fx.client({ applicationName: 'temp-user' });
    await c.query('CREATE TEMP TABLE pinned_tmp (k int)');
    const cp = await pid(c);
    await whileOthersRun(t, c, cp, async (k) => {
      await c.query('INSERT INTO pinned_tmp VALUES ($1)', [k]);
      return pid(c);
    });
    t.same((await c.query('SELECT count(*)::int AS n FROM pinned_tmp')).rows, [{ n: 10 }], 'the temporary table is there with every row on later statements');
    t.ok(((await metric(fx, 'pgsplit_pool_pins_total', { reason: 'temp-table' })) ?? 0) > before, 'pgsplit_pool_pins_total{reason="temp-table"} counted it');
    await c.end();
    // DISCARD ALL would leave the backend's temporary schema, which a fresh backend's client never sees
    // (SET temp_buffers refused, PREPARE TRANSACTION let through): the backend is closed instead.
    await leftovers(t, cp, 'closed');
    const next = await fx.client();
    await next.query('SET temp_buffers = 100');
    t.same((await next.query('SHOW temp_buffers')).rows, [{ temp_buffers: '800kB' }], 'the next client sets temp_buffers as on a fresh backend');
    await next.end();
  });

  t.test('SQL PREPARE', async (t) => {
    // The classifier's pin reason is 'sql-prepare'; 'prepared-statement' is counted too, in case the metric names it so.
    const prepPins = async (): Promise<number> => ((await metric(fx, 'pgsplit_pool_pins_total', { reason: 'sql-prepare' })) ?? 0)
      + ((await metric(fx, 'pgsplit_pool_pins_total', { reason: 'prepared-statement' })) ?? 0);
    const before = await prepPins();
    const c = await fx.client({ applicationName: 'preparer' });
    await c.query('PREPARE pinned_stmt AS SELECT pg_backend_pid() AS p');
    const cp = await pid(c);
    await whileOthersRun(t, c, cp, async () => Number((await c.query<{ p: number }>('EXECUTE pinned_stmt')).rows[0]?.p));
    t.ok(await prepPins() > before, 'pgsplit_pool_pins_total{reason="sql-prepare"} counted it');
    await c.end();
    await leftovers(t, cp);
  });
});

t.test('two users: each client is its own role, on its own pool, in transaction mode', async (t) => {
  const alice = { name: 'alice', password: 'Alice-tx-1', method: 'scram-sha-256' } as const;
  const bob = { name: 'bob', password: 'Bob-tx-2', method: 'scram-sha-256' } as const;
  const cluster = await startCluster(t, { replicas: 0, users: [alice, bob] });
  // Server URLs without a user: each client logs in to the server as itself (users:).
  const fx = await startProxy(t, {
    reuseCluster: cluster,
    config: { primary: `postgres://127.0.0.1:${cluster.primary.port}/postgres`, users: [alice, bob].map((u) => ({ name: u.name, password: u.password })), ...transactionPool(1) },
  });
  const clients = [
    { as: 'alice', c: await fx.client({ user: alice.name, password: alice.password }) },
    { as: 'bob', c: await fx.client({ user: bob.name, password: bob.password }) },
    { as: 'alice', c: await fx.client({ user: alice.name, password: alice.password }) },
    { as: 'bob', c: await fx.client({ user: bob.name, password: bob.password }) },
  ];
  const pidsOf: Record<string, Set<number>> = { alice: new Set(), bob: new Set() };
  const wrong: string[] = [];
  for (let k = 0; k < 3; k++) {
    for (const { as, c } of clients) {
      const r = (await c.query<{ cu: string; su: string; p: number }>('SELECT current_user AS cu, session_user AS su, pg_backend_pid() AS p')).rows[0]!;
      if (r.cu !== as || r.su !== as) wrong.push(`${as} saw current_user ${r.cu}, session_user ${r.su}`);
      pidsOf[as]!.add(Number(r.p));
    }
  }
  t.same(wrong, [], 'every statement ran as the client\'s own role');
  t.equal(pidsOf.alice!.size, 1, 'the two alice clients shared one backend (pool.size 1 per user)');
  t.equal(pidsOf.bob!.size, 1, 'the two bob clients shared one backend');
  t.notOk([...pidsOf.alice!].some((p) => pidsOf.bob!.has(p)), 'alice and bob never shared a backend');
});

t.test('a cancel reaches the statement of the client that sent it', async (t) => {
  t.test('a long statement is cancelled; the other clients on the pool are not (pool.size 2)', async (t) => {
    const fx = await startProxy(t, { replicas: 0, config: transactionPool(2) });
    const a = await fx.client({ applicationName: 'sleeper' });
    const b = await fx.client();
    const c = await fx.client();
    const sleeping = a.query('SELECT pg_sleep(10)').then(() => null, (e: Error & { code?: string }) => e.code ?? String(e));
    while (Number((await fx.cluster.primary.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(10)' AND state = 'active'"))[0]?.n) < 1) {
      await sleep(20);
    }
    const sleeperPid = Number((await fx.cluster.primary.query<{ p: number }>("SELECT pid AS p FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(10)' AND state = 'active'"))[0]?.p);
    const errors: string[] = [];
    const pids = new Set<number>();
    const shortOnes = (cl: pg.Client, n: number): Promise<void> => (async () => {
      for (let k = 0; k < n; k++) pids.add(await pid(cl));
    })().catch((e: Error & { code?: string }) => { errors.push(e.code ?? String(e)); });
    // While A sleeps, B and C share the other backend.
    await Promise.all([shortOnes(b, 20), shortOnes(c, 20)]);
    t.notOk(pids.has(sleeperPid), 'the other clients never ran on the sleeping backend');
    t.equal(pids.size, 1, `the two other clients shared the one other backend: ${[...pids].join(', ')}`);
    // A's cancel arrives while B runs a statement of its own on that other backend, and C waits for it.
    const sleepB = b.query('SELECT pg_sleep(1.5) AS slept').then(() => null, (e: Error & { code?: string }) => e.code ?? String(e));
    while (Number((await fx.cluster.primary.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(1.5) AS slept' AND state = 'active'"))[0]?.n) < 1) {
      await sleep(20);
    }
    const moreC = shortOnes(c, 5);
    await sendCancel(fx.port, a);
    t.equal(await sleeping, '57014', "the sleeper's statement was cancelled");
    t.equal(await sleepB, null, "B's statement running at the time of the cancel ran to its end");
    await moreC;
    t.same(errors, [], "C's statements were not cancelled either");
    const again = await Promise.all([pid(a), pid(b)]);
    t.ok(again.every((p) => p > 0), 'the cancelled client and the others go on');
  });

  t.test('a cancel sent by a client that is idle does not stop the statement now on its former backend (pool.size 1)', async (t) => {
    const fx = await startProxy(t, { replicas: 0, config: transactionPool(1) });
    const a = await fx.client();
    const b = await fx.client();
    const aPid = await pid(a);
    const sleeping = b.query<{ p: number }>('SELECT pg_backend_pid() AS p, pg_sleep(2)').then((r) => Number(r.rows[0]?.p), (e: Error & { code?: string }) => e.code ?? String(e));
    while (Number((await fx.cluster.primary.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_stat_activity WHERE query LIKE '%pg_sleep(2)' AND state = 'active'"))[0]?.n) < 1) {
      await sleep(20);
    }
    await sendCancel(fx.port, a);
    t.equal(await sleeping, aPid, "B's statement ran to its end, on the backend A had used: A's cancel did not reach it");
  });
});

t.test('tagged clients: reads on the replica, writes on the primary, each node within pool.size', async (t) => {
  const fx = await startProxy(t, { replicas: 1, config: transactionPool(2) });
  await fx.cluster.primary.query('CREATE TABLE tagged_rows (client int, k int)');
  await fx.cluster.waitForReplication();
  const replica = fx.cluster.replicas[0]!;
  const readers = await Promise.all(Array.from({ length: 8 }, () => fx.client({ options: TAGGED })));
  const writers = await Promise.all(Array.from({ length: 4 }, () => fx.client({ options: TAGGED })));
  const onReplica = await watchBackends(replica);
  const onPrimary = await watchBackends(fx.cluster.primary);
  const replicaPids = new Set<number>();
  const primaryPids = new Set<number>();
  const wrong: string[] = [];
  const note = (rec: boolean, p: number): void => {
    (rec ? replicaPids : primaryPids).add(p);
  };
  await Promise.all([
    ...readers.map(async (c, i) => {
      for (let k = 0; k < 10; k++) {
        const r = (await c.query<{ rec: boolean; p: number }>('SELECT pg_is_in_recovery() AS rec, pg_backend_pid() AS p')).rows[0]!;
        if (!r.rec) wrong.push(`reader ${i}: an autocommit read ran on the primary`);
        note(r.rec, r.p);
        await c.query('BEGIN');
        const t1 = (await c.query<{ rec: boolean; p: number }>('SELECT pg_is_in_recovery() AS rec, pg_backend_pid() AS p')).rows[0]!;
        const t2 = (await c.query<{ rec: boolean; p: number }>('SELECT pg_is_in_recovery() AS rec, pg_backend_pid() AS p FROM tagged_rows LIMIT 1')).rows[0] ?? t1;
        await c.query('COMMIT');
        if (!t1.rec || !t2.rec) wrong.push(`reader ${i}: a read in BEGIN ... COMMIT ran on the primary`);
        if (t1.p !== t2.p) wrong.push(`reader ${i}: the transaction changed backends`);
        note(t1.rec, t1.p);
      }
    }),
    ...writers.map(async (c, i) => {
      for (let k = 0; k < 5; k++) {
        const r = (await c.query<{ rec: boolean; p: number }>('INSERT INTO tagged_rows VALUES ($1, $2) RETURNING pg_is_in_recovery() AS rec, pg_backend_pid() AS p', [i, k])).rows[0]!;
        if (r.rec) wrong.push(`writer ${i}: a write ran on the replica`);
        note(r.rec, r.p);
      }
    }),
  ]);
  const seenReplica = await onReplica.stop();
  const seenPrimary = await onPrimary.stop();
  t.same(wrong, [], 'reads ran on the replica, writes on the primary');
  t.same((await fx.cluster.primary.query<{ n: number }>('SELECT count(*)::int AS n FROM tagged_rows'))[0], { n: 20 }, 'every write landed once');
  t.ok(replicaPids.size >= 1 && replicaPids.size <= 2, `distinct replica backends that answered: ${replicaPids.size} (at most pool.size 2)`);
  t.ok(primaryPids.size >= 1 && primaryPids.size <= 2, `distinct primary backends that answered: ${primaryPids.size} (at most pool.size 2)`);
  t.ok(seenReplica.max <= 2, `most pgsplit backends on the replica at once: ${seenReplica.max} over ${seenReplica.samples} samples`);
  t.ok(seenPrimary.max <= 2, `most pgsplit backends on the primary at once: ${seenPrimary.max} over ${seenPrimary.samples} samples`);
});

t.test('a tagged transaction that moves to the primary gives its replica connection back for the next one (pool.size 2)', async (t) => {
  // Each read after the previous write waits for the replica to replay it (however long): it runs there.
  const fx = await startProxy(t, { replicas: 1, config: { ...transactionPool(2), routing: { read_your_writes_timeout: '30s' } } });
  await fx.cluster.primary.query('CREATE TABLE moved_rows (k int)');
  await fx.cluster.waitForReplication();
  const c = await fx.client({ options: TAGGED });
  const replicaPids = new Set<number>();
  const wrong: string[] = [];
  for (let k = 0; k < 10; k++) {
    // Simple and extended BEGIN by turns: the transaction opens on the replica either way.
    await (k % 2 === 0 ? c.query('BEGIN') : c.query({ text: 'BEGIN', queryMode: 'extended' } as { text: string }));
    const r = (await c.query<{ rec: boolean; p: number }>('SELECT pg_is_in_recovery() AS rec, pg_backend_pid() AS p')).rows[0]!;
    const w = (await c.query<{ rec: boolean }>('INSERT INTO moved_rows VALUES ($1) RETURNING pg_is_in_recovery() AS rec', [k])).rows[0]!;
    await c.query('COMMIT');
    if (!r.rec) wrong.push(`round ${k}: the read ran on the primary`);
    if (w.rec) wrong.push(`round ${k}: the write ran on the replica`);
    replicaPids.add(r.p);
  }
  t.same(wrong, [], 'each transaction read on the replica and moved to the primary to write');
  t.same((await fx.cluster.primary.query<{ n: number }>('SELECT count(*)::int AS n FROM moved_rows'))[0], { n: 10 }, 'every write landed once');
  // The replica side's ROLLBACK (swallowed) tells the pool the connection left its transaction: it is reused, not closed.
  t.ok(replicaPids.size <= 2, `replica backends over 10 moved transactions: ${replicaPids.size} (at most pool.size 2)`);
});
