/**
 * The session's binding to its servers (src/session/binding.ts) without a server: links over a stand-in
 * connection, nodes as the configuration builds them (ServerNodes). Asserted: what attaches and what a
 * release lets go (every reason at once, only for that link, nothing for a link already replaced), which
 * reasons hold state the client relies on, and the replica's count in node.sessions (the replica choice
 * balances on it): one per session, dropped when the replica's link is released.
 */
import t from 'tap';
import type { ServerConnection } from '../src/server/server-connection.js';
import { ServerNodes, type NodeEntry } from '../src/server/server-nodes.js';
import { Binding } from '../src/session/binding.js';
import { ServerLink } from '../src/session/server-link.js';
import { unit } from '../src/session/unit.js';
import type { ServerEndpoint } from '../src/config/config.js';

function endpoint(name: string, port: number): ServerEndpoint {
  return { name, host: '127.0.0.1', port, weight: 1 } as unknown as ServerEndpoint;
}

function cluster(): { primary: NodeEntry; r1: NodeEntry; r2: NodeEntry } {
  const nodes = new ServerNodes(endpoint('primary', 5432), [endpoint('replica1', 5433), endpoint('replica2', 5434)]);
  return { primary: nodes.primary, r1: nodes.replicas[0] as NodeEntry, r2: nodes.replicas[1] as NodeEntry };
}

/** A link whose connection is never used: Binding only keeps links, it sends nothing. */
function link(node: NodeEntry): ServerLink {
  return new ServerLink(node, { conn: {} as ServerConnection }, () => {});
}

t.test('attach: a link is held by its node until released or replaced', async (t) => {
  const { primary, r1 } = cluster();
  const b = new Binding();
  const p = link(primary);
  t.equal(b.linkTo(primary), undefined);
  t.notOk(b.hasNode(primary));
  b.attach(p);
  t.equal(b.linkTo(primary), p);
  t.ok(b.holds(p));
  t.ok(b.hasNode(primary));
  t.notOk(b.hasNode(r1));
  const again = link(primary);
  t.notOk(b.holds(again), 'another link to the same node is not held');
  t.same([...b.attached()], [p]);
  t.same(b.release(p), { wasReplica: false });
  t.notOk(b.holds(p));
  t.notOk(b.hasNode(primary));
  t.equal(b.release(p), null, 'a second release finds nothing');
});

t.test('release clears every reason the link was held for, and counts the replica down', async (t) => {
  const { r1 } = cluster();
  const b = new Binding();
  const r = link(r1);
  b.attach(r);
  b.bindReplica(r1);
  b.tx = r;
  b.openBatch = r;
  b.copy = r;
  b.copyPending = { link: r, unit: unit('simple', [], true, ['COPY t FROM STDIN'], 0), executes: 0 };
  b.last = r;
  t.same(b.reasons(r), ['transaction', 'open-batch', 'copy', 'copy-pending', 'last', 'replica']);
  t.equal(r1.sessions, 1);
  t.equal(b.replica, r1);
  t.equal(b.replicaLink, r);
  t.ok(b.holdsState(r));

  t.same(b.release(r), { wasReplica: true });
  t.same(b.reasons(r), []);
  t.equal(b.tx, null);
  t.equal(b.openBatch, null);
  t.equal(b.copy, null);
  t.equal(b.copyPending, null);
  t.equal(b.last, null);
  t.equal(b.replica, null);
  t.equal(b.replicaLink, undefined);
  t.equal(r1.sessions, 0, 'the replica count drops with its link');
  t.notOk(b.holdsState(r));
  t.same([...b.attached()], []);
});

t.test('release lets go of one link: the reasons of another stay', async (t) => {
  const { primary, r1 } = cluster();
  const b = new Binding();
  const p = link(primary);
  const r = link(r1);
  b.attach(p);
  b.attach(r);
  b.bindReplica(r1);
  b.tx = p;
  b.copy = p;
  b.last = r;
  b.openBatch = r;
  b.copyPending = { link: p, unit: unit('extended', [], false, [], 0), executes: 1 };

  t.same(b.release(r), { wasReplica: true });
  t.equal(r1.sessions, 0);
  t.equal(b.last, null);
  t.equal(b.openBatch, null);
  t.same(b.reasons(p), ['transaction', 'copy', 'copy-pending']);
  t.ok(b.holds(p));

  t.same(b.release(p), { wasReplica: false });
  t.same(b.reasons(p), []);
  t.equal(primary.sessions, 0, 'the primary is never counted');
});

t.test('a link already replaced by a new one to its node: releasing it changes nothing', async (t) => {
  const { r1 } = cluster();
  const b = new Binding();
  const old = link(r1);
  b.attach(old);
  const fresh = link(r1);
  // What Session never does while `old` is attached; were it done, the stale link must not undo the new one's books.
  b.attach(fresh);
  b.bindReplica(r1);
  b.tx = fresh;
  t.equal(b.release(old), null);
  t.ok(b.holds(fresh));
  t.equal(b.tx, fresh);
  t.equal(b.replica, r1);
  t.equal(r1.sessions, 1);
});

t.test('bindReplica counts a session once per replica; a switch counts the new one after the old is released', async (t) => {
  const { r1, r2 } = cluster();
  const a = new Binding();
  const c = new Binding();
  const a1 = link(r1);
  a.attach(a1);
  a.bindReplica(r1);
  a.bindReplica(r1);
  t.equal(r1.sessions, 1, 'binding the same replica again does not count it twice');
  const c1 = link(r1);
  c.attach(c1);
  c.bindReplica(r1);
  t.equal(r1.sessions, 2, 'two sessions on one replica');

  // Session.connectReplica: the new link attached, the old one released, then the new replica bound.
  const a2 = link(r2);
  a.attach(a2);
  t.same(a.release(a1), { wasReplica: true });
  a.bindReplica(r2);
  t.equal(r1.sessions, 1);
  t.equal(r2.sessions, 1);
  t.equal(a.replicaLink, a2);

  // Letting go of a link to a node that is no longer the replica does not touch any count.
  const a3 = link(r1);
  a.attach(a3);
  t.same(a.release(a3), { wasReplica: false });
  t.equal(r1.sessions, 1);
  t.equal(r2.sessions, 1);
});

t.test('holdsState: a transaction, an open batch or a COPY; not last, a pending COPY, or being the replica', async (t) => {
  const { r1 } = cluster();
  const b = new Binding();
  const r = link(r1);
  b.attach(r);
  b.bindReplica(r1);
  b.last = r;
  b.copyPending = { link: r, unit: unit('simple', [], true, [], 0), executes: 0 };
  t.notOk(b.holdsState(r));
  b.tx = r;
  t.ok(b.holdsState(r));
  b.tx = null;
  b.openBatch = r;
  t.ok(b.holdsState(r));
  b.openBatch = null;
  b.copy = r;
  t.ok(b.holdsState(r));
});
