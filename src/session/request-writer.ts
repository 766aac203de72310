import { serialize } from '../codec/frontend-messages.js';
import { ChunkFrame, type Frame } from '../codec/frame-reader.js';
import type { FrameCoalescer } from '../codec/frame-coalescer.js';
import { Frontend } from '../codec/message-types.js';
import { bindOf, parseOf, readTarget } from '../codec/message-fields.js';
import { formatLsn } from '../monitor/lsn.js';
import type { LocalCommand } from './local-command.js';
import type { Expect, ServerLink } from './server-link.js';
import type { Unit } from './unit.js';

/**
 * Parse of an empty unnamed statement, sent after unsynced extended-protocol messages and before what
 * follows them on the same server (a Query, a FunctionCall, or a statement pgsplit answers itself). The
 * server answers it only if those messages ran without error; after an error it skips it, and skips the
 * rest up to the client's Sync too. A Query destroys the unnamed statement anyway; where the client's
 * unnamed statement must survive, the link forgets it and pgsplit prepares it again before its next use.
 */
export const PROBE_PARSE = Buffer.from([Frontend.Parse, 0, 0, 0, 8, 0, 0, 0, 0]);
/**
 * An empty Query, sent after a probe in place of a statement pgsplit answers itself: it does to the
 * batch what the client's Query would do on a direct connection (ends it, committing its implicit
 * transaction, and flushes its answers), or is skipped with it after an error.
 */
export const EMPTY_QUERY = Buffer.from([Frontend.Query, 0, 0, 0, 5, 0]);
/** Ends a tagged transaction's replica side when it moves to the primary (it only read there). */
export const ROLLBACK = Buffer.from([Frontend.Query, 0, 0, 0, 13, ...Buffer.from('ROLLBACK'), 0]);
/** A Sync in place of pgsplit's own messages behind a failed batch (see Session.pump). */
export const SYNC: Frame = (() => {
  const raw = Buffer.from([Frontend.Sync, 0, 0, 0, 4]);
  return { type: Frontend.Sync, raw, payload: raw.subarray(5) } as Frame;
})();
/**
 * The primary's WAL insert position, asked behind a tagged session's unit there (positionQuery):
 * schema-qualified, so that no search_path of the session's can put another function in its place.
 */
const POSITION_QUERY = serialize.query('SELECT pg_catalog.pg_current_wal_insert_lsn()');
/** The Bind and Execute of a guard (RequestWriter.guard): the unnamed statement into the unnamed portal, all rows. */
const GUARD_BIND = serialize.bind();
const GUARD_EXECUTE = serialize.execute();
/** Makes the server answer an unsynced batch now (see Binding.copyPending). */
export const FLUSH = Buffer.from([Frontend.Flush, 0, 0, 0, 4]);

/**
 * The writing half of a session: the bytes that go to a server, and the replies they make it owe
 * (pushed on the link's tracker, in the order the bytes go). It keeps the client's statement registry
 * (what the client prepared, by name) against what each server has prepared (ServerLink.prepared), and
 * prepares a statement again, or closes a stale one, on a server that lacks it before the client's
 * message that uses it. Where the bytes go, when, and why is the session's: nothing here routes or
 * touches a socket.
 */
export class RequestWriter {
  /**
   * The client's named statements: name -> Parse payload (what a Bind or Describe of the name needs).
   * Made on the first Parse: most idle clients never send one, and an empty Map costs some 200 bytes.
   */
  private named: Map<string, Buffer> | null = null;

  private get statements(): Map<string, Buffer> {
    return (this.named ??= new Map());
  }

  /** The Parse payload of the client's statement `name`, if it has one. */
  statement(name: string): Buffer | undefined {
    return this.named?.get(name);
  }

  /** DISCARD ALL ran: the client has no prepared statements left. */
  forgetStatements(): void {
    this.named?.clear();
  }

  /**
   * The session's settings replay ahead of a unit: each query's answer is swallowed. `version` is the
   * settings version the link has once they ran.
   */
  replay(link: ServerLink, queries: readonly string[], version: number, out: FrameCoalescer): void {
    for (const q of queries) {
      out.add(serialize.query(q));
      link.tracker.push({ kind: 'sync', swallow: true, replay: true });
    }
    link.settingsVersion = version;
    // A simple Query destroys the server's unnamed statement; re-prepare it if the unit needs it.
    link.prepared.delete('');
  }

  /** Queries whose answers the client never sees, ahead of a unit (the BEGIN pgsplit answered, replayed statements). */
  swallowedQueries(link: ServerLink, texts: readonly string[], out: FrameCoalescer): void {
    for (const sql of texts) {
      out.add(serialize.query(sql));
      link.tracker.push({ kind: 'sync', swallow: true });
    }
    link.prepared.delete('');
  }

  /** A ROLLBACK of its own on `link`, whose answer is swallowed: the replica side of a transaction that moves. */
  rollback(link: ServerLink): Buffer[] {
    link.tracker.nextUnit(false);
    link.tracker.push({ kind: 'sync', swallow: true });
    link.prepared.delete('');
    return [ROLLBACK];
  }

  /** An internal query of pgsplit's own: its rows go to `capture`, then null when its answer is complete. */
  internalQuery(link: ServerLink, sql: string, capture: NonNullable<Expect['capture']>): Buffer[] {
    link.tracker.nextUnit(false);
    link.tracker.push({ kind: 'sync', swallow: true, capture });
    link.prepared.delete('');
    return [serialize.query(sql)];
  }

  /**
   * The primary's position right behind a unit on `link` (see Consistency.positionBehind): a Query of its
   * own, pipelined with the unit, whose answer the client never sees; `settle` gets the position's text
   * (null if the query failed or answered no row).
   */
  positionQuery(link: ServerLink, settle: (insert: string | null) => void, out: FrameCoalescer): void {
    let insert: string | null = null;
    link.tracker.nextUnit(false);
    link.tracker.push({
      kind: 'sync',
      swallow: true,
      position: true,
      capture: (row) => {
        if (row !== null) insert = row[0] ?? null;
        else settle(insert);
      },
    });
    out.add(POSITION_QUERY);
    link.prepared.delete('');
  }

  /**
   * A guard ahead of a read on a replica that has not been seen to replay `lsn`: extended messages (no
   * Sync) running a statement that divides by zero unless the replica has replayed `lsn` (a NULL
   * position, a server out of recovery, fails too). It fails, and the server skips the read behind it up
   * to the next Sync: the read never ran. It passes, and the read runs after it; under read committed
   * (and after a Query, which commits the guard's transaction first) its snapshot is taken after the
   * check, so it sees everything up to `lsn`. Its answer is the relay's (Expect.guard), never the
   * client's. The unnamed statement is the guard's now: a client Bind of its own unnamed statement is
   * prepared again first (ensurePrepared).
   */
  guard(link: ServerLink, lsn: bigint, out: FrameCoalescer): void {
    const text = `SELECT 1 / COALESCE((pg_catalog.pg_last_wal_replay_lsn() >= '${formatLsn(lsn)}'::pg_catalog.pg_lsn)::pg_catalog.int4, 0)`;
    out.add(serialize.parse({ text }));
    out.add(GUARD_BIND);
    out.add(GUARD_EXECUTE);
    link.tracker.extendedSent();
    link.tracker.push({ kind: 'parse', swallow: true, guard: lsn });
    link.prepared.delete('');
  }

  /** The Sync after a guarded Query (see guard): after a failed guard, the server skips the Query up to it. */
  guardSync(link: ServerLink, out: FrameCoalescer): void {
    out.add(SYNC.raw);
    link.tracker.pushSync({ kind: 'sync', swallow: true, extended: true, afterGuard: true });
  }

  /** A probe (see PROBE_PARSE) ahead of a Query or FunctionCall behind `link`'s unsynced messages. */
  probe(link: ServerLink, out: FrameCoalescer): void {
    out.add(PROBE_PARSE);
    link.pushProbe();
  }

  /** Ends `link`'s unsynced batch with a probe and a Sync of pgsplit's (see Expect.endsReplicaBatch). */
  endBatch(link: ServerLink): Buffer[] {
    link.tracker.nextUnit(false);
    link.pushProbe();
    link.tracker.push({ kind: 'sync', swallow: true, extended: true, endsBatch: true, endsReplicaBatch: true });
    return [PROBE_PARSE, SYNC.raw];
  }

  /**
   * A statement pgsplit answers itself, behind `link`'s unsynced batch: a probe and an empty Query go in
   * its place, and it is answered when the server has answered them (see EMPTY_QUERY).
   */
  localProbe(link: ServerLink, cmd: LocalCommand): Buffer[] {
    link.tracker.nextUnit(false);
    link.pushProbe();
    link.tracker.push({ kind: 'sync', swallow: true, local: cmd, endsBatch: true });
    return [PROBE_PARSE, EMPTY_QUERY];
  }

  /** COPY data, CopyDone or CopyFail, as the client sent them. */
  copy(link: ServerLink, u: Unit): Buffer[] {
    for (const f of u.frames) if (f.type === Frontend.CopyDone || f.type === Frontend.CopyFail) link.tracker.copyEndSent();
    return u.frames.map((f) => f.raw);
  }

  /**
   * A unit's frames, each after what the server needs first (a statement the client prepared elsewhere,
   * or a stale one closed), and the replies they make it owe; a Flush after them when `flush`. A unit's
   * ending Sync or Query completes it (`endsTx`: it ends a transaction). What the unit changes in the
   * statement registry is undone by `u.registryUndo` if it runs again elsewhere.
   */
  frames(u: Unit, link: ServerLink, endsTx: boolean, flush: boolean, out: FrameCoalescer): void {
    for (const f of u.frames) {
      // Any extended message but Sync leaves the server something an error would skip to the next Sync.
      if (u.kind === 'extended' && f.type !== Frontend.Sync) link.tracker.extendedSent();
      switch (f.type) {
        case Frontend.Parse: {
          const p = parseOf(f);
          if (p && p.name !== '') {
            if (this.statements.has(p.name)) {
              // Re-parsing an existing name is the client's error (42P05): make this server see the
              // existing statement too, so it answers exactly as a direct connection would.
              this.ensurePrepared(link, p.name, out);
            } else if (link.prepared.has(p.name)) {
              // The client closed this name on another server; this server still has the old one.
              this.injectClose(link, p.name, out);
            }
          }
          let undo: (() => void) | undefined;
          const before = p ? this.statements.get(p.name) : undefined;
          // The same statement again (a driver's unnamed one at each execution): its copy serves.
          const same = before !== undefined && before.equals(f.payload);
          const linkBefore = p ? link.prepared.get(p.name) : undefined;
          // Already what this server holds too: nothing changes, nothing to undo if the unit runs elsewhere.
          if (p && !(same && linkBefore === before)) {
            const copy = same ? before : Buffer.from(f.payload);
            (u.registryUndo ??= []).push(() => restore(this.statements, p.name, before));
            this.statements.set(p.name, copy);
            link.prepared.set(p.name, copy);
            undo = () => {
              restore(this.statements, p.name, before);
              restore(link.prepared, p.name, linkBefore);
            };
          }
          link.tracker.push({ kind: 'parse', swallow: false, undo });
          break;
        }
        case Frontend.Bind: {
          const b = bindOf(f);
          if (b) this.ensurePrepared(link, b.statement, out);
          break;
        }
        case Frontend.Describe: {
          const t = readTarget(f.payload);
          if (t && t.kind === 'S') this.ensurePrepared(link, t.name, out);
          break;
        }
        case Frontend.Close: {
          const t = readTarget(f.payload);
          let undo: (() => void) | undefined;
          if (t && t.kind === 'S') {
            const before = this.statements.get(t.name);
            const linkBefore = link.prepared.get(t.name);
            (u.registryUndo ??= []).push(() => restore(this.statements, t.name, before));
            this.statements.delete(t.name);
            link.prepared.delete(t.name);
            undo = () => {
              restore(this.statements, t.name, before);
              restore(link.prepared, t.name, linkBefore);
            };
          }
          link.tracker.push({ kind: 'close', swallow: false, undo });
          break;
        }
        case Frontend.Execute:
          link.tracker.executeSent();
          break;
        case Frontend.Sync:
          // After an error in the batch the server skipped to this Sync: the batch's effects do not apply.
          link.tracker.pushSync({ kind: 'sync', swallow: false, unit: u, extended: true, endsTx, failed: link.tracker.skipping || undefined });
          break;
        case Frontend.Query:
          // The protocol says a simple Query destroys the unnamed statement, for the client and the server.
          link.prepared.delete('');
          this.statements.delete('');
          link.tracker.push({ kind: 'sync', swallow: false, unit: u, extended: false, endsTx });
          break;
        case Frontend.FunctionCall:
          link.tracker.push({ kind: 'sync', swallow: false, unit: u, extended: false });
          break;
        default:
          break;
      }
      // Frames of one client chunk: joined by their offsets in it (see FrameCoalescer.addRange).
      if (f instanceof ChunkFrame) out.addRange(f.chunk, f.start, f.end);
      else out.add(f.raw);
    }
    if (flush) out.add(FLUSH);
  }

  /** Makes sure `name` is prepared on `link` with the client's current text, injecting a Parse if not. */
  private ensurePrepared(link: ServerLink, name: string, out: FrameCoalescer): void {
    const want = this.named?.get(name);
    if (!want) return;
    const have = link.prepared.get(name);
    if (have && have.equals(want)) return;
    if (have && name !== '') this.injectClose(link, name, out);
    const msg = Buffer.allocUnsafe(5 + want.length);
    msg[0] = Frontend.Parse;
    msg.writeInt32BE(4 + want.length, 1);
    want.copy(msg, 5);
    out.add(msg);
    link.tracker.push({ kind: 'parse', swallow: true, undo: () => link.prepared.delete(name) });
    link.prepared.set(name, want);
  }

  private injectClose(link: ServerLink, name: string, out: FrameCoalescer): void {
    out.add(serialize.close({ type: 'S', name }));
    // Skipped (an error before it, a guard that failed), the server keeps the statement: so must the books.
    const had = link.prepared.get(name);
    link.tracker.push({ kind: 'close', swallow: true, undo: had === undefined ? undefined : () => link.prepared.set(name, had) });
    link.prepared.delete(name);
  }
}

function restore<V>(map: Map<string, V>, key: string, value: V | undefined): void {
  if (value === undefined) map.delete(key);
  else map.set(key, value);
}
