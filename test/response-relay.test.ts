/**
 * The response relay (src/session/response-relay.ts) without a server: a link whose server "sends"
 * scripted backend messages (built with the codec's encoders), a client that records what it is given,
 * and a session that keeps the books the real one keeps on the tracker (ReadyForQuery, ErrorResponse)
 * and records what the relay asks of it. Asserted: what the client sees and in which order, what is held
 * back from a replica until its first row, when a refused or lost read is handed back to run again (and
 * that it is not when the client already saw some of it, or something else was sent behind it).
 */
import t from 'tap';
import {
  bindComplete, commandComplete, dataRow, errorResponse, noticeResponse, parameterStatus, parseComplete, readyForQuery, rowDescription,
} from '../src/codec/backend-messages.js';
import { FrameReader, type Frame } from '../src/codec/frame-reader.js';
import { Backend } from '../src/codec/message-types.js';
import { silentLogger } from '../src/log/logger.js';
import type { ServerConnection } from '../src/server/server-connection.js';
import type { NodeEntry } from '../src/server/server-nodes.js';
import { ResponseRelay, type ClientOutput, type RelaySession } from '../src/session/response-relay.js';
import { ServerLink, type Expect } from '../src/session/server-link.js';
import { unit, type Unit } from '../src/session/unit.js';

/** A client socket that takes everything at once and keeps it. */
class Client implements ClientOutput {
  readonly destroyed = false;
  readonly writableLength = 0;
  readonly writableNeedDrain = false;
  private readonly chunks: Buffer[] = [];
  /** Copied: the relay hands views of the server's read buffer, valid only until the next read. */
  write(data: Buffer): boolean {
    this.chunks.push(Buffer.from(data));
    return true;
  }
  cork(): void {}
  uncork(): void {}
  /** Everything received so far, as one buffer. */
  bytes(): Buffer {
    return Buffer.concat(this.chunks);
  }
}

/** The session side, recording what the relay asks of it. */
class FakeSession implements RelaySession {
  readonly client = new Client();
  mayRun = true;
  readonly requeued: Unit[] = [];
  readonly lost: Array<{ why: string; frame: Buffer | undefined }> = [];
  readonly own: Expect[] = [];
  answeredCount = 0;
  /** Status bytes of the ReadyForQuery messages that reached observe (units the client saw end). */
  readonly unitsEnded: string[] = [];
  serves(): boolean {
    return true;
  }
  pauseServers(): void {}
  watchesCopy(): boolean {
    return false;
  }
  observe(link: ServerLink, f: Frame): boolean {
    // What Session.observe does to the tracker (its other books are not the relay's).
    if (f.type === Backend.ReadyForQuery) {
      link.tracker.readyForQuery();
      this.unitsEnded.push(String.fromCharCode(f.payload[0] ?? 0));
      return true;
    }
    if (f.type === Backend.ErrorResponse) {
      link.tracker.error();
      return true;
    }
    return false;
  }
  /** What the session writes to the client itself when its own query is answered (the Session's answer to a Sync after a failed batch). */
  ownAnswer: Buffer | null = null;
  ownQueryAnswered(_link: ServerLink, head: Expect): void {
    this.own.push(head);
    if (this.ownAnswer !== null) this.client.write(this.ownAnswer);
  }
  mayRunAgain(): boolean {
    return this.mayRun;
  }
  requeue(u: Unit): void {
    this.requeued.push(u);
  }
  serverLost(_link: ServerLink, why: string, frame: Buffer | undefined): void {
    this.lost.push({ why, frame });
  }
  answered(): void {
    this.answeredCount++;
  }
  readonly guardsPassed: bigint[] = [];
  readonly guardsRefused: Array<string | undefined> = [];
  guardPassed(_link: ServerLink, lsn: bigint, _u: Unit | undefined): void {
    this.guardsPassed.push(lsn);
  }
  guardRefused(_link: ServerLink, code: string | undefined): void {
    this.guardsRefused.push(code);
  }
}

interface Rig {
  session: FakeSession;
  relay: ResponseRelay;
  link: ServerLink;
  events: { retries: string[]; reruns: string[] };
  /** The server sends these messages as one chunk. */
  server(...msgs: Buffer[]): Buffer;
  /** A simple Query sent as Session.send does: the unit's sync expected, its answer held if it may be re-run. */
  query(sql: string, opts?: { retryable?: boolean; replay?: boolean }): Unit;
}

function rig(role: 'primary' | 'replica' = 'replica'): Rig {
  const node = { endpoint: { name: role === 'replica' ? 'replica1' : 'primary' }, role, retiring: false } as unknown as NodeEntry;
  const conn = {
    reader: new FrameReader({ maxMessageSize: 1 << 30 }),
    retainChunk(): void {},
    socket: { pause(): void {} },
  } as unknown as ServerConnection;
  const link = new ServerLink(node, { conn }, () => {});
  const session = new FakeSession();
  const events = { retries: [] as string[], reruns: [] as string[] };
  const relay = new ResponseRelay(session, silentLogger, {
    retry: (n) => events.retries.push(n),
    rerun: (r) => events.reruns.push(r),
    guard: () => {},
  });
  return {
    session, relay, link, events,
    server(...msgs) {
      const chunk = Buffer.concat(msgs);
      relay.onServerData(link, chunk);
      return chunk;
    },
    query(sql, opts = {}) {
      const u = unit('simple', [], true, [sql], sql.length + 6);
      const idle = !link.tracker.busy;
      link.tracker.nextUnit(true);
      if (opts.replay === true) link.tracker.push({ kind: 'sync', swallow: true, replay: true });
      link.tracker.push({ kind: 'sync', swallow: false, extended: false, unit: u });
      u.retryable = opts.retryable ?? true;
      if (u.retryable && idle) relay.hold(link);
      return u;
    },
  };
}

const cols = (): Buffer => rowDescription(['n']);
const row = (v: string): Buffer => dataRow([v]);
const refused = (): Buffer => errorResponse({ severity: 'ERROR', code: '25006', message: 'cannot execute INSERT in a read-only transaction' });

t.test('a replica answer is held until its first row, then goes out whole and in order', async (t) => {
  const r = rig();
  r.query('SELECT 1');
  r.server(parameterStatus('application_name', 'x'), cols());
  t.equal(r.session.client.bytes().length, 0, 'nothing before the first row');
  t.ok(r.link.held !== null && r.link.held.length === 2, 'two messages held');
  r.server(row('1'), commandComplete('SELECT 1'), readyForQuery('I'));
  t.same(r.session.client.bytes(), Buffer.concat([parameterStatus('application_name', 'x'), cols(), row('1'), commandComplete('SELECT 1'), readyForQuery('I')]));
  t.equal(r.link.held, null, 'released');
  t.same(r.session.unitsEnded, ['I']);
  t.equal(r.session.answeredCount, 1);
  t.equal(r.session.requeued.length, 0);
});

t.test('a primary answer is never held', async (t) => {
  const r = rig('primary');
  r.query('SELECT 1', { retryable: false });
  r.server(cols());
  t.same(r.session.client.bytes(), cols());
});

t.test('a held message survives the reuse of the chunk it came in', async (t) => {
  const r = rig();
  r.query('SELECT 1');
  const first = r.server(cols());
  // ServerConnection reads into one reused buffer: the next read overwrites the last chunk.
  first.fill(0);
  r.server(row('7'), commandComplete('SELECT 1'), readyForQuery('I'));
  t.same(r.session.client.bytes(), Buffer.concat([cols(), row('7'), commandComplete('SELECT 1'), readyForQuery('I')]));
});

t.test('25006 before the first row: the client sees nothing, the unit goes back to run on the primary', async (t) => {
  const r = rig();
  const u = r.query('SELECT f()');
  const undone: number[] = [];
  u.registryUndo = [() => undone.push(1), () => undone.push(2)];
  r.server(cols(), refused());
  t.equal(r.session.client.bytes().length, 0, 'the refusal is not shown');
  t.equal(r.session.requeued.length, 0, 'not before the ReadyForQuery that ends the refused attempt');
  r.server(readyForQuery('I'));
  t.equal(r.session.client.bytes().length, 0, 'its ReadyForQuery is not shown either');
  t.same(r.session.requeued, [u]);
  t.equal(u.forcePrimary, 'rerun-25006');
  t.equal(u.retryable, false, 'a re-run is not re-run again');
  t.same(undone, [2, 1], 'the client statement registry is restored, newest change first');
  t.equal(u.registryUndo, undefined);
  t.same(r.events.reruns, ['unknown']);
  t.equal(r.session.own.length, 1, 'the swallowed sync is reported as pgsplit\'s own');
  t.equal(r.session.own[0]?.rerun, u);
  t.equal(r.link.tracker.busy, false, 'the replica owes nothing more');
});

t.test('25006 is shown when the unit may not run again', async (t) => {
  await t.test('inside a transaction that cannot move', async (t) => {
    const r = rig();
    r.session.mayRun = false;
    r.query('SELECT f()');
    r.server(refused(), readyForQuery('E'));
    t.same(r.session.client.bytes(), Buffer.concat([refused(), readyForQuery('E')]));
    t.equal(r.session.requeued.length, 0);
  });
  await t.test('with another unit sent behind it to the same replica', async (t) => {
    const r = rig();
    r.query('SELECT f()');
    r.query('SELECT 2');
    r.server(refused(), readyForQuery('I'));
    t.same(r.session.client.bytes(), Buffer.concat([refused(), readyForQuery('I')]), 'the second answer would otherwise come before the re-run\'s');
    t.equal(r.session.requeued.length, 0);
  });
  await t.test('after a row reached the client', async (t) => {
    const r = rig();
    r.query('SELECT f()');
    r.server(cols(), row('1'));
    r.server(refused(), readyForQuery('I'));
    t.same(r.session.client.bytes(), Buffer.concat([cols(), row('1'), refused(), readyForQuery('I')]));
    t.equal(r.session.requeued.length, 0);
  });
});

t.test('the next unit on a replica is held from the previous one\'s ReadyForQuery', async (t) => {
  const r = rig();
  r.query('SELECT 1');
  const second = r.query('SELECT f()');
  r.server(cols(), row('1'), commandComplete('SELECT 1'), readyForQuery('I'), cols(), refused());
  t.same(r.session.client.bytes(), Buffer.concat([cols(), row('1'), commandComplete('SELECT 1'), readyForQuery('I')]),
    'the second answer is held: its refusal is not shown');
  r.server(readyForQuery('I'));
  t.same(r.session.requeued, [second]);
});

t.test('past the hold limit the answer streams and can no longer be re-run', async (t) => {
  const r = rig();
  r.query('SELECT f()');
  const notice = noticeResponse({ severity: 'NOTICE', code: '00000', message: 'x'.repeat(10_000) });
  const notices = Array.from({ length: 7 }, () => notice);
  r.server(...notices.slice(0, 6));
  t.equal(r.session.client.bytes().length, 0, 'six held (60 KB)');
  r.server(notice);
  t.same(r.session.client.bytes(), Buffer.concat(notices), 'the seventh would pass 64 KiB: the six go out, then it');
  t.equal(r.link.held, null);
  r.server(refused(), readyForQuery('I'));
  t.equal(r.session.requeued.length, 0);
  t.same(r.session.client.bytes().subarray(notices.length * notice.length), Buffer.concat([refused(), readyForQuery('I')]));
});

t.test('settings the replica refused: the unit runs on the primary, none of its answer is shown', async (t) => {
  const r = rig();
  const u = r.query('SELECT current_setting(\'x.y\')', { replay: true });
  r.server(errorResponse({ severity: 'ERROR', code: '22023', message: 'invalid value' }), readyForQuery('I'));
  t.equal(r.link.replayFailed, true);
  t.equal(r.link.settingsVersion, -1, 'replayed again before the next unit there');
  r.server(cols(), row('a'), commandComplete('SELECT 1'), readyForQuery('I'));
  t.equal(r.session.client.bytes().length, 0);
  t.same(r.session.requeued, [u]);
  t.equal(u.forcePrimary, 'rerun-settings');
  t.equal(r.link.replayFailed, false);
});

t.test('a replica lost before answering: the read is handed back once, never after a row went out', async (t) => {
  const r = rig();
  const u = r.query('SELECT 1');
  r.server(cols());
  t.equal(r.relay.retryElsewhere(r.link), true);
  t.same(r.session.requeued, [u]);
  t.equal(u.avoid, r.link.node, 'the re-run avoids the failed replica');
  t.equal(r.link.held, null);
  t.equal(r.link.tracker.busy, false, 'nothing is owed by the lost link any more');
  t.same(r.events.retries, ['replica1']);
  t.equal(r.session.client.bytes().length, 0);

  const r2 = rig();
  r2.query('SELECT 1');
  r2.server(cols(), row('1'));
  t.equal(r2.relay.retryElsewhere(r2.link), false, 'a row reached the client');
  t.equal(r2.session.requeued.length, 0);

  const r3 = rig();
  r3.query('SELECT 1');
  r3.query('SELECT 2');
  t.equal(r3.relay.retryElsewhere(r3.link), false, 'a later unit was sent to the same replica');
});

t.test('a FATAL on a replica whose answer is held is the server going away, not an answer', async (t) => {
  const r = rig();
  r.query('SELECT 1');
  const fatal = errorResponse({ severity: 'FATAL', code: '57P01', message: 'terminating connection due to administrator command' });
  r.server(cols(), fatal);
  t.equal(r.session.client.bytes().length, 0);
  t.equal(r.session.lost.length, 1);
  t.same(r.session.lost[0]?.frame, fatal);
  t.match(r.session.lost[0]?.why ?? '', /^57P01 terminating/);
  t.equal(r.link.fatalForwarded, false);
});

t.test('pgsplit\'s own messages are not shown: an injected re-prepare, a replayed setting', async (t) => {
  const r = rig('primary');
  const u = unit('extended', [], true, [], 0);
  r.link.tracker.nextUnit(false);
  r.link.tracker.push({ kind: 'sync', swallow: true, replay: true });
  r.link.tracker.extendedSent();
  r.link.tracker.push({ kind: 'parse', swallow: true });
  r.link.tracker.extendedSent();
  r.link.tracker.push({ kind: 'parse', swallow: false });
  r.link.tracker.pushSync({ kind: 'sync', swallow: false, extended: true, unit: u });
  r.server(commandComplete('SET'), readyForQuery('I'), parseComplete(), parseComplete(), readyForQuery('I'));
  t.same(r.session.client.bytes(), Buffer.concat([parseComplete(), readyForQuery('I')]), 'only the client\'s Parse and its Sync are answered');
  t.equal(r.session.own.length, 1, 'the replay\'s end is reported');
  t.same(r.session.unitsEnded, ['I'], 'one unit of the client\'s ended');
});

/**
 * A read sent with a guard ahead of it, as Session.send does (RequestWriter.guard): the guard's
 * Parse/Bind/Execute (one expectation, Expect.guard, until its CommandComplete), then the unit's messages, then, after
 * a Query, a Sync of pgsplit's; the answer held back.
 */
function guarded(r: Rig, kind: 'simple' | 'extended', lsn: bigint): Unit {
  const u = unit(kind, [], true, ['SELECT n FROM t'], 0);
  const tracker = r.link.tracker;
  tracker.nextUnit(kind === 'simple');
  tracker.extendedSent();
  tracker.push({ kind: 'parse', swallow: true, guard: lsn });
  if (kind === 'simple') {
    tracker.push({ kind: 'sync', swallow: false, extended: false, unit: u });
    tracker.pushSync({ kind: 'sync', swallow: true, extended: true });
  } else {
    tracker.push({ kind: 'parse', swallow: false });
    tracker.pushSync({ kind: 'sync', swallow: false, extended: true, unit: u });
  }
  u.retryable = true;
  r.relay.hold(r.link);
  return u;
}

const guardOk = (): Buffer[] => [parseComplete(), bindComplete(), dataRow(['1']), commandComplete('SELECT 1')];
const behind = (): Buffer => errorResponse({ severity: 'ERROR', code: '22012', message: 'division by zero' });

t.test('a guard that passes: the client sees the read\'s answer alone, and the replica is known to have replayed the position', async (t) => {
  const r = rig();
  guarded(r, 'simple', 0x5000n);
  r.server(...guardOk(), cols(), row('7'), commandComplete('SELECT 1'), readyForQuery('I'), readyForQuery('I'));
  t.same(r.session.client.bytes(), Buffer.concat([cols(), row('7'), commandComplete('SELECT 1'), readyForQuery('I')]), 'none of the guard\'s answer, nor the extra Sync\'s');
  t.same(r.session.guardsPassed, [0x5000n]);
  t.same(r.session.unitsEnded, ['I'], 'one unit of the client\'s ended');
  t.equal(r.session.own.length, 1, 'the Sync after the Query is pgsplit\'s own');
  t.equal(r.link.tracker.busy, false);
  t.same(r.session.requeued, []);

  // Extended: the guard's answer arrives in pieces, then the client's.
  const x = rig();
  guarded(x, 'extended', 0x6000n);
  const [p, b, d, c] = guardOk();
  x.server(p!, b!);
  x.server(d!, c!, parseComplete());
  x.server(cols(), row('8'), commandComplete('SELECT 1'), readyForQuery('I'));
  t.same(x.session.client.bytes(), Buffer.concat([parseComplete(), cols(), row('8'), commandComplete('SELECT 1'), readyForQuery('I')]));
  t.same(x.session.guardsPassed, [0x6000n]);
  t.equal(x.session.own.length, 0);
});

t.test('a guard that fails (the replica is behind): the server skipped the read, the client sees nothing, and the read goes round again without a guard', async (t) => {
  for (const kind of ['simple', 'extended'] as const) {
    const r = rig();
    const u = guarded(r, kind, 0x5000n);
    r.server(parseComplete(), bindComplete(), behind(), readyForQuery('I'));
    t.same(r.session.client.bytes(), Buffer.alloc(0), `${kind}: nothing reaches the client`);
    t.same(r.session.requeued, [u], `${kind}: the read is handed back`);
    t.equal(u.guardFailures, 1, `${kind}: counted (past a few, its next attempt waits instead of guarding)`);
    t.equal(u.retryable, false);
    t.same(r.session.unitsEnded, [], `${kind}: no unit of the client's ended`);
    t.same(r.session.guardsPassed, []);
    t.same(r.session.guardsRefused, [], `${kind}: being behind is no refusal`);
      t.equal(r.link.tracker.busy, false, `${kind}: every reply owed was accounted for (the skipped ones dropped)`);
    t.equal(r.link.held, null);
  }
});

t.test('a guard refused for another reason (no permission): the read goes round again, and the session is told to stop guarding', async (t) => {
  const r = rig();
  const u = guarded(r, 'simple', 0x5000n);
  r.server(parseComplete(), bindComplete(), errorResponse({ severity: 'ERROR', code: '42501', message: 'permission denied for function pg_last_wal_replay_lsn' }), readyForQuery('I'));
  t.same(r.session.client.bytes(), Buffer.alloc(0));
  t.same(r.session.requeued, [u]);
  t.same(r.session.guardsRefused, ['42501']);
});

t.test('a guard behind replayed settings: their answers are swallowed as theirs, then the guard\'s, then the read\'s goes out', async (t) => {
  const r = rig();
  r.link.tracker.nextUnit(false);
  r.link.tracker.push({ kind: 'sync', swallow: true, replay: true });
  guarded(r, 'simple', 0x5000n);
  r.server(commandComplete('SET'), readyForQuery('I'), ...guardOk(), cols(), row('7'), commandComplete('SELECT 1'), readyForQuery('I'), readyForQuery('I'));
  t.same(r.session.client.bytes(), Buffer.concat([cols(), row('7'), commandComplete('SELECT 1'), readyForQuery('I')]));
  t.same(r.session.guardsPassed, [0x5000n], 'the guard passed (the replay\'s CommandComplete was not taken for the guard\'s)');
  t.equal(r.link.tracker.busy, false);
});

t.test('a replica batch ended by pgsplit\'s Sync fails: its error reaches the client before what the session answers then', async (t) => {
  const r = rig();
  // The client's Bind went unsynced (RequestWriter.endBatch then ended the batch: a probe and a Sync of pgsplit's).
  r.link.tracker.nextUnit(false);
  r.link.tracker.extendedSent();
  r.link.tracker.nextUnit(false);
  r.link.tracker.pushProbe({ kind: 'parse', swallow: true, probe: true });
  r.link.tracker.push({ kind: 'sync', swallow: true, extended: true, endsBatch: true, endsReplicaBatch: true });
  // The session answers the client's Sync it skipped to when it settles the failed batch (skipToClientSync).
  r.session.ownAnswer = readyForQuery('I');
  const error = errorResponse({ severity: 'ERROR', code: '26000', message: 'unnamed prepared statement does not exist' });
  r.server(error, readyForQuery('I'));
  t.same(r.session.client.bytes(), Buffer.concat([error, readyForQuery('I')]), 'the error, then the session\'s ReadyForQuery');
  t.equal(r.session.own[0]?.failed, true, 'the batch failed');
});

t.test('a read whose guard failed, its replica lost before the Sync\'s answer: it never ran, so it goes round again elsewhere; nothing goes behind it meanwhile', async (t) => {
  for (const kind of ['simple', 'extended'] as const) {
    const r = rig();
    const u = guarded(r, kind, 0x5000n);
    t.equal(r.link.guardPending(), true, `${kind}: the guard is pending`);
    r.server(parseComplete(), bindComplete(), behind());
    t.equal(r.link.guardPending(), true, `${kind}: failed, its read not yet sent round again: still nothing behind it`);
    t.equal(r.relay.retryElsewhere(r.link), true, `${kind}: handed back`);
    t.same(r.session.requeued, [u]);
    t.equal(u.avoid, r.link.node, `${kind}: to run elsewhere`);
    t.same(r.session.client.bytes(), Buffer.alloc(0), `${kind}: nothing reached the client`);
  }
});
