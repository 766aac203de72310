/**
 * Consistency (src/session/consistency.ts) without a server: the replica (or the primary) a tagged read
 * may use and the reason reported for it, from node states as the monitor leaves them (health, recovery,
 * lag, replay positions, disabled and retiring replicas) and a fake monitor that answers the primary's
 * position and "wait until this replica has replayed that far" as told. Covers the session's floor
 * (read-your-writes after a write, monotonic reads across a move), the waits and their bound, the
 * fallbacks and their reasons, the primary's last known position when it is down, next() after a replica
 * could not be reached, and the when_no_replica: error detail and hint.
 *
 * The nodes are the proxy's own ServerNodes (its eligibility and least-loaded choice); route decisions
 * carry the classifier's hints as the router builds them.
 */
import t from 'tap';
import type { ServerEndpoint } from '../src/config/config.js';
import { silentLogger } from '../src/log/logger.js';
import type { RouteDecision } from '../src/router/router.js';
import { classifyQuery } from '../src/router/statement-classifier.js';
import { ServerNodes, type NodeEntry } from '../src/server/server-nodes.js';
import { Consistency, type ConsistencyContext, type SessionBounds } from '../src/session/consistency.js';

function endpoint(name: string, port: number): ServerEndpoint {
  return { name, url: `postgres://127.0.0.1:${port}/db`, host: '127.0.0.1', port, weight: 1, tls: { mode: 'disable' } };
}

/** One wait the session asked for: which replica, which position, how long. */
interface Wait {
  node: string;
  lsn: bigint;
  timeoutMs: number;
}

/**
 * A primary, replicas r1..rN (all up, in recovery, replayed `replayed`, lag 10 ms unless changed), and a
 * monitor that answers the primary's position with `primaryLsn` (or fails with it) and each wait with
 * what `catchUp` says for that replica: true = it replays the position during the wait (as the real
 * monitor's checks would find), false = the wait times out.
 */
class World {
  readonly nodes: ServerNodes;
  readonly lagMs = new Map<NodeEntry, number>();
  primaryLsn: bigint | Error = 0x3000n;
  readonly catchUp = new Map<string, boolean>();
  readonly waits: Wait[] = [];
  positionAsked = 0;
  /** The monitor's last known primary position and when it was read (see raiseFloorFromPrimary). */
  readonly lag = { primaryLsn: null as bigint | null, primarySampledAt: -Infinity };
  readonly ctx: ConsistencyContext & { maxLagMs: number; readYourWritesTimeoutMs: number };
  readonly bounds: { maxLagMs: number | null; afterLsn: bigint | null } = { maxLagMs: null, afterLsn: null };

  constructor(replicas = 2, replayed = 0x3000n) {
    this.nodes = new ServerNodes(endpoint('primary', 5432), Array.from({ length: replicas }, (_, i) => endpoint(`r${i + 1}`, 5433 + i)));
    this.nodes.primary.health = 'up';
    for (const r of this.nodes.replicas) {
      r.health = 'up';
      r.inRecovery = true;
      r.replayedLsn = replayed;
      this.lagMs.set(r, 10);
    }
    this.nodes.lagOf = (n) => this.lagMs.get(n) ?? null;
    const monitor = {
      primaryLsnNow: async (): Promise<bigint> => {
        this.positionAsked++;
        if (this.primaryLsn instanceof Error) throw this.primaryLsn;
        return this.primaryLsn;
      },
      waitForReplay: async (n: NodeEntry, lsn: bigint, timeoutMs: number): Promise<boolean> => {
        this.waits.push({ node: n.endpoint.name, lsn, timeoutMs });
        if (n.replayedLsn !== null && n.replayedLsn >= lsn) return true;
        if (this.catchUp.get(n.endpoint.name) !== true) return false;
        n.replayedLsn = lsn;
        return true;
      },
      recordEnd: (insert: bigint): bigint => insert,
      lag: this.lag,
    };
    this.ctx = { nodes: this.nodes, monitor, maxLagMs: 1000, readYourWritesTimeoutMs: 200 };
  }

  replica(name: string): NodeEntry {
    const r = this.nodes.replicas.find((n) => n.endpoint.name === name);
    if (r === undefined) throw new Error(`no replica ${name}`);
    return r;
  }

  consistency(bounds: SessionBounds = this.bounds): Consistency {
    return new Consistency(this.ctx, bounds, silentLogger);
  }
}

/** A read as the router decides it (hints included). */
function read(sql = 'SELECT 1'): RouteDecision {
  return { target: 'replica', reason: 'read', classifications: [classifyQuery(sql)] };
}

const name = (n: NodeEntry | null): string | null => (n === null ? null : n.endpoint.name);

t.test('a fresh session reads from the least-loaded eligible replica, keeping the router\'s reason and asking nobody', async (t) => {
  const w = new World(3);
  w.replica('r1').sessions = 2;
  w.replica('r2').sessions = 0;
  w.replica('r3').sessions = 1;
  const c = w.consistency();
  const choice = await c.choose(null, read(), undefined);
  t.equal(name(choice.node), 'r2');
  t.equal(choice.reason, null, 'no reason of its own: the router\'s stands');
  t.equal(choice.kept, false);
  t.equal(choice.noReplica, false);
  t.equal(choice.req.minLsn, null, 'no floor before any write');
  t.equal(choice.req.maxLagMs, 1000, 'routing.max_lag');
  t.same([...(choice.tried ?? [])].map(name), ['r2']);
  t.equal(w.positionAsked, 0, 'the primary is not asked before the session used it');
  t.same(w.waits, []);
});

t.test('the attached replica is kept while it qualifies (the fast path asks nobody)', async (t) => {
  const w = new World();
  const c = w.consistency();
  const r2 = w.replica('r2');
  t.equal(c.mayStayOn(r2, read()), true);
  const choice = await c.choose(r2, read(), undefined);
  t.equal(name(choice.node), 'r2');
  t.equal(choice.kept, true, 'kept: the session has its link already');
  t.equal(choice.tried, null, 'no other replica looked at');
  t.equal(w.positionAsked, 0);
});

t.test('after the session used the primary, the next read raises the floor to the primary\'s position first (read-your-writes)', async (t) => {
  const w = new World(2, 0x5000n);
  const c = w.consistency();
  const r1 = w.replica('r1');
  c.raiseFloor = true;
  t.equal(c.mayStayOn(r1, read()), false, 'the fast path gives way while the floor needs raising');
  w.primaryLsn = 0x4000n;
  const choice = await c.choose(r1, read(), undefined);
  t.equal(w.positionAsked, 1, 'the primary\'s position was asked once');
  t.equal(choice.req.minLsn, 0x4000n, 'the floor is the primary\'s position');
  t.equal(name(choice.node), 'r1');
  t.equal(choice.kept, true);
  t.equal(c.raiseFloor, false, 'raised: the next read does not ask again');
  t.equal(c.mayStayOn(r1, read()), true);
  t.equal(c.requirement(read()).minLsn, 0x4000n, 'the floor stays for later reads');
  // The floor never goes down, even if a later answer is older (a read must not go back in time).
  c.raiseFloor = true;
  w.primaryLsn = 0x3000n;
  await c.choose(r1, read(), undefined);
  t.equal(c.requirement(read()).minLsn, 0x4000n);
});

t.test('a tagged session asks the primary\'s position when its unit there ends, and the next read uses that answer', async (t) => {
  const w = new World(2, 0x3000n);
  const c = w.consistency({ maxLagMs: null, afterLsn: null, tagged: true });
  const r1 = w.replica('r1');
  w.catchUp.set('r1', true);
  await c.choose(r1, read(), undefined); // the session reads on r1 first
  // A write on the primary: the session marks the floor for raising when it sends it, and the unit ends.
  c.raiseFloor = true;
  w.primaryLsn = 0x4000n;
  c.answered('primary', 1);
  t.equal(w.positionAsked, 1, 'asked as soon as the unit ended, before any read');
  await new Promise((r) => setImmediate(r));
  t.same(w.waits.map((x) => [x.node, x.lsn]), [['r1', 0x4000n]], 'and the monitor was told to watch the session\'s replica replay it');
  w.waits.length = 0;
  w.primaryLsn = 0x9000n; // a later position must not be used: the prefetched one covers the write
  const choice = await c.choose(r1, read(), undefined);
  t.equal(w.positionAsked, 1, 'the read did not ask again');
  t.equal(choice.req.minLsn, 0x4000n, 'its floor is the answer asked for when the write ended');

  // Write after write with no read between: the first answer went unused, so the second write asks nothing.
  c.raiseFloor = true;
  c.answered('primary', 2);
  c.raiseFloor = true;
  c.answered('primary', 3);
  t.equal(w.positionAsked, 2, 'a write right after a write does not ask');
  await c.choose(r1, read(), undefined);
  t.equal(w.positionAsked, 3, 'the read asks for itself, covering both writes');
  t.equal(c.requirement(read()).minLsn, 0x9000n);
  c.raiseFloor = true;
  c.answered('primary', 4);
  t.equal(w.positionAsked, 4, 'a read used the position again: the next write asks at once again');

  const untagged = w.consistency();
  untagged.raiseFloor = true;
  untagged.answered('primary', 5);
  t.equal(w.positionAsked, 4, 'an untagged session never asks ahead');
});

t.test('a position asked right behind a tagged session\'s unit on the primary is the next read\'s floor, with no question of the monitor\'s', async (t) => {
  const w = new World(2, 0x3000n);
  const c = w.consistency({ maxLagMs: null, afterLsn: null, tagged: true });
  const r1 = w.replica('r1');
  w.catchUp.set('r1', true);
  await c.choose(r1, read(), undefined);
  w.primaryLsn = 0x9000n; // what the monitor would say: must not be asked
  c.raiseFloor = true;
  const settle = c.positionBehind(true);
  t.type(settle, 'function', 'the session may ask behind its unit');
  c.answered('primary', 1);
  t.equal(w.positionAsked, 0, 'the unit\'s end asks nothing: the answer is on its way');
  settle?.('0/4000');
  const choice = await c.choose(r1, read(), undefined);
  t.equal(choice.req.minLsn, 0x4000n, 'the floor is the position read right behind the unit');
  t.equal(w.positionAsked, 0);

  // Asked behind a unit, then another unit before any read: the first answer does not cover the second.
  c.raiseFloor = true;
  const first = c.positionBehind(true);
  c.raiseFloor = true;
  t.equal(c.positionBehind(true), null, 'a write right after a write asks nothing (its answer would go unused too)');
  first?.('0/5000');
  c.answered('primary', 2);
  t.equal(w.positionAsked, 0, 'nor does its end');
  await c.choose(r1, read(), undefined);
  t.equal(w.positionAsked, 1, 'the read asks for itself, covering both units');
  t.equal(c.requirement(read()).minLsn, 0x9000n, 'and the first unit\'s answer was not used');

  // The question failed (or the session was in a transaction): the read asks the primary itself.
  c.raiseFloor = true;
  c.positionBehind(true)?.(null);
  c.answered('primary', 3);
  w.primaryLsn = 0xa000n;
  await c.choose(r1, read(), undefined);
  t.equal(w.positionAsked, 2);
  t.equal(c.requirement(read()).minLsn, 0xa000n);

  // Where the session cannot ask behind its unit, the unit's end asks the monitor as before.
  c.raiseFloor = true;
  t.equal(c.positionBehind(false), null);
  c.answered('primary', 4);
  t.equal(w.positionAsked, 3, 'asked when the unit ended');

  t.equal(w.consistency().positionBehind(true), null, 'an untagged session never asks');
  const alone = new World(0);
  t.equal(alone.consistency({ maxLagMs: null, afterLsn: null, tagged: true }).positionBehind(true), null, 'nor does one with no replicas to read from');
});

t.test('stayNow: the session\'s replica at once when the floor needs no raising or its position is in hand; a guard for what the replica lacks', async (t) => {
  const w = new World(2, 0x3000n);
  const c = w.consistency({ maxLagMs: null, afterLsn: null, tagged: true });
  const r1 = w.replica('r1');
  t.equal(c.stayNow(r1, read(), 'guard'), null, 'no floor: stay, no guard');
  c.raiseFloor = true;
  const settle = c.positionBehind(true);
  t.equal(c.stayNow(r1, read(), 'guard'), undefined, 'the position is not in hand yet: choose decides');
  t.equal(c.raiseFloor, true, 'and the floor still needs raising');
  settle?.('0/4000');
  t.equal(c.stayNow(r1, read(), 'wait'), undefined, 'in hand, but the replica lacks it and the read cannot carry a guard: choose waits');
  t.equal(c.raiseFloor, false, 'the floor was raised from the position in hand');
  t.equal(c.requirement(read()).minLsn, 0x4000n);
  t.equal(c.stayNow(r1, read(), 'guard'), 0x4000n, 'with a guard: stay, guarded at the floor');
  t.equal(w.positionAsked, 0, 'nobody was asked');
  r1.replayedLsn = 0x4000n;
  t.equal(c.stayNow(r1, read(), 'guard'), null, 'the replica has it: no guard');
  w.lagMs.set(r1, 5000);
  t.equal(c.stayNow(r1, read(), 'guard'), undefined, 'past the lag bound: choose moves');

  // A position the monitor was asked for when the unit ended counts too, once answered.
  const d = w.consistency({ maxLagMs: null, afterLsn: null, tagged: true });
  await d.choose(r1, read(), undefined);
  w.lagMs.set(r1, 10);
  w.primaryLsn = 0x5000n;
  d.raiseFloor = true;
  d.answered('primary', 1);
  t.equal(d.stayNow(r1, read(), 'guard'), undefined, 'asked, not answered yet');
  await new Promise((r) => setImmediate(r));
  t.equal(d.stayNow(r1, read(), 'guard'), 0x5000n, 'answered: in hand');
});

t.test('an attached replica behind the floor is waited for, up to routing.read_your_writes_timeout, and kept as causal-wait', async (t) => {
  const w = new World(2, 0x1000n);
  w.ctx.readYourWritesTimeoutMs = 350;
  const c = w.consistency();
  const r1 = w.replica('r1');
  w.catchUp.set('r1', true);
  c.raiseFloor = true;
  w.primaryLsn = 0x2000n;
  const choice = await c.choose(r1, read(), undefined);
  t.same(w.waits, [{ node: 'r1', lsn: 0x2000n, timeoutMs: 350 }], 'one wait, for the floor, bounded by the setting');
  t.equal(name(choice.node), 'r1');
  t.equal(choice.kept, true);
  t.equal(choice.reason, 'causal-wait');
});

t.test("'later' (a BEGIN alone): a replica behind only the floor is taken at once with the floor it lacks; the floor is still raised, the other requirements still hold", async (t) => {
  const w = new World(2, 0x1000n);
  const c = w.consistency();
  const r1 = w.replica('r1');
  c.raiseFloor = true;
  w.primaryLsn = 0x2000n;
  let choice = await c.choose(r1, read('BEGIN'), undefined, 'later');
  t.same(w.waits, [], 'no wait');
  t.equal(w.positionAsked, 1, 'the floor was raised: the transaction\'s reads need it');
  t.equal(name(choice.node), 'r1');
  t.equal(choice.kept, true);
  t.equal(choice.behindLsn, 0x2000n, 'the floor the replica lacks, for the transaction to record');
  t.equal(choice.reason, null);
  t.equal(c.stayNow(r1, read('BEGIN'), 'later'), 0x2000n, 'stayNow takes it too');
  t.equal(c.stayNow(r1, read('BEGIN'), 'wait'), undefined, 'where a read would wait');

  w.lagMs.set(r1, 5000);
  t.equal(c.stayNow(r1, read('BEGIN'), 'later'), undefined, 'past the lag bound: not taken');
  choice = await c.choose(r1, read('BEGIN'), undefined, 'later');
  t.same(w.waits, [], 'still no wait');
  t.equal(name(choice.node), 'r2', 'another replica behind only the floor');
  t.equal(choice.behindLsn, 0x2000n);
  w.lagMs.set(w.replica('r2'), 5000);
  choice = await c.choose(r1, read('BEGIN'), undefined, 'later');
  t.equal(choice.node, null, 'none within the lag bound: the primary');
  t.equal(choice.reason, 'fallback-lag');
});

t.test('when the attached replica does not catch up in time, the read moves to one that has replayed the floor, raising it again first', async (t) => {
  const w = new World(2, 0x1000n);
  const c = w.consistency();
  const r1 = w.replica('r1');
  w.replica('r2').replayedLsn = 0x9000n;
  c.raiseFloor = true;
  w.primaryLsn = 0x2000n;
  const first = c.choose(r1, read(), undefined);
  // The primary moves on while the session waits: the new replica must hold that as well.
  w.primaryLsn = 0x2800n;
  const choice = await first;
  t.same(w.waits.map((x) => x.node), ['r1'], 'waited for the attached replica only');
  t.equal(w.positionAsked, 2, 'asked again before moving (monotonic reads)');
  t.equal(choice.req.minLsn, 0x2800n);
  t.equal(name(choice.node), 'r2');
  t.equal(choice.kept, false, 'a new replica: a failure to reach it is retried elsewhere');
  t.equal(choice.reason, null);
});

t.test('no replica has replayed the floor: a wait for the least-loaded one, then the primary as fallback-causal', async (t) => {
  const w = new World(2, 0x1000n);
  const c = w.consistency();
  c.raiseFloor = true;
  w.primaryLsn = 0x16b3748n;
  const choice = await c.choose(null, read(), undefined);
  t.same(w.waits, [{ node: 'r1', lsn: 0x16b3748n, timeoutMs: 200 }]);
  t.equal(choice.node, null, 'the primary');
  t.equal(choice.reason, 'fallback-causal');
  t.equal(choice.noReplica, true);
  const e = c.noReplicaError(choice.req);
  t.equal(e.sqlState, '57P03');
  t.equal(e.detail, 'max_lag 1000 ms, after 0/16B3748; r1: position, r2: position');
  t.match(e.hint, /read_your_writes_timeout/);
});

t.test('a replica that catches up during the wait takes the read as causal-wait', async (t) => {
  const w = new World(2, 0x1000n);
  const c = w.consistency();
  w.replica('r1').sessions = 5; // r2 is the one waited for
  w.catchUp.set('r2', true);
  c.raiseFloor = true;
  w.primaryLsn = 0x2000n;
  const choice = await c.choose(null, read(), undefined);
  t.same(w.waits.map((x) => x.node), ['r2']);
  t.equal(name(choice.node), 'r2');
  t.equal(choice.reason, 'causal-wait');
  t.equal(choice.noReplica, false);
});

t.test('lag: past the bound means the primary as fallback-lag; the session\'s and the hint\'s bounds count, the smaller hint wins', async (t) => {
  const w = new World(1);
  const r1 = w.replica('r1');
  w.lagMs.set(r1, 5000);
  const c = w.consistency();
  let choice = await c.choose(null, read(), undefined);
  t.equal(choice.node, null);
  t.equal(choice.reason, 'fallback-lag');
  t.equal(w.waits.length, 0, 'no floor: nothing to wait for');
  t.match(c.noReplicaError(choice.req).hint, /pgsplit\.max_lag/);
  t.equal(c.noReplicaError(choice.req).detail, 'max_lag 1000 ms; r1: lag');

  w.bounds.maxLagMs = 10_000; // SET pgsplit.max_lag = '10s'
  choice = await c.choose(null, read(), undefined);
  t.equal(name(choice.node), 'r1', 'the session\'s own bound allows it');
  t.equal(choice.req.maxLagMs, 10_000);

  choice = await c.choose(null, read('/* pgsplit:max_lag=2s */ SELECT 1'), undefined);
  t.equal(choice.node, null, 'a hint tightens the session\'s bound');
  t.equal(choice.req.maxLagMs, 2000);
  t.equal(choice.reason, 'fallback-lag');

  w.lagMs.delete(r1); // unknown lag counts as too much
  choice = await c.choose(null, read(), undefined);
  t.equal(choice.reason, 'fallback-lag');
});

t.test('positions handed over (SET pgsplit.after, an after= hint) raise the requirement above the floor', async (t) => {
  const w = new World(2, 0x1000n);
  const c = w.consistency();
  w.replica('r2').replayedLsn = 0x20000n;
  w.bounds.afterLsn = 0x8000n;
  let choice = await c.choose(null, read(), undefined);
  t.equal(choice.req.minLsn, 0x8000n);
  t.equal(name(choice.node), 'r2', 'r1 has not replayed it');
  t.equal(w.positionAsked, 0, 'a handed-over position needs no question to the primary');
  choice = await c.choose(null, read('SELECT 1 /* pgsplit:after=0/30000 */'), undefined);
  t.equal(choice.req.minLsn, 0x30000n);
  t.equal(choice.node, null);
  t.equal(choice.reason, 'fallback-causal');
  t.same(w.waits.map((x) => [x.node, x.lsn]), [['r1', 0x30000n]], 'waited for the least-loaded replica behind it');
});

t.test('down, disabled, promoted and retiring replicas: fallback-no-replica, and the hint names the first reason that applies', async (t) => {
  const w = new World(2);
  const c = w.consistency();
  const [r1, r2] = [w.replica('r1'), w.replica('r2')];
  r1.health = 'down';
  r2.disabled = true;
  let choice = await c.choose(null, read(), undefined);
  t.equal(choice.node, null);
  t.equal(choice.reason, 'fallback-no-replica');
  t.equal(choice.noReplica, true);
  t.equal(c.noReplicaError(choice.req).detail, 'max_lag 1000 ms; r1: down, r2: disabled');
  t.match(c.noReplicaError(choice.req).hint, /ENABLE it/, 'disabled comes before down');

  r2.disabled = false;
  r2.endpoint.weight = 0;
  choice = await c.choose(null, read(), undefined);
  t.equal(choice.reason, 'fallback-no-replica', 'weight 0 takes no reads');

  r2.endpoint.weight = 1;
  r2.promoted = true;
  choice = await c.choose(null, read(), undefined);
  t.match(c.noReplicaError(choice.req).hint, /^the replicas are down/, 'down comes before not in recovery');
  r1.health = 'up';
  r1.retiring = true;
  choice = await c.choose(null, read(), undefined);
  t.equal(choice.reason, 'fallback-no-replica');
  t.match(c.noReplicaError(choice.req).hint, /no replica is in recovery/);
  t.equal(c.noReplicaError(choice.req).detail, 'max_lag 1000 ms; r1: removed, r2: not-in-recovery');

  // A replica that only lags among dead ones makes it fallback-lag (the reason says what would help).
  r2.promoted = false;
  w.lagMs.set(r2, 99_999);
  choice = await c.choose(null, read(), undefined);
  t.equal(choice.reason, 'fallback-lag');
});

t.test('no replicas configured', async (t) => {
  const w = new World(0);
  const c = w.consistency();
  const choice = await c.choose(null, read(), undefined);
  t.equal(choice.node, null);
  t.equal(choice.reason, 'fallback-no-replica');
  t.equal(c.noReplicaError(choice.req).detail, 'max_lag 1000 ms; no replicas configured');
  t.match(c.noReplicaError(choice.req).hint, /^configure replicas/);
});

t.test('the primary cannot tell its position: only it serves a read that must see its writes (fallback-no-position)', async (t) => {
  const w = new World();
  const c = w.consistency();
  w.primaryLsn = new Error('connection refused');
  c.raiseFloor = true;
  const choice = await c.choose(w.replica('r1'), read(), undefined);
  t.equal(choice.node, null);
  t.equal(choice.reason, 'fallback-no-position');
  t.equal(choice.noReplica, false, 'not a missing replica: routing.when_no_replica does not refuse it');
  t.equal(c.raiseFloor, true, 'still to raise: the next read asks again');
});

t.test('the primary down: its last known position serves only if read after everything the session saw finish', async (t) => {
  const w = new World(2, 0x5000n);
  const c = w.consistency();
  w.primaryLsn = new Error('timeout');
  w.nodes.primary.health = 'down';
  w.lag.primaryLsn = 0x4000n;
  w.lag.primarySampledAt = 100;
  c.answered('primary', 50);
  c.answered('replica', 90);
  c.raiseFloor = true;
  let choice = await c.choose(null, read(), undefined);
  t.equal(name(choice.node), 'r1', 'sampled at 100, after both answers (50, 90)');
  t.equal(choice.req.minLsn, 0x4000n, 'the floor is the last known position');

  c.answered('replica', 150);
  c.raiseFloor = true;
  choice = await c.choose(null, read(), undefined);
  t.equal(choice.node, null, 'a replica answer finished after the sample: it may show more than the sample');
  t.equal(choice.reason, 'fallback-no-position');

  w.lag.primarySampledAt = 200;
  w.nodes.primary.health = 'up';
  choice = await c.choose(null, read(), undefined);
  t.equal(choice.reason, 'fallback-no-position', 'a primary not found down is not replaced by its last position');
});

t.test('next(): a replica that could not be reached is not chosen again; the rest, then the primary', async (t) => {
  const w = new World(3);
  const c = w.consistency();
  const choice = await c.choose(null, read(), w.replica('r1'));
  t.equal(name(choice.node), 'r2', 'the unit avoids r1 (it failed there)');
  t.equal(await c.next(choice), choice, 'changed in place');
  t.equal(name(choice.node), 'r3');
  await c.next(choice);
  t.equal(choice.node, null);
  t.equal(choice.noReplica, true);
  t.equal(choice.reason, 'fallback-no-replica');
  t.same([...(choice.tried ?? [])].map(name).sort(), ['r1', 'r2', 'r3']);
});

t.test('next() after a causal wait keeps reporting causal-wait for the replica it moves to', async (t) => {
  const w = new World(2, 0x1000n);
  const c = w.consistency();
  w.bounds.afterLsn = 0x2000n;
  w.catchUp.set('r1', true);
  const choice = await c.choose(null, read(), undefined);
  t.equal(name(choice.node), 'r1');
  t.equal(choice.reason, 'causal-wait');
  w.replica('r2').replayedLsn = 0x2000n;
  await c.next(choice);
  t.equal(name(choice.node), 'r2');
  t.equal(choice.reason, 'causal-wait', 'the read still waited for its position');
  t.equal(choice.kept, false);
});

t.test('the attached replica that lost its lead: the floor is raised from the primary before another replica serves (monotonic reads)', async (t) => {
  const w = new World(2, 0x5000n);
  const c = w.consistency();
  const r1 = w.replica('r1');
  w.lagMs.set(r1, 5000); // r1 falls behind the lag bound: not a position matter, so no wait
  w.primaryLsn = 0x4800n;
  const choice = await c.choose(r1, read(), undefined);
  t.same(w.waits, [], 'no wait for a lag problem');
  t.equal(w.positionAsked, 1);
  t.equal(choice.req.minLsn, 0x4800n);
  t.equal(name(choice.node), 'r2');
});
