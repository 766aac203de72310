/**
 * LocalAnswers (src/session/local-answers.ts) without a server: the session's own settings (pgsplit.route,
 * max_lag, after) as the startup options, application_name and routing.default set them; the exact
 * backend messages it answers SET / SHOW / RESET with, in the simple and the extended protocol; its errors
 * (22023 bad value, 42704 unknown name, 55P02 read-only, 25P02 in a failed transaction) and when they
 * ask the session to skip to the client's Sync; SHOW pgsplit.lsn through a fake monitor; and the
 * transactional undo (ROLLBACK, ROLLBACK TO SAVEPOINT, a failed COMMIT).
 *
 * Frames are built as a client sends them (fixtures/raw-pg-client.ts) and cut by the session's own
 * FrameReader and LocalStatements, so the commands are the ones the session would pass.
 */
import t from 'tap';
import { FrameReader, type Frame } from '../src/codec/frame-reader.js';
import { Frontend } from '../src/codec/message-types.js';
import type { RouteDecision } from '../src/router/router.js';
import { classifyQuery } from '../src/router/statement-classifier.js';
import { LocalStatements } from '../src/session/extended-local.js';
import { parseLocalCommand, type LocalCommand } from '../src/session/local-command.js';
import { LocalAnswers, type LocalAnswer, type LocalAnswersContext, type LocalAnswersStartup } from '../src/session/local-answers.js';
import { describeAll, errorFields, fe, type BackendMessage } from './fixtures/raw-pg-client.js';

const LSN = 0x16b3748n;

/** A monitor that knows the primary's position (or fails as an unreachable primary does). */
function fakeContext(opts: { maxLagMs?: number; lsn?: bigint | Error } = {}): LocalAnswersContext & { maxLagMs: number; asked: number } {
  const ctx = {
    maxLagMs: opts.maxLagMs ?? 1000,
    asked: 0,
    monitor: {
      primaryLsnNow: async (): Promise<bigint> => {
        ctx.asked++;
        const v = opts.lsn ?? LSN;
        if (v instanceof Error) throw v;
        return v;
      },
    },
  };
  return ctx;
}

function answers(startup: Partial<LocalAnswersStartup> = {}, ctx: LocalAnswersContext = fakeContext()): LocalAnswers {
  return new LocalAnswers(ctx, {
    options: startup.options ?? {},
    applicationName: startup.applicationName ?? '',
    tagApplicationNames: startup.tagApplicationNames ?? [],
    defaultRoute: startup.defaultRoute ?? 'primary',
  });
}

/** Backend messages by type and length. */
function messages(bytes: Buffer): BackendMessage[] {
  const out: BackendMessage[] = [];
  let at = 0;
  while (at < bytes.length) {
    const len = bytes.readInt32BE(at + 1);
    out.push({ type: String.fromCharCode(bytes[at] as number), payload: bytes.subarray(at + 5, at + 1 + len) });
    at += 1 + len;
  }
  return out;
}

const shape = (a: LocalAnswer): string[] => describeAll(messages(a.bytes));

/** A simple Query of `sql`, as the session reads it (null: not pgsplit's). */
function simple(sql: string): LocalCommand {
  const cmd = parseLocalCommand(sql);
  if (cmd === null) throw new Error(`not a pgsplit statement: ${sql}`);
  return cmd;
}

/** The extended messages `bytes`, as the session cuts them: the run about pgsplit's statements. */
function extended(names: LocalStatements, ...bytes: Buffer[]): LocalCommand {
  const frames: Frame[] = new FrameReader({ maxMessageSize: 1 << 20 }).push(Buffer.concat(bytes));
  const parts = names.split(frames);
  if (parts === null || parts.before.length > 0 || parts.after.length > 0) throw new Error('the frames are not all pgsplit\'s');
  return { kind: 'extended', frames: parts.local, sync: parts.local.some((l) => l.frame.type === Frontend.Sync) };
}

/** The decision the router gives a query string (only its classifications matter here). */
function decision(sql: string): RouteDecision {
  return { target: 'primary', reason: 'test', classifications: [classifyQuery(sql)] };
}

t.test('startup: the tag comes from the options, then application_name, then routing.default', async (t) => {
  const plain = answers();
  t.equal(plain.tagged, false);
  t.equal(plain.tagSource, 'default');
  t.equal(plain.startupError, null);
  const byDefault = answers({ defaultRoute: 'replica' });
  t.equal(byDefault.tagged, true);
  t.equal(byDefault.tagSource, 'default');
  const byName = answers({ applicationName: 'report-7', tagApplicationNames: ['report-*'] });
  t.equal(byName.tagged, true);
  t.equal(byName.tagSource, 'application_name');
  t.equal(answers({ applicationName: 'web', tagApplicationNames: ['report-*'] }).tagged, false, 'a name no glob matches: untagged');
  const byOption = answers({ options: { route: 'Primary' }, applicationName: 'report-7', tagApplicationNames: ['report-*'] });
  t.equal(byOption.tagged, false, 'the startup option wins over application_name');
  t.equal(byOption.tagSource, 'startup-option');
  const withValues = answers({ options: { route: 'replica', max_lag: '250ms', after: '0/16B3748' } });
  t.equal(withValues.tagged, true);
  t.equal(withValues.maxLagMs, 250);
  t.equal(withValues.afterLsn, LSN);
});

t.test('startup: an unknown name or a bad value is kept as the error that refuses the connection', async (t) => {
  t.equal(answers({ options: { route: 'replcia' } }).startupError?.sqlState, '22023');
  t.equal(answers({ options: { max_lag: 'soon' } }).startupError?.sqlState, '22023');
  t.equal(answers({ options: { rout: 'replica' } }).startupError?.sqlState, '42704');
  const first = answers({ options: { nope: 'x', route: 'sideways' } }).startupError;
  t.equal(first?.sqlState, '42704', 'the first mistake is the one reported');
  t.match(first?.message ?? '', /pgsplit\.nope/);
});

t.test('simple protocol: SET, SHOW and RESET pgsplit.route', async (t) => {
  const la = answers({ applicationName: 'report-7', tagApplicationNames: ['report-*'] });
  t.same(shape(la.answer(simple('SHOW pgsplit.route'), 'I')), ['Fields:pgsplit.route', 'Row:replica', 'Complete:SHOW', 'Ready:I']);
  const set = la.answer(simple("SET pgsplit.route = 'primary'"), 'I');
  t.same(shape(set), ['Complete:SET', 'Ready:I']);
  t.same(set.errors, []);
  t.equal(set.skipToSync, false);
  t.equal(la.tagged, false);
  t.equal(la.tagSource, 'set');
  t.same(shape(la.answer(simple('/* app */ show PGSPLIT.ROUTE;'), 'T')), ['Fields:pgsplit.route', 'Row:primary', 'Complete:SHOW', 'Ready:T'],
    'comments around it and any case; ReadyForQuery carries the session\'s status');
  t.same(shape(la.answer(simple('RESET pgsplit.route'), 'I')), ['Complete:RESET', 'Ready:I']);
  t.equal(la.tagged, true, 'RESET returns to the startup tag');
  t.equal(la.tagSource, 'application_name');
  la.answer(simple('SET pgsplit.route TO replica'), 'I');
  t.equal(la.tagSource, 'set');
  t.same(shape(la.answer(simple('SET pgsplit.route = DEFAULT'), 'I')), ['Complete:SET', 'Ready:I'], 'SET ... DEFAULT answers SET, as PostgreSQL does');
  t.equal(la.tagSource, 'application_name');
});

t.test('simple protocol: pgsplit.max_lag and pgsplit.after', async (t) => {
  const ctx = fakeContext({ maxLagMs: 1000 });
  const la = answers({}, ctx);
  t.same(shape(la.answer(simple('SHOW pgsplit.max_lag'), 'I')), ['Fields:pgsplit.max_lag', 'Row:1000ms', 'Complete:SHOW', 'Ready:I'], 'routing.max_lag while unset');
  ctx.maxLagMs = 400;
  t.same(shape(la.answer(simple('SHOW pgsplit.max_lag'), 'I')), ['Fields:pgsplit.max_lag', 'Row:400ms', 'Complete:SHOW', 'Ready:I'], 'read live: a reload changes it');
  t.same(shape(la.answer(simple("SET pgsplit.max_lag = '2s'"), 'I')), ['Complete:SET', 'Ready:I']);
  t.equal(la.maxLagMs, 2000);
  t.same(shape(la.answer(simple('SHOW pgsplit.max_lag'), 'I')), ['Fields:pgsplit.max_lag', 'Row:2000ms', 'Complete:SHOW', 'Ready:I']);
  t.same(shape(la.answer(simple('RESET pgsplit.max_lag'), 'I')), ['Complete:RESET', 'Ready:I']);
  t.equal(la.maxLagMs, null);

  t.same(shape(la.answer(simple('SHOW pgsplit.after'), 'I')), ['Fields:pgsplit.after', 'Row:', 'Complete:SHOW', 'Ready:I'], 'empty while unset');
  t.same(shape(la.answer(simple("SET pgsplit.after = '0/16B3748'"), 'I')), ['Complete:SET', 'Ready:I']);
  t.equal(la.afterLsn, LSN);
  t.same(shape(la.answer(simple('SHOW pgsplit.after'), 'I')), ['Fields:pgsplit.after', 'Row:0/16B3748', 'Complete:SHOW', 'Ready:I']);
  t.same(shape(la.answer(simple('RESET pgsplit.after'), 'I')), ['Complete:RESET', 'Ready:I']);
  t.equal(la.afterLsn, null);
});

t.test('simple protocol: errors name what to fix and change nothing', async (t) => {
  const la = answers();
  const cases: Array<[string, string]> = [
    ["SET pgsplit.route = 'replcia'", '22023'],
    ["SET pgsplit.max_lag = 'soon'", '22023'],
    ["SET pgsplit.after = 'yesterday'", '22023'],
    ["SET pgsplit.nope = 'x'", '42704'],
    ['SHOW pgsplit.nope', '42704'],
    ["SET pgsplit.lsn = '0/1'", '55P02'],
    ["SET LOCAL pgsplit.route = 'replica'", '0A000'],
  ];
  for (const [sql, code] of cases) {
    const a = la.answer(simple(sql), 'I');
    t.same(shape(a), [`Error:${code}`, 'Ready:I'], sql);
    t.same(a.errors, [code], `${sql}: the session counts ${code}`);
    t.equal(a.skipToSync, false, 'a simple Query has no Sync to skip to');
  }
  const invalid = messages(la.answer(simple("SET pgsplit.route = 'replcia'"), 'I').bytes)[0];
  t.match(errorFields(invalid?.payload ?? Buffer.alloc(0)), { S: 'ERROR', M: /replcia/, H: /'replica', 'primary', DEFAULT/ }, 'the hint lists the values allowed');
  t.same([la.tagged, la.maxLagMs, la.afterLsn], [false, null, null]);

  const failed = la.answer(simple("SET pgsplit.route = 'replica'"), 'E');
  t.same(shape(failed), ['Error:25P02', 'Ready:E'], 'in a failed transaction, as PostgreSQL answers any statement there');
  t.same(failed.errors, ['25P02']);
  t.equal(la.tagged, false, 'not applied');
  t.same(shape(la.answer(simple('SHOW pgsplit.route'), 'E')), ['Error:25P02', 'Ready:E']);
  t.same(shape(la.answer({ kind: 'ready' }, 'E')), ['Ready:E'], 'the Sync ending a skipped run: ReadyForQuery alone');
});

t.test('extended protocol: SET, SHOW and RESET answered as a server answers them', async (t) => {
  const la = answers();
  const names = new LocalStatements();
  const set = la.answer(extended(names, fe.parse('', "SET pgsplit.route = 'replica'"), fe.bind('', ''), fe.describe('P', ''), fe.execute(), fe.sync()), 'I');
  t.same(shape(set), ['ParseComplete', 'BindComplete', 'NoData', 'Complete:SET', 'Ready:I']);
  t.equal(set.skipToSync, false);
  t.equal(la.tagged, true);

  const show = la.answer(extended(names, fe.parse('show', 'SHOW pgsplit.route'), fe.describe('S', 'show'), fe.bind('', 'show'), fe.execute(), fe.sync()), 'T');
  t.same(shape(show), ['ParseComplete', 'Params:', 'Fields:pgsplit.route', 'BindComplete', 'Row:replica', 'Complete:SHOW', 'Ready:T']);
  const again = la.answer(extended(names, fe.bind('p', 'show'), fe.describe('P', 'p'), fe.execute('p'), fe.close('S', 'show'), fe.sync()), 'I');
  t.same(shape(again), ['BindComplete', 'Fields:pgsplit.route', 'Row:replica', 'Complete:SHOW', 'CloseComplete', 'Ready:I'], 'a named statement and portal, then Close');

  const reset = la.answer(extended(names, fe.parse('', 'RESET pgsplit.route'), fe.bind('', ''), fe.execute(), fe.flush()), 'I');
  t.same(shape(reset), ['ParseComplete', 'BindComplete', 'Complete:RESET'], 'with a Flush and no Sync: no ReadyForQuery');
  t.equal(reset.skipToSync, false, 'no error: nothing to skip');
  t.equal(la.tagged, false);
  t.equal(la.tagSource, 'default');
});

t.test('extended protocol: after an error the rest is skipped up to the Sync', async (t) => {
  const la = answers();
  const names = new LocalStatements();
  const bad = la.answer(extended(names,
    fe.parse('', "SET pgsplit.max_lag = 'soon'"), fe.bind('', ''), fe.execute(),
    fe.parse('', "SET pgsplit.route = 'replica'"), fe.bind('', ''), fe.execute(), fe.sync(),
    fe.parse('', 'SHOW pgsplit.route'), fe.bind('', ''), fe.execute(), fe.sync()), 'I');
  t.same(shape(bad), ['ParseComplete', 'BindComplete', 'Error:22023', 'Ready:I', 'ParseComplete', 'BindComplete', 'Row:primary', 'Complete:SHOW', 'Ready:I'],
    'the SET behind the error is skipped (the session stays untagged); the Sync ends the skipping');
  t.same(bad.errors, ['22023']);
  t.equal(bad.skipToSync, false, 'the Sync came in this run');
  t.equal(la.tagged, false);

  const open = la.answer(extended(names, fe.parse('', "SET pgsplit.nope = '1'"), fe.bind('', ''), fe.execute(), fe.parse('', 'RESET pgsplit.route'), fe.flush()), 'I');
  t.same(shape(open), ['ParseComplete', 'BindComplete', 'Error:42704']);
  t.equal(open.skipToSync, true, 'no Sync in this run: the session skips the client\'s messages up to it');

  const inFailed = la.answer(extended(names, fe.parse('', "SET pgsplit.route = 'replica'"), fe.bind('', ''), fe.execute(), fe.sync()), 'E');
  t.same(shape(inFailed), ['Error:25P02', 'Ready:E'], 'in a failed transaction the Parse already fails');
  t.same(inFailed.errors, ['25P02']);
  t.equal(la.tagged, false);
});

t.test('SHOW pgsplit.lsn asks the monitor first, in either protocol', async (t) => {
  const ctx = fakeContext();
  const la = answers({}, ctx);
  const cmd = simple('SHOW pgsplit.lsn');
  t.equal(la.needsLsn(cmd), true);
  t.equal(la.needsLsn(simple('SHOW pgsplit.route')), false);
  const lsn = await la.primaryLsn();
  t.equal(lsn, LSN);
  t.equal(ctx.asked, 1);
  t.same(shape(la.answer(cmd, 'I', lsn)), ['Fields:pgsplit.lsn', 'Row:0/16B3748', 'Complete:SHOW', 'Ready:I']);
  const notAsked = la.answer(cmd, 'I');
  t.same(notAsked.errors, ['XX000'], 'answering before asking is a bug in the caller, said as one');

  const names = new LocalStatements();
  const ext = extended(names, fe.parse('', 'SHOW pgsplit.lsn'), fe.bind('', ''), fe.describe('P', ''), fe.execute(), fe.sync());
  t.equal(la.needsLsn(ext), true);
  t.equal(la.needsLsn(extended(names, fe.parse('lsn', 'SHOW pgsplit.lsn'), fe.sync())), false, 'only an Execute of it needs the position');
  t.same(shape(la.answer(ext, 'I', lsn)), ['ParseComplete', 'BindComplete', 'Fields:pgsplit.lsn', 'Row:0/16B3748', 'Complete:SHOW', 'Ready:I']);

  const down = answers({}, fakeContext({ lsn: new Error('connection refused') }));
  const why = await down.primaryLsn();
  const a = down.answer(cmd, 'I', why);
  t.same(shape(a), ['Error:08006', 'Ready:I'], 'the primary unreachable: 08006, saying why');
  t.match(errorFields(messages(a.bytes)[0]?.payload ?? Buffer.alloc(0)).M, /connection refused/);
});

t.test('pgsplit settings are transactional: ROLLBACK, ROLLBACK TO SAVEPOINT, failed COMMIT', async (t) => {
  const la = answers();
  const set = (sql: string): void => {
    t.same(la.answer(simple(sql), 'T').errors, [], sql);
  };
  // BEGIN; SET ...; ROLLBACK: the values at BEGIN come back.
  la.trackUndo('I', 'T', true, undefined, decision('BEGIN'));
  set("SET pgsplit.route = 'replica'");
  set("SET pgsplit.max_lag = '50ms'");
  set("SET pgsplit.after = '0/16B3748'");
  t.same([la.tagged, la.maxLagMs, la.afterLsn], [true, 50, LSN]);
  la.trackUndo('T', 'I', true, undefined, decision('ROLLBACK'));
  t.same([la.tagged, la.tagSource, la.maxLagMs, la.afterLsn], [false, 'default', null, null], 'ROLLBACK undoes them');

  // BEGIN; SET; COMMIT: kept.
  la.trackUndo('I', 'T', true, undefined, decision('BEGIN'));
  set("SET pgsplit.route = 'replica'");
  la.trackUndo('T', 'I', true, undefined, decision('COMMIT'));
  t.same([la.tagged, la.tagSource], [true, 'set'], 'COMMIT keeps them');

  // SAVEPOINT, SET, ROLLBACK TO: back to the savepoint's values; RELEASE keeps what came before.
  la.trackUndo('I', 'T', true, undefined, decision('BEGIN'));
  set("SET pgsplit.max_lag = '10ms'");
  la.trackUndo('T', 'T', true, undefined, decision('SAVEPOINT "A"'));
  set("SET pgsplit.max_lag = '20ms'");
  la.trackUndo('T', 'T', true, undefined, decision('ROLLBACK TO SAVEPOINT "A"'));
  t.equal(la.maxLagMs, 10, 'ROLLBACK TO returns to the savepoint');
  la.trackUndo('T', 'T', true, undefined, decision('SAVEPOINT b'));
  set("SET pgsplit.max_lag = '30ms'");
  la.trackUndo('T', 'T', true, [decision('RELEASE b')], undefined);
  t.equal(la.maxLagMs, 30, 'RELEASE (carried by a later answer) keeps the change');
  // The transaction failed; its COMMIT rolls back.
  la.trackUndo('T', 'E', false, undefined, decision('SELECT 1/0'));
  la.trackUndo('E', 'I', true, undefined, decision('COMMIT'));
  t.same([la.tagged, la.maxLagMs], [true, null], 'a COMMIT of a failed transaction rolls back');

  // A transaction the session answered itself (a deferred BEGIN of a tagged session).
  la.transactionBegan();
  set("SET pgsplit.route = 'primary'");
  la.transactionEnded(false);
  t.same([la.tagged, la.tagSource], [true, 'set'], 'a deferred ROLLBACK undoes too');
  la.transactionBegan();
  set("SET pgsplit.route = 'primary'");
  la.transactionEnded(true);
  t.equal(la.tagged, false, 'a deferred COMMIT keeps');

  // Outside a transaction nothing is snapshotted: a later ROLLBACK (a warning on the server) changes nothing.
  la.trackUndo('I', 'I', true, undefined, decision('ROLLBACK'));
  t.equal(la.tagged, false);
});
