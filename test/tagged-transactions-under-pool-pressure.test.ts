/**
 * Tagged transactions opened with a plain BEGIN (deferred, read on a replica, moved to the primary at the
 * first write), from 8 clients through pools of 2 connections per server: every unit waits for a
 * connection, so answers arrive while later statements queue, and pipelined forms see every ordering of
 * answers and choices. Checked against the model of test/fixtures/tagged-tx-client.ts: every answer as
 * on the primary alone, every acknowledged write on the primary once, nothing of a rolled-back one.
 * (It found a write pipelined behind ROLLBACK TO SAVEPOINT of a failed replica transaction following the
 * replica, 25006, 7 times in 40 s.)
 */
import t from 'tap';
import { startProxy } from './fixtures/proxy-fixture.js';
import { TaggedTxClient, prepareTxTable, verifyTxTable } from './fixtures/tagged-tx-client.js';

t.setTimeout(300_000);

const SECONDS = 20;
const CLIENTS = 8;
const seed = Number(process.env.FUZZ_SEED ?? 20261207);

t.test(`${CLIENTS} tagged transaction clients through pool.size 2 for ${SECONDS} s`, async (t) => {
  const fx = await startProxy(t, { replicas: 2, config: { pool: { mode: 'transaction', size: 2 } } });
  await prepareTxTable(fx.cluster.primary);
  await fx.cluster.waitForReplication();
  t.comment(`seed ${seed}: reproduce with FUZZ_SEED=${seed}`);
  const clients = Array.from({ length: CLIENTS }, (_, k) => new TaggedTxClient(`p${k}`, (seed ^ ((k + 1) * 0x5bd1e995)) >>> 0, fx.port).start());
  await new Promise((r) => setTimeout(r, SECONDS * 1000));
  for (const c of clients) await c.stop();
  const reports = clients.map((c) => c.report);
  const v = await verifyTxTable(fx.cluster.primary, reports);
  const sum = (f: (r: (typeof reports)[number]) => number): number => reports.reduce((n, r) => n + f(r), 0);
  t.comment(`transactions ${sum((r) => r.transactions)} (moved ${sum((r) => r.moving)}), committed ${sum((r) => r.committed)}, ` +
    `reads before a write on a standby ${sum((r) => r.readsOnStandby)}/${sum((r) => r.readsBeforeWrite)}, acknowledged writes ${v.acked}`);
  t.ok(sum((r) => r.transactions) > CLIENTS * 10, 'the clients ran transactions');
  t.ok(sum((r) => r.moving) > 0, 'some transactions moved to the primary');
  t.same(reports.flatMap((r) => r.errors).slice(0, 20), [], 'every answer as the model says (no 25006, no read after a write on a standby)');
  t.equal(sum((r) => r.hangs), 0, 'no hang');
  t.same({ lost: v.lost, twice: v.twice, phantom: v.phantom }, { lost: [], twice: [], phantom: [] }, 'acknowledged writes on the primary once; nothing rolled back is there');
  t.equal(v.ackedPresentOnce, v.acked, `${v.acked} acknowledged writes present once`);
});
