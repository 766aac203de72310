import type { Frame } from '../codec/frame-reader.js';
import { Frontend } from '../codec/message-types.js';
import { bindOf, parseOf, readCString, readTarget } from '../codec/message-fields.js';
import { parseLocalCommand, type LocalCommand } from './local-command.js';

/**
 * pgsplit's own statements (SET / RESET / SHOW pgsplit.*) sent through the extended protocol, as pgjdbc
 * and other drivers send everything: Parse, Bind, Describe, Execute and Close of such a statement are
 * answered by pgsplit, exactly as a simple Query of it is, and never reach a server (which would take
 * SET pgsplit.route as a placeholder and leave the session untagged).
 *
 * The client's statement and portal names that hold such a statement are remembered here; a Parse or
 * Bind of something else under the same name forgets it.
 */
/** Never written: `set` is only called after it was replaced with a Map of the session's own. */
const NONE = new Map<string, LocalCommand>();

export class LocalStatements {
  // Shared empty maps until a name is recorded: most sessions never send pgsplit's statements this way,
  // and an idle session should cost little (each Map keeps a table of its own).
  private statements: Map<string, LocalCommand> = NONE;
  private portals: Map<string, LocalCommand> = NONE;

  /** A simple Query destroys the unnamed statement and portal. */
  forgetUnnamed(): void {
    this.statements.delete('');
    this.portals.delete('');
  }

  /**
   * Splits an extended batch's frames into what goes to a server before, the run of frames about
   * pgsplit's statements, and what follows (to the end of the batch); null when no frame is pgsplit's.
   * Names are recorded as the frames are read: later frames of the batch see them.
   */
  split(frames: readonly Frame[]): { before: Frame[]; local: LocalFrame[]; after: Frame[] } | null {
    let first = -1;
    let last = -1;
    const cmds: Array<LocalCommand | undefined> = [];
    for (let i = 0; i < frames.length; i++) {
      const f = frames[i] as Frame;
      const cmd = this.localCommandOf(f);
      cmds.push(cmd === null ? undefined : cmd);
      if (cmd !== null) {
        if (first < 0) first = i;
        last = i;
      }
    }
    if (first < 0) return null;
    // A Sync or Flush right after the run ends it: answered with it.
    while (last + 1 < frames.length && (frames[last + 1]?.type === Frontend.Sync || frames[last + 1]?.type === Frontend.Flush)) last++;
    const local: LocalFrame[] = [];
    for (let i = first; i <= last; i++) local.push({ frame: frames[i] as Frame, cmd: cmds[i] });
    return { before: frames.slice(0, first), local, after: frames.slice(last + 1) };
  }

  /**
   * The pgsplit statement a frame is about (a Sync or Flush: none, undefined), or null when it is not
   * pgsplit's; the names it creates or ends are recorded on the way (one read of each frame). Read when
   * the batch arrives: later batches may reuse the names before this one is answered.
   */
  private localCommandOf(f: Frame): LocalCommand | undefined | null {
    switch (f.type) {
      case Frontend.Parse: {
        const p = parseOf(f);
        if (p === null) return null;
        const cmd = parseLocalCommand(p.query);
        if (cmd === null) {
          this.statements.delete(p.name);
          return null;
        }
        if (this.statements === NONE) this.statements = new Map();
        this.statements.set(p.name, cmd);
        return cmd;
      }
      case Frontend.Bind: {
        if (this.statements.size === 0 && this.portals.size === 0) return null;
        const b = bindOf(f);
        if (b === null) return null;
        const cmd = this.statements.get(b.statement);
        if (cmd === undefined) {
          this.portals.delete(b.portal);
          return null;
        }
        if (this.portals === NONE) this.portals = new Map();
        this.portals.set(b.portal, cmd);
        return cmd;
      }
      case Frontend.Execute: {
        if (this.portals.size === 0) return null;
        const name = readCString(f.payload, 0);
        return name === null ? null : this.portals.get(name[0]) ?? null;
      }
      case Frontend.Describe:
      case Frontend.Close: {
        if (this.statements.size === 0 && this.portals.size === 0) return null;
        const t = readTarget(f.payload);
        if (t === null) return null;
        const map = t.kind === 'S' ? this.statements : this.portals;
        const cmd = map.get(t.name);
        if (cmd === undefined) return null;
        // A Close ends the name here: the frames after it no longer see it as pgsplit's.
        if (f.type === Frontend.Close) map.delete(t.name);
        return cmd;
      }
      default:
        return null;
    }
  }
}

/** A frame about a pgsplit statement, with the command it names as it stood when the batch arrived. */
export interface LocalFrame {
  frame: Frame;
  cmd: LocalCommand | undefined;
}
