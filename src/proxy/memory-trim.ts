import v8 from 'node:v8';
import vm from 'node:vm';

/** How often the trim looks (ms), and how many looks in a row must see no activity before it acts. */
const CHECK_EVERY_MS = 5000;
const QUIET_CHECKS = 2;
/** V8's young generation at rest is 1-2 MiB; above this it has grown for a burst. */
const GROWN_BYTES = 4 << 20;

/** A full collection, as V8 exposes it to a context made after --expose-gc is set; null if unavailable. */
function exposedGc(): (() => void) | null {
  try {
    v8.setFlagsFromString('--expose-gc');
    const gc: unknown = vm.runInNewContext('gc');
    return typeof gc === 'function' ? (gc as () => void) : null;
  } catch {
    return null;
  }
}

function youngGenerationBytes(): number {
  let n = 0;
  for (const s of v8.getHeapSpaceStatistics()) if (s.space_name === 'new_space') n += s.space_size;
  return n;
}

/**
 * Hands back the memory V8 grew for the last burst once the proxy has gone quiet. V8 grows its young
 * generation (up to 2 x 16 MiB) while many objects survive, as when thousands of clients connect at
 * once, and shrinks it only at a garbage collection run while it allocates little; a proxy whose
 * clients sit idle allocates almost nothing, so that collection may not come for many minutes, and the
 * 32 MiB stay resident: 6 KiB per client when 5,000 clients connect and wait. After 10 s with no client
 * arriving and no statement routed, if the young generation has grown, one full collection runs
 * (a few tens of milliseconds, while no client is being served); then not again until there has been
 * activity.
 */
export class MemoryTrim {
  private timer: NodeJS.Timeout | null = null;
  private gc: (() => void) | null | undefined;
  private lastActivity = -1;
  private quiet = 0;
  /** The activity count when the trim last ran: it runs once per quiet spell. */
  private trimmedAt = -1;

  /** `activity`: a count that grows with every client arriving and every statement routed. */
  constructor(private readonly activity: () => number) {}

  start(): void {
    if (this.timer !== null) return;
    this.timer = setInterval(() => this.check(), CHECK_EVERY_MS);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  /** One look: returns whether it collected (for tests). */
  check(): boolean {
    const a = this.activity();
    if (a !== this.lastActivity) {
      this.lastActivity = a;
      this.quiet = 0;
      return false;
    }
    if (++this.quiet < QUIET_CHECKS || this.trimmedAt === a) return false;
    if (youngGenerationBytes() <= GROWN_BYTES) return false;
    if (this.gc === undefined) this.gc = exposedGc();
    if (this.gc === null) return false;
    this.gc();
    this.trimmedAt = a;
    return true;
  }
}
