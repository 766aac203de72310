/**
 * MemoryTrim (src/proxy/memory-trim.ts): once the proxy has been quiet for two looks and V8's young
 * generation has grown, it runs one full collection (which lets V8 hand the young generation back:
 * measured on the whole proxy by bench:pool's idle clients); once per quiet spell, never while there
 * is activity, nor when the young generation is at rest. Against the real V8 heap of this test
 * process: a burst of surviving objects grows the young generation as thousands of arriving clients do.
 */
import v8 from 'node:v8';
import { PerformanceObserver, constants } from 'node:perf_hooks';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import t from 'tap';
import { MemoryTrim } from '../src/proxy/memory-trim.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

function youngBytes(): number {
  return v8.getHeapSpaceStatistics().find((s) => s.space_name === 'new_space')?.space_size ?? 0;
}

/** Objects that survive several scavenges, as sessions do: V8 grows its young generation for them. */
function burst(): unknown[] {
  const kept: unknown[] = [];
  for (let i = 0; i < 400_000; i++) kept.push({ id: i, name: `client ${i}`, params: [i, i + 1] });
  return kept;
}

/** Full (mark-compact) collections seen while `f` runs. */
async function majorGcsDuring(f: () => void): Promise<number> {
  let n = 0;
  const obs = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) if ((e as unknown as { detail?: { kind?: number } }).detail?.kind === constants.NODE_PERFORMANCE_GC_MAJOR) n++;
  });
  obs.observe({ entryTypes: ['gc'] });
  f();
  await new Promise((r) => setTimeout(r, 50));
  obs.disconnect();
  return n;
}

t.test('after a burst, a quiet proxy runs one full collection, once per quiet spell', async (t) => {
  let activity = 0;
  const trim = new MemoryTrim(() => activity);
  let kept: unknown[] | null = burst();
  t.ok(kept.length > 0);
  t.ok(youngBytes() > 4 << 20, `the burst grew the young generation (${(youngBytes() / 1048576).toFixed(1)} MiB)`);
  kept = null;

  // Let V8 finish its own work on the burst: only the trim's collection should fall in the window below.
  await new Promise((r) => setTimeout(r, 300));
  activity = 1;
  t.same([trim.check(), trim.check()], [false, false], 'not on the look that saw activity, nor on one quiet look');
  t.ok(await majorGcsDuring(() => t.ok(trim.check(), 'two quiet looks: it collects')) >= 1, 'a full collection ran');
  t.same([trim.check(), trim.check()], [false, false], 'once per quiet spell');
});

t.test('no collection while clients are active', async (t) => {
  let activity = 0;
  const trim = new MemoryTrim(() => activity);
  const kept = burst();
  t.ok(youngBytes() > 4 << 20);
  for (let i = 0; i < 5; i++) {
    activity++;
    t.notOk(trim.check(), `activity at look ${i + 1}: no collection`);
  }
  t.ok(kept.length > 0);
});

/** Four looks of a MemoryTrim with no activity in a fresh process, after a burst or not. */
function looksInFreshProcess(withBurst: boolean): boolean[] {
  const mod = pathToFileURL(path.join(root, 'dist/src/proxy/memory-trim.js')).href;
  const code = `import(${JSON.stringify(mod)}).then(({ MemoryTrim }) => {
    const kept = [];
    if (${withBurst}) for (let i = 0; i < 400000; i++) kept.push({ id: i, name: 'client ' + i, params: [i] });
    const m = new MemoryTrim(() => 0);
    console.log(JSON.stringify([m.check(), m.check(), m.check(), m.check(), kept.length >= 0]));
  })`;
  const out = JSON.parse(execFileSync(process.execPath, ['-e', code]).toString()) as boolean[];
  return out.slice(0, 4);
}

t.test('a young generation at rest is left alone however quiet the proxy is (fresh processes)', async (t) => {
  t.same(looksInFreshProcess(false), [false, false, false, false], 'at rest: never');
  t.same(looksInFreshProcess(true), [false, false, true, false], 'grown: on the second quiet look, once');
});
