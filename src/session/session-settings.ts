/**
 * The SET/RESET statements a session has made, so that every server the session uses runs with the same
 * settings. Each committed change bumps `version`; a server link remembers the version it has seen and,
 * before its next statement, receives `replayFor(linkVersion)`.
 *
 * Chosen simplifications (written down in the README): the statement text is replayed as the client
 * wrote it; a SET inside a transaction counts when the transaction commits; SET LOCAL is not replayed.
 */
export class SessionSettings {
  private readonly byName = new Map<string, string>();
  private resetAllVersion = 0;
  version = 0;

  /** Records a committed SET or RESET of one parameter (statement text as sent). */
  apply(name: string, statement: string): void {
    this.byName.delete(name);
    this.byName.set(name, statement);
    this.version++;
  }

  /** RESET ALL / DISCARD ALL: every server must be reset, and nothing is left to replay. */
  resetAll(): void {
    this.byName.clear();
    this.version++;
    this.resetAllVersion = this.version;
  }

  /** SQL that brings a server from `linkVersion` up to date, or null when it already is. */
  replayFor(linkVersion: number): string | null {
    if (linkVersion >= this.version) return null;
    const parts: string[] = [];
    if (linkVersion > 0 && linkVersion < this.resetAllVersion) parts.push('RESET ALL');
    for (const s of this.byName.values()) parts.push(s);
    return parts.length === 0 ? null : parts.join(';\n');
  }
}
