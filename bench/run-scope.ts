/**
 * What every benchmark command does around its run: one temporary folder for everything the run makes
 * (clusters, peer proxies, pgbench logs; TMPDIR points there, readable by the postgres user who runs the
 * servers and peers when we are root), and on SIGINT/SIGTERM: stop the servers, every child process and
 * peer the run started, and remove that folder (stopClustersOnSignal prints `NAME: SIGNAL: stopping the
 * servers` and exits 130 or 143).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { stopBenchProcesses } from './bench-suite.js';
import { stopClustersOnSignal } from '../src/cluster/local-cluster.js';

let stopping = false;

/**
 * Whether a signal is stopping the run: the run's own failures that follow (a server gone under a
 * query) are then the signal's doing, and the handler exits once its cleanup is done; exiting earlier
 * would cut that cleanup short.
 */
export function stoppedBySignal(): boolean {
  return stopping;
}

/** Sets the run's folder and signal handlers up; the returned function removes the folder (call it at the end). */
export function openRunScope(name: string): () => void {
  const runTmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pgsplit-bench-run-'));
  fs.chmodSync(runTmp, 0o755);
  process.env.TMPDIR = runTmp;
  const removeRunTmp = (): void => fs.rmSync(runTmp, { recursive: true, force: true });
  stopClustersOnSignal(name, async () => {
    stopping = true;
    await stopBenchProcesses();
    // A peer or child still starting when the signal came is not tracked yet: stop whatever this
    // process started that still runs (the servers, started through pg_ctl, are not children).
    await stopDescendants();
    removeRunTmp();
  });
  return removeRunTmp;
}

/** This process's descendants, from /proc (children before grandchildren). */
function descendants(): number[] {
  const children = new Map<number, number[]>();
  for (const e of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${e}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (fields[0] === 'Z') continue;
      const ppid = Number(fields[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(e)]);
    } catch {
      // exited meanwhile
    }
  }
  const out: number[] = [];
  const queue = [process.pid];
  for (let p = queue.shift(); p !== undefined; p = queue.shift()) {
    for (const c of children.get(p) ?? []) {
      out.push(c);
      queue.push(c);
    }
  }
  return out;
}

/** SIGTERM to every descendant, SIGKILL to those still there after 5 s. */
async function stopDescendants(): Promise<void> {
  const kill = (pid: number, sig: NodeJS.Signals): void => {
    try {
      process.kill(pid, sig);
    } catch {
      // already gone
    }
  };
  const pids = descendants();
  for (const pid of pids) kill(pid, 'SIGTERM');
  const deadline = Date.now() + 5000;
  while (descendants().length > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  for (const pid of descendants()) kill(pid, 'SIGKILL');
}
