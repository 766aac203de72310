/**
 * The routing choice (src/session/target-chooser.ts) without a server: a real Router and ServerNodes,
 * links over a stand-in connection, and the session's state as a plain object. Asserted: the server a
 * unit goes to (an attached link, or the role of one to attach) and the decision fields it sets on the
 * unit (decision and its reason, txOpen, txMoveFrom, txBegin), for an untagged session, a tagged read,
 * transaction affinity, a deferred tagged transaction opening on a replica for a read and on the primary
 * for a write, the move to the primary at the first write, an open batch, a sequence read, a re-run
 * forced to the primary, the read-your-writes floor a transaction opened by a BEGIN alone owes its
 * first read (wait, then follow or move), and the query texts of an extended unit (named statements,
 * named portals).
 */
import t from 'tap';
import type { ServerEndpoint } from '../src/config/config.js';
import type { Frame } from '../src/codec/frame-reader.js';
import { Frontend } from '../src/codec/message-types.js';
import { Router } from '../src/router/router.js';
import { SequenceCatalog } from '../src/router/sequence-catalog.js';
import type { Isolation } from '../src/router/transaction-statements.js';
import type { ServerConnection } from '../src/server/server-connection.js';
import { ServerNodes, type NodeEntry } from '../src/server/server-nodes.js';
import { Binding } from '../src/session/binding.js';
import { ServerLink } from '../src/session/server-link.js';
import { TaggedTransaction } from '../src/session/tagged-transaction.js';
import { TargetChooser, type ChooserContext } from '../src/session/target-chooser.js';
import { unit, type Unit } from '../src/session/unit.js';

function endpoint(name: string, port: number): ServerEndpoint {
  return { name, host: '127.0.0.1', port, weight: 1 } as unknown as ServerEndpoint;
}

/** The session's state as the chooser reads it: plain fields a test sets. */
interface State {
  txStatus: 'I' | 'T' | 'E';
  tx: TaggedTransaction | null;
  pinned: string | null;
  tagged: boolean;
  clientEncoding: string | undefined;
  standardConformingStrings: boolean;
  isolation: Isolation | 'unknown' | null;
}

/** A session's world: nodes, its links, its state, and a chooser over them (built once, as Session does). */
class World {
  readonly nodes = new ServerNodes(endpoint('primary', 5432), [endpoint('replica1', 5433)]);
  readonly primary: NodeEntry = this.nodes.primary;
  readonly replica: NodeEntry = this.nodes.replicas[0] as NodeEntry;
  readonly binding = new Binding();
  readonly state: State = {
    txStatus: 'I', tx: null, pinned: null, tagged: false, clientEncoding: 'UTF8', standardConformingStrings: true, isolation: 'read committed',
  };
  readonly ctx: ChooserContext & { transactions: 'replica-until-write' | 'primary' } = {
    nodes: this.nodes, router: new Router(), transactions: 'replica-until-write',
  };
  /** Whether the attached replica still meets a read's requirement (Consistency.mayStayOn). */
  replicaQualifies = true;
  /** The position the replica is known to have replayed (Consistency.hasReplayed). */
  replayed = 0n;
  readonly sequences = new SequenceCatalog();
  readonly prepared = new Map<string, Buffer>();
  readonly chooser: TargetChooser;

  constructor() {
    this.sequences.load(['order_seq'], 0);
    this.chooser = new TargetChooser({
      ctx: this.ctx,
      state: this.state,
      links: this.binding,
      replicas: { mayStayOn: () => this.replicaQualifies, hasReplayed: (_n: NodeEntry, lsn: bigint) => this.replayed >= lsn },
      sequences: this.sequences,
      statements: { statement: (name: string) => this.prepared.get(name) },
    });
  }

  /** An attached link to `node` whose connection is ready (nothing is ever sent on it). */
  attach(node: NodeEntry): ServerLink {
    const l = new ServerLink(node, { conn: { state: 'ready' } as unknown as ServerConnection }, () => {});
    this.binding.attach(l);
    if (node.role === 'replica') this.binding.bindReplica(node);
    return l;
  }
}

function simple(sql: string): Unit {
  return unit('simple', [], true, [sql], 0);
}

function cstrings(...parts: string[]): Buffer {
  return Buffer.concat(parts.map((p) => Buffer.from(`${p}\0`)));
}

function frame(type: number, payload: Buffer): Frame {
  return { type, payload, raw: payload };
}

/** Parse (name, query), as a client sends it with no parameter types. */
function parsePayload(name: string, query: string): Buffer {
  return Buffer.concat([cstrings(name, query), Buffer.from([0, 0])]);
}

t.test('untagged: a read goes to the primary', async (t) => {
  const w = new World();
  const u = simple('SELECT * FROM t');
  t.equal(w.chooser.choose(u), 'primary', 'no link yet: the primary is to attach');
  t.equal(u.decision?.target, 'primary');
  const p = w.attach(w.primary);
  t.equal(w.chooser.choose(u), p, 'the attached primary');
  t.equal(u.txOpen, undefined);
  t.equal(u.txBegin, undefined);
});

t.test('tagged: a read goes to a replica, the attached one while it qualifies', async (t) => {
  const w = new World();
  w.state.tagged = true;
  const u = simple('SELECT * FROM t');
  t.equal(w.chooser.choose(u), 'replica');
  t.equal(u.decision?.target, 'replica');
  const r = w.attach(w.replica);
  t.equal(w.chooser.choose(u), r, 'the attached replica');
  w.replicaQualifies = false;
  t.equal(w.chooser.choose(u), 'replica', 'it no longer qualifies: the replica choice is made again');
  w.replicaQualifies = true;
  const write = simple('INSERT INTO t VALUES (1)');
  t.equal(w.chooser.choose(write), 'primary', 'a write goes to the primary');
  t.equal(write.decision?.target, 'primary');
  w.state.isolation = 'serializable';
  const read = simple('SELECT * FROM t');
  t.equal(w.chooser.choose(read), 'primary', 'a serializable default keeps reads off standbys');
  t.equal(read.decision?.reason, 'tx-isolation');
});

t.test('transaction affinity: a unit inside a transaction follows its link', async (t) => {
  const w = new World();
  w.state.tagged = true;
  const p = w.attach(w.primary);
  w.attach(w.replica);
  w.binding.tx = p;
  w.state.txStatus = 'T';
  const u = simple('SELECT * FROM t');
  t.equal(w.chooser.choose(u), p, 'a read follows the transaction to the primary');
  t.equal(u.decision?.reason, 'transaction');
  t.equal(u.decision?.target, 'primary');
  t.equal(u.decision?.classifications.length, 1, 'classified all the same (its effects apply later)');
  w.state.txStatus = 'E';
  t.equal(w.chooser.choose(simple('ROLLBACK')), p, 'a failed transaction too');
});

t.test('a tagged transaction open on a replica: reads stay, the first write moves it', async (t) => {
  const w = new World();
  w.state.tagged = true;
  const p = w.attach(w.primary);
  const r = w.attach(w.replica);
  const tx = new TaggedTransaction('replica', 'BEGIN');
  tx.replay.push('SET LOCAL app.tenant = 7');
  w.state.tx = tx;
  w.state.txStatus = 'T';
  w.binding.tx = r;
  const read = simple('SELECT * FROM t');
  t.equal(w.chooser.choose(read), r);
  t.equal(read.decision?.reason, 'tx-read');
  t.equal(read.txOpen, undefined);
  t.equal(read.txMoveFrom, undefined);

  const write = simple('UPDATE t SET a = 1');
  t.equal(w.chooser.choose(write), p, 'the first write goes to the primary');
  t.equal(write.decision?.reason, 'tx-moved');
  t.equal(write.decision?.target, 'primary');
  t.equal(write.txMoveFrom, r, 'moving from the replica');
  t.same(write.txOpen, ['BEGIN', 'SET LOCAL app.tenant = 7'], 'opened there with the BEGIN and the replayed statements');

  const fn = unit('function', [], true, [], 0);
  t.equal(w.chooser.choose(fn), p, 'a function call moves it too');
  t.equal(fn.decision?.reason, 'tx-moved');

  const seq = simple('SELECT last_value FROM order_seq');
  t.equal(w.chooser.choose(seq), p, 'a sequence read moves it too');
  t.equal(seq.decision?.reason, 'tx-moved');
});

t.test('a replica transaction whose floor is pending: its first read waits, then follows or moves; writes and COMMIT do not wait', async (t) => {
  const w = new World();
  w.state.tagged = true;
  const p = w.attach(w.primary);
  const r = w.attach(w.replica);
  const tx = new TaggedTransaction('replica', 'BEGIN', 0x5000n);
  w.state.tx = tx;
  w.state.txStatus = 'T';
  w.binding.tx = r;

  const neutral = simple('SAVEPOINT s1');
  t.equal(w.chooser.choose(neutral), r, 'a savepoint stays');
  t.equal(neutral.floorWait, undefined, 'and reads nothing: no wait');
  const commit = simple('COMMIT');
  t.equal(w.chooser.choose(commit), r);
  t.equal(commit.floorWait, undefined, 'COMMIT of a transaction that only ran BEGIN needs no floor');

  const read = simple('SELECT * FROM t');
  t.equal(w.chooser.choose(read), r, 'the first read follows the replica');
  t.equal(read.floorWait, 0x5000n, 'after a wait for the floor');
  read.floorWaited = 'replayed';
  t.equal(w.chooser.choose(read), r, 'replayed in time: it runs there');
  t.equal(read.floorWait, undefined);
  t.equal(read.decision?.reason, 'causal-wait', 'counted as a read-your-writes wait');

  const late = simple('SELECT * FROM t');
  late.floorWaited = 'missed';
  t.equal(w.chooser.choose(late), p, 'not replayed in time: the transaction moves to the primary');
  t.equal(late.decision?.reason, 'fallback-causal');
  t.equal(late.txMoveFrom, r);
  t.same(late.txOpen, ['BEGIN']);

  const write = simple('UPDATE t SET a = 1');
  t.equal(w.chooser.choose(write), p, 'a write moves it with no wait');
  t.equal(write.floorWait, undefined);
  t.equal(write.decision?.reason, 'tx-moved');

  w.replayed = 0x5000n;
  const known = simple('SELECT * FROM t');
  t.equal(w.chooser.choose(known), r, 'the replica is known at the floor: the read follows at once');
  t.equal(known.floorWait, undefined);
  t.equal(known.decision?.reason, 'tx-read');
});

t.test('a deferred tagged transaction opens on a replica for a read, on the primary for a write', async (t) => {
  const w = new World();
  w.state.tagged = true;
  w.state.tx = new TaggedTransaction('deferred', 'BEGIN');
  w.state.txStatus = 'T';
  const read = simple('SELECT * FROM t');
  t.equal(w.chooser.choose(read), 'replica');
  t.equal(read.decision?.target, 'replica');
  t.equal(read.decision?.reason, 'tx-read');
  t.same(read.txOpen, ['BEGIN'], 'the BEGIN pgsplit answered opens with it');
  t.equal(read.txMoveFrom, undefined);

  const neutral = simple('SET LOCAL app.tenant = 7');
  t.equal(w.chooser.choose(neutral), 'replica', 'a single transaction-neutral statement opens on the replica');
  t.equal(neutral.decision?.reason, 'transaction');
  t.same(neutral.txOpen, ['BEGIN']);

  const p = w.attach(w.primary);
  const write = simple('INSERT INTO t VALUES (1)');
  t.equal(w.chooser.choose(write), p);
  t.equal(write.decision?.target, 'primary');
  t.same(write.txOpen, ['BEGIN'], 'the BEGIN opens on the primary with the write');

  const seq = simple('SELECT last_value FROM order_seq');
  t.equal(w.chooser.choose(seq), p, 'a sequence read opens it on the primary');
  t.same(seq.txOpen, ['BEGIN']);
});

t.test('BEGIN with reads in one unit opens a movable transaction on a replica', async (t) => {
  const w = new World();
  w.state.tagged = true;
  const u = simple('BEGIN; SELECT * FROM t');
  t.equal(w.chooser.choose(u), 'replica');
  t.equal(u.txBegin, 'BEGIN');
  t.equal(u.decision?.reason, 'tx-read');
  w.state.isolation = 'serializable';
  const s = simple('BEGIN; SELECT * FROM t');
  t.equal(w.chooser.choose(s), 'primary', 'a serializable default cannot move: the primary');
  t.equal(s.txBegin, undefined);
  w.state.isolation = 'read committed';
  w.ctx.transactions = 'primary';
  const off = simple('BEGIN; SELECT * FROM t');
  t.equal(w.chooser.choose(off), 'primary', 'routing.transactions: primary');
  t.equal(off.txBegin, undefined);
});

t.test('an open batch: what follows goes where it runs', async (t) => {
  const w = new World();
  w.state.tagged = true;
  w.attach(w.primary);
  const r = w.attach(w.replica);
  w.binding.openBatch = r;
  const u = simple('INSERT INTO t VALUES (1)');
  t.equal(w.chooser.choose(u), r);
  t.equal(u.decision?.reason, 'open-batch');
  t.equal(u.decision?.target, 'replica');
});

t.test('a read of a sequence goes to the primary', async (t) => {
  const w = new World();
  w.state.tagged = true;
  w.attach(w.replica);
  const u = simple('SELECT last_value, is_called FROM order_seq');
  t.equal(w.chooser.choose(u), 'primary');
  t.equal(u.decision?.reason, 'sequence-read');
  t.equal(u.decision?.target, 'primary');
});

t.test('forcePrimary: a re-run goes to the primary, moving a movable transaction', async (t) => {
  const w = new World();
  w.state.tagged = true;
  const u = simple('SELECT * FROM t');
  u.forcePrimary = 'rerun-25006';
  t.equal(w.chooser.choose(u), 'primary');
  t.equal(u.decision?.reason, 'rerun-25006');
  t.equal(u.txOpen, undefined);
  const p = w.attach(w.primary);
  const r = w.attach(w.replica);
  w.state.tx = new TaggedTransaction('replica', 'BEGIN ISOLATION LEVEL READ COMMITTED');
  w.state.txStatus = 'T';
  w.binding.tx = r;
  t.equal(w.chooser.choose(u), p);
  t.equal(u.decision?.target, 'primary');
  t.equal(u.txMoveFrom, r);
  t.same(u.txOpen, ['BEGIN ISOLATION LEVEL READ COMMITTED']);
});

t.test('the unit\'s decision fields are cleared at each choice', async (t) => {
  const w = new World();
  w.state.tagged = true;
  w.state.tx = new TaggedTransaction('deferred', 'BEGIN');
  w.state.txStatus = 'T';
  const u = simple('SELECT * FROM t');
  w.chooser.choose(u);
  t.same(u.txOpen, ['BEGIN']);
  w.state.tx = null;
  w.state.txStatus = 'I';
  w.chooser.choose(u);
  t.equal(u.txOpen, undefined);
  t.equal(u.txMoveFrom, undefined);
  t.equal(u.txBegin, undefined);
});

t.test('an extended unit: queries from its Parse and the named statements its Binds use', async (t) => {
  const w = new World();
  w.state.tagged = true;
  w.prepared.set('s1', parsePayload('s1', 'INSERT INTO t VALUES ($1)'));
  const u = unit('extended', [frame(Frontend.Bind, cstrings('', 's1')), frame(Frontend.Sync, Buffer.alloc(0))], true, [], 0);
  t.equal(w.chooser.choose(u), 'primary', 'the prepared write decides');
  t.same(u.queries, ['INSERT INTO t VALUES ($1)']);
  t.notOk(u.namedPortal);
  const read = unit('extended', [frame(Frontend.Parse, parsePayload('', 'SELECT * FROM t')), frame(Frontend.Bind, cstrings('c1', '')),
    frame(Frontend.Sync, Buffer.alloc(0))], true, [], 0);
  t.equal(w.chooser.choose(read), 'replica');
  t.same(read.queries, ['SELECT * FROM t']);
  t.ok(read.namedPortal, 'a named portal is noted');
});
