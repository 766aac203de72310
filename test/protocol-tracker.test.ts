/**
 * The protocol state of one server connection (src/server/protocol-tracker.ts), without a server: scripted
 * client messages, then the server's replies as bytes (built with the codec's encoders), one message at a
 * time, with the tracker's state asserted after each. `Wire` calls the tracker as Session.send and
 * ResponseRelay.onServerData do; the expected states are PostgreSQL's: which reply answers which message, what
 * an error makes the server skip, which Syncs a COPY FROM STDIN reads as data.
 */
import t from 'tap';
import {
  bindComplete, closeComplete, commandComplete, dataRow, errorResponse, noData, parseComplete, readyForQuery, rowDescription,
} from '../src/codec/backend-messages.js';
import { Backend } from '../src/codec/message-types.js';
import { ProtocolTracker, type Expectation } from '../src/server/protocol-tracker.js';

/** An expectation with a label, so that tests can say which one is where. */
interface Labeled extends Expectation<string> {
  label: string;
}

const error = (): Buffer => errorResponse({ severity: 'ERROR', code: '22012', message: 'division by zero' });
/** CopyInResponse, text format, no columns (the codec has no encoder for it: pgsplit never sends it). */
const copyInResponse = (): Buffer => Buffer.from([Backend.CopyInResponse, 0, 0, 0, 7, 0, 0, 0]);

/** A client (what it sends, as the session tells the tracker) and a server (replies as bytes). */
class Wire {
  /** Labels of the expectations handed to onSkipped, in the order they were handed. */
  readonly skipped: string[] = [];
  readonly tracker = new ProtocolTracker<string, Labeled>((e) => this.skipped.push(e.label));
  /** The syncs answered by a ReadyForQuery, in order, as readyForQuery()/shift() returned them. */
  readonly done: Labeled[] = [];
  /** What the last error() returned. */
  errorSkips: boolean | undefined;
  /** What the last copyInStarted() returned. */
  copyOpensBatch: boolean | undefined;

  /** A simple Query (it may start a COPY). */
  query(label: string): void {
    this.tracker.nextUnit(true);
    this.tracker.push({ kind: 'sync', swallow: false, extended: false, label });
  }

  /**
   * Extended messages sent as one unit: 'P:label' Parse, 'C:label' Close, 'B' Bind, 'D' Describe,
   * 'E' Execute, 'S:label' Sync; 'P!label' / 'C!label' are pgsplit's own (a re-prepare, a stale Close).
   */
  extended(...msgs: string[]): void {
    this.tracker.nextUnit(false);
    for (const m of msgs) {
      const [type, label = m] = [m[0], m.slice(2)];
      const swallow = m[1] === '!';
      if (type !== 'S') this.tracker.extendedSent();
      if (type === 'P') this.tracker.push({ kind: 'parse', swallow, label });
      else if (type === 'C') this.tracker.push({ kind: 'close', swallow, label });
      else if (type === 'E') this.tracker.executeSent();
      else if (type === 'S') this.tracker.pushSync({ kind: 'sync', swallow: false, extended: true, failed: this.tracker.skipping || undefined, label });
    }
  }

  /** pgsplit's probe, then a Query, behind unsynced extended messages (as Session.send does). */
  probeThenQuery(label: string): void {
    this.tracker.nextUnit(true);
    this.tracker.pushProbe({ kind: 'parse', swallow: true, probe: true, label: `probe ${label}` });
    this.tracker.push({ kind: 'sync', swallow: false, extended: false, label });
  }

  /** A Query of pgsplit's own whose answer the client never sees (a settings replay). */
  swallowedQuery(label: string, endsBatch?: boolean): void {
    this.tracker.push({ kind: 'sync', swallow: true, endsBatch, label });
  }

  copyDone(): void {
    this.tracker.copyEndSent();
  }

  /**
   * One server message: what the tracker does with it, and whether the client gets it (the type's
   * character, or '' when pgsplit swallows it).
   */
  recv(msg: Buffer): string {
    const type = msg[0] as number;
    const c = String.fromCharCode(type);
    const head = this.tracker.head;
    if (type === Backend.ParseComplete && head?.probe === true) {
      this.tracker.shift();
      return '';
    }
    if (head !== undefined && head.kind === 'sync' && head.swallow) {
      // A reply to pgsplit's own Query: only its end is tracked.
      if (type === Backend.ReadyForQuery) this.done.push(this.tracker.shift() as Labeled);
      return '';
    }
    switch (type) {
      case Backend.ParseComplete:
      case Backend.CloseComplete:
        return this.tracker.completed(type === Backend.ParseComplete ? 'parse' : 'close')?.swallow === true ? '' : c;
      case Backend.ErrorResponse:
        this.errorSkips = this.tracker.error();
        return c;
      case Backend.ReadyForQuery: {
        const e = this.tracker.readyForQuery();
        if (e !== undefined) this.done.push(e);
        this.tracker.copyEnded();
        return c;
      }
      case Backend.CopyInResponse:
        this.copyOpensBatch = this.tracker.copyInStarted();
        return c;
      case Backend.CommandComplete:
        this.tracker.copyEnded();
        return c;
      default:
        return c;
    }
  }

  /** Several server messages: what the client gets. */
  recvAll(...msgs: Buffer[]): string {
    return msgs.map((m) => this.recv(m)).join('');
  }

  labels(): string[] {
    return this.tracker.queue.map((e) => e.label);
  }

  doneLabels(): string[] {
    return this.done.map((e) => e.label);
  }
}

t.test('a simple Query: RowDescription, DataRows and CommandComplete go by; ReadyForQuery answers it', async (t) => {
  const w = new Wire();
  t.equal(w.tracker.busy, false);
  w.query('q1');
  t.equal(w.tracker.busy, true);
  t.equal(w.tracker.units, 1);
  t.same(w.labels(), ['q1']);
  t.equal(w.tracker.head?.unitNo, 1, 'numbered by the unit it was sent in');
  for (const m of [rowDescription(['a']), dataRow(['1']), dataRow(['2']), commandComplete('SELECT 2')]) {
    t.equal(w.recv(m), String.fromCharCode(m[0] as number), 'relayed');
    t.same(w.labels(), ['q1'], 'still owed');
    t.equal(w.tracker.busy, true);
  }
  t.equal(w.recv(readyForQuery('I')), 'Z');
  t.same(w.doneLabels(), ['q1']);
  t.equal(w.tracker.busy, false);
  t.equal(w.tracker.doneUnit, 1);
  t.equal(w.tracker.doneSync, true, 'a client sync ended its unit');
  t.equal(w.tracker.needsSync, false);
  t.equal(w.tracker.skipping, false);
  t.equal(w.tracker.head, undefined);
});

t.test('pipelined Queries are answered in order', async (t) => {
  const w = new Wire();
  w.query('q1');
  w.query('q2');
  t.same(w.labels(), ['q1', 'q2']);
  t.equal(w.recvAll(commandComplete('SET'), readyForQuery('I')), 'CZ');
  t.same(w.labels(), ['q2']);
  t.equal(w.tracker.doneUnit, 1);
  t.equal(w.recvAll(error(), readyForQuery('I')), 'EZ', 'an error in a simple Query is its own');
  t.equal(w.errorSkips, false, 'a simple Query error does not skip to a Sync');
  t.equal(w.tracker.skipping, false);
  t.equal(w.done[1]?.failed, true, 'the Query it answered failed');
  t.equal(w.done[0]?.failed, undefined);
  t.equal(w.tracker.doneUnit, 2);
  t.equal(w.tracker.busy, false);
});

t.test('an extended batch whose first Execute fails: the rest up to Sync is skipped', async (t) => {
  const w = new Wire();
  w.extended('P:a', 'B', 'E', 'P:b', 'B', 'E', 'S:sync');
  t.same(w.labels(), ['a', 'b', 'sync']);
  t.equal(w.tracker.needsSync, false, 'the Sync was sent with the batch');
  t.equal(w.recv(parseComplete()), '1');
  t.same(w.labels(), ['b', 'sync']);
  t.equal(w.tracker.doneSync, false, 'a ParseComplete ends no unit');
  t.equal(w.recv(bindComplete()), '2');
  t.equal(w.recv(error()), 'E');
  t.equal(w.errorSkips, false, 'the Sync is sent already: nothing left open');
  t.same(w.skipped, ['b'], 'the second Parse never runs: its bookkeeping is undone');
  t.same(w.labels(), ['sync']);
  t.equal(w.tracker.head?.failed, true, 'the batch failed');
  t.equal(w.recv(readyForQuery('I')), 'Z');
  t.same(w.doneLabels(), ['sync']);
  t.equal(w.done[0]?.failed, true);
  t.equal(w.tracker.busy, false);
});

t.test('an error before the client sends Sync: the server skips to that Sync, whatever comes in between', async (t) => {
  const w = new Wire();
  w.extended('P:a', 'B', 'E'); // then a Flush: the server answers what it has
  t.equal(w.tracker.needsSync, true);
  t.equal(w.recvAll(parseComplete(), bindComplete(), error()), '12E');
  t.equal(w.errorSkips, true, 'the batch stays open until the client syncs');
  t.equal(w.tracker.skipping, true);
  t.equal(w.tracker.needsSync, true);
  t.equal(w.tracker.busy, false, 'nothing is owed until the Sync');
  w.extended('P:c', 'B', 'E');
  w.extended('S:sync');
  t.equal(w.tracker.skipping, false, 'the Sync ends the skipping');
  t.equal(w.tracker.needsSync, false);
  t.equal(w.tracker.queue[1]?.failed, true, 'its sync is known to have failed when sent');
  t.equal(w.recv(readyForQuery('I')), 'Z', 'the server answers only the Sync');
  t.same(w.skipped, ['c'], 'the Parse sent while skipping never ran');
  t.same(w.doneLabels(), ['sync']);
  t.equal(w.tracker.busy, false);
});

t.test('a probe answered: the batch before it ran; its ParseComplete is not the client\'s', async (t) => {
  const w = new Wire();
  w.extended('P:a', 'B', 'D', 'E');
  t.equal(w.tracker.needsSync, true);
  w.probeThenQuery('q');
  t.equal(w.tracker.needsSync, false, 'the Query after the probe ends extended mode');
  t.same(w.labels(), ['a', 'probe q', 'q']);
  t.equal(w.recvAll(parseComplete(), bindComplete(), noData(), commandComplete('SET')), '12nC');
  t.equal(w.recv(parseComplete()), '', 'the probe\'s answer is swallowed');
  t.same(w.labels(), ['q']);
  t.equal(w.recvAll(rowDescription(['x']), dataRow(['1']), commandComplete('SELECT 1'), readyForQuery('I')), 'TDCZ');
  t.same(w.doneLabels(), ['q']);
  t.same(w.skipped, []);
  t.equal(w.tracker.skipping, false);
});

t.test('a probe skipped after an error: the Query behind it is skipped too, and the client\'s next Sync answers', async (t) => {
  const w = new Wire();
  w.extended('P:a', 'B', 'E');
  w.probeThenQuery('q');
  t.equal(w.recvAll(parseComplete(), bindComplete(), error()), '12E');
  t.same(w.skipped, ['q', 'probe q'], 'the server skips the probe and the Query (newest first)');
  t.equal(w.errorSkips, true);
  t.equal(w.tracker.skipping, true, 'still skipping: the client has not synced');
  t.equal(w.tracker.busy, false);
  w.extended('S:sync');
  t.equal(w.tracker.queue[0]?.failed, true);
  t.equal(w.recv(readyForQuery('I')), 'Z');
  t.same(w.doneLabels(), ['sync']);
  t.equal(w.tracker.skipping, false);
});

t.test('a probe skipped after an error, with the client\'s Sync already sent: everything up to it is skipped', async (t) => {
  const w = new Wire();
  w.extended('P:a', 'B', 'E');
  w.probeThenQuery('q');
  w.extended('P:b', 'B', 'E', 'S:sync');
  t.same(w.labels(), ['a', 'probe q', 'q', 'b', 'sync']);
  t.equal(w.recv(parseComplete()), '1');
  t.equal(w.recv(error()), 'E');
  t.same(w.skipped, ['b', 'q', 'probe q'], 'past the Query, up to the extended Sync (newest first)');
  t.equal(w.errorSkips, false, 'the Sync is sent: nothing stays open');
  t.equal(w.tracker.skipping, false);
  t.same(w.labels(), ['sync']);
  t.equal(w.tracker.head?.failed, true);
  t.equal(w.recv(readyForQuery('I')), 'Z');
  t.equal(w.tracker.busy, false);
});

t.test('an error that is not the probe\'s batch\'s: the probe was answered, the Query failed on its own', async (t) => {
  const w = new Wire();
  w.extended('P:a', 'B', 'E');
  w.probeThenQuery('q');
  t.equal(w.recvAll(parseComplete(), bindComplete(), commandComplete('SELECT 0'), parseComplete()), '12C');
  t.equal(w.recv(error()), 'E');
  t.equal(w.errorSkips, false);
  t.same(w.skipped, []);
  t.equal(w.tracker.skipping, false, 'a Query error does not skip anything');
  t.equal(w.tracker.head?.label, 'q');
  t.equal(w.tracker.head?.failed, true);
  t.equal(w.recv(readyForQuery('I')), 'Z');
  t.equal(w.tracker.busy, false);
});

t.test('swallowed expectations: a re-prepare, a stale Close, a settings replay', async (t) => {
  const w = new Wire();
  w.swallowedQuery('replay 1');
  w.swallowedQuery('replay 2');
  w.extended('C!stale', 'P!s1', 'B', 'E', 'S:sync');
  t.same(w.labels(), ['replay 1', 'replay 2', 'stale', 's1', 'sync']);
  t.equal(w.recvAll(commandComplete('SET'), readyForQuery('I')), '', 'the replay\'s answers are not the client\'s');
  t.equal(w.tracker.doneSync, false, 'a swallowed sync ends no unit');
  t.equal(w.recvAll(error(), readyForQuery('I')), '', 'nor its error, which fails nothing of the client\'s');
  t.equal(w.tracker.skipping, false);
  t.equal(w.done[1]?.failed, undefined);
  t.same(w.labels(), ['stale', 's1', 'sync']);
  t.equal(w.recv(closeComplete()), '', 'the injected Close');
  t.equal(w.recv(parseComplete()), '', 'the injected Parse');
  t.equal(w.recvAll(bindComplete(), dataRow(['1']), commandComplete('SELECT 1')), '2DC');
  t.equal(w.recv(readyForQuery('I')), 'Z');
  t.same(w.doneLabels(), ['replay 1', 'replay 2', 'sync']);
  t.equal(w.tracker.doneSync, true);
  t.equal(w.tracker.busy, false);
});

t.test('a client Parse is relayed; an injected one failing with the batch is skipped and undone', async (t) => {
  const w = new Wire();
  w.extended('P:mine', 'P!s1', 'B', 'E', 'S:sync');
  t.equal(w.recv(parseComplete()), '1', 'the client\'s own ParseComplete reaches it');
  t.equal(w.recv(error()), 'E');
  t.same(w.skipped, ['s1']);
  t.equal(w.recv(readyForQuery('E')), 'Z');
  t.equal(w.done[0]?.failed, true);
});

t.test('COPY FROM STDIN of an extended batch: the Syncs sent inside the COPY are read as data', async (t) => {
  const w = new Wire();
  // Parse/Bind/Execute/Sync, CopyData, Sync, CopyData, CopyDone, Sync, then a Query: all pipelined.
  w.extended('P:copy', 'B', 'E', 'S:s1'); // unit 1
  w.extended('S:s2'); // unit 2 (inside the COPY)
  w.copyDone(); // unit 3
  w.extended('S:s4'); // unit 4 (after CopyDone: answered)
  w.query('after'); // unit 5
  t.equal(w.tracker.units, 5);
  t.same(w.labels(), ['copy', 's1', 's2', 's4', 'after']);
  t.same(w.tracker.queue.map((e) => e.unitNo), [1, 1, 2, 4, 5]);
  t.equal(w.recvAll(parseComplete(), bindComplete()), '12');
  t.equal(w.recv(copyInResponse()), 'G');
  t.same(w.labels(), ['s4', 'after'], 's1 and s2 came before the CopyDone: no answer');
  t.same(w.skipped, [], 'nothing of the client\'s is undone');
  t.equal(w.copyOpensBatch, false, 'the Sync after CopyDone is sent: no batch stays open');
  t.equal(w.tracker.copyWindow, false, 'the CopyDone is sent already');
  t.equal(w.recvAll(commandComplete('COPY 2'), readyForQuery('I')), 'CZ');
  t.same(w.doneLabels(), ['s4']);
  t.equal(w.recvAll(commandComplete('SELECT 0'), readyForQuery('I')), 'CZ');
  t.same(w.doneLabels(), ['s4', 'after']);
  t.equal(w.tracker.busy, false);
});

t.test('COPY FROM STDIN started before the client\'s CopyDone: the window stays open, the batch until the next Sync', async (t) => {
  const w = new Wire();
  w.extended('P:copy', 'B', 'E', 'S:s1');
  t.equal(w.recvAll(parseComplete(), bindComplete(), copyInResponse()), '12G');
  t.equal(w.tracker.copyWindow, true, 'all the client sends now is the COPY\'s');
  t.equal(w.copyOpensBatch, true, 'its Sync was swallowed: the batch is open');
  t.equal(w.tracker.needsSync, true);
  t.equal(w.tracker.busy, false, 'the swallowed Sync is no longer owed');
  w.copyDone();
  t.equal(w.tracker.copyWindow, false);
  w.extended('S:s3');
  t.equal(w.tracker.needsSync, false);
  t.equal(w.recvAll(commandComplete('COPY 1'), readyForQuery('I')), 'CZ');
  t.same(w.doneLabels(), ['s3']);
});

t.test('COPY FROM STDIN that fails: the batch skips to the client\'s Sync sent after the CopyDone', async (t) => {
  const w = new Wire();
  w.extended('P:copy', 'B', 'E', 'S:s1');
  t.equal(w.recvAll(parseComplete(), bindComplete(), copyInResponse()), '12G');
  w.copyDone();
  t.equal(w.recv(error()), 'E', 'bad data');
  t.equal(w.errorSkips, true, 'no Sync after the COPY yet: the server skips to it');
  t.equal(w.tracker.skipping, true);
  t.equal(w.tracker.busy, false, 'nothing is owed until that Sync');
  w.extended('S:s3');
  t.equal(w.tracker.head?.failed, true, 'sent while skipping: known to have failed');
  t.equal(w.tracker.skipping, false);
  t.equal(w.recv(readyForQuery('I')), 'Z');
  t.same(w.doneLabels(), ['s3']);
  t.equal(w.tracker.busy, false);
});

t.test('a Query holding two COPY FROM STDIN: each COPY matches its own CopyDone', async (t) => {
  const w = new Wire();
  w.query('two copies'); // unit 1
  w.copyDone(); // unit 2: the first COPY's data, then its end, pipelined
  t.equal(w.recv(copyInResponse()), 'G');
  t.equal(w.tracker.copyWindow, false, 'the first COPY\'s CopyDone is sent');
  t.equal(w.copyOpensBatch, false);
  t.same(w.labels(), ['two copies'], 'a Query is not a Sync: it stays owed');
  t.equal(w.recv(commandComplete('COPY 1')), 'C');
  t.equal(w.recv(copyInResponse()), 'G');
  t.equal(w.tracker.copyWindow, true, 'the second COPY has no CopyDone yet');
  w.copyDone(); // unit 3
  t.equal(w.tracker.copyWindow, false);
  t.equal(w.recvAll(commandComplete('COPY 1'), readyForQuery('I')), 'CZ');
  t.same(w.doneLabels(), ['two copies']);
  t.equal(w.tracker.busy, false);
});

t.test('a COPY started by a later unit: placed after everything already answered', async (t) => {
  const w = new Wire();
  w.query('q1'); // unit 1
  w.extended('P:copy', 'B', 'E'); // unit 2, unsynced (then a Flush)
  w.copyDone(); // unit 3
  w.extended('S:s4'); // unit 4
  t.equal(w.recvAll(commandComplete('SELECT 0'), readyForQuery('I')), 'CZ');
  t.equal(w.tracker.doneUnit, 1);
  t.equal(w.recvAll(parseComplete(), bindComplete(), copyInResponse()), '12G');
  t.equal(w.tracker.copyWindow, false, 'its CopyDone (unit 3) came after it (unit 2)');
  t.same(w.labels(), ['s4'], 'the Sync after the CopyDone is answered');
  t.equal(w.recvAll(commandComplete('COPY 0'), readyForQuery('I')), 'CZ');
  t.same(w.doneLabels(), ['q1', 's4']);
});

t.test('unit numbers stay right past the pruning of old ones', async (t) => {
  const w = new Wire();
  for (let i = 0; i < 200; i++) {
    w.query(`q${i}`);
    w.copyDone(); // a CopyDone nobody needed (PostgreSQL ignores it outside COPY)
    t.equal(w.recvAll(commandComplete('SELECT 1'), readyForQuery('I')), 'CZ');
  }
  t.equal(w.tracker.units, 400);
  w.query('copy'); // unit 401
  t.equal(w.recv(copyInResponse()), 'G');
  t.equal(w.tracker.copyWindow, true, 'no CopyDone after unit 401: the window is open');
  w.copyDone();
  t.equal(w.recvAll(commandComplete('COPY 0'), readyForQuery('I')), 'CZ');
  t.equal(w.tracker.busy, false);
});

t.test('open effects of unsynced messages settle with the reply that ends their batch', async (t) => {
  const w = new Wire();
  w.extended('P:set', 'B', 'E');
  w.tracker.carry('SET a');
  w.tracker.carry('SET b');
  t.same(w.tracker.openEffects, ['SET a', 'SET b']);
  w.swallowedQuery('replay');
  t.equal(w.tracker.queue[1]?.carried, undefined, 'a replay does not end the client\'s batch');
  t.same(w.tracker.openEffects, ['SET a', 'SET b']);
  w.swallowedQuery('empty Query after a probe', true);
  t.same(w.tracker.queue[2]?.carried, ['SET a', 'SET b'], 'pgsplit\'s message in the client\'s place takes them');
  t.same(w.tracker.openEffects, []);
  w.tracker.carry('COMMIT');
  w.extended('S:sync');
  t.same(w.tracker.queue[3]?.carried, ['COMMIT'], 'a client Sync takes them');
  w.tracker.carry('SET c');
  w.extended('P:x');
  t.equal(w.tracker.queue[4]?.carried, undefined, 'a Parse does not');
  for (let i = 0; i < 2000; i++) w.tracker.carry(`SET ${i}`);
  t.equal(w.tracker.openEffects.length, 1024, 'bounded: the oldest go');
  t.equal(w.tracker.openEffects[0], 'SET 976');
});

t.test('clear() forgets every expectation without undoing any', async (t) => {
  const w = new Wire();
  w.extended('P:a', 'B', 'E', 'S:sync');
  w.tracker.clear();
  t.equal(w.tracker.busy, false);
  t.same(w.skipped, []);
  t.equal(w.tracker.completed('parse'), undefined, 'nothing left to answer');
  t.equal(w.tracker.readyForQuery(), undefined);
});
