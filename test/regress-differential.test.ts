/**
 * Differential test of the whole proxy on PostgreSQL's own regression suite (the half of it in
 * shared/corpus/pg-regress).
 *
 * Every scheduled file runs through `psql -X -a -q` (as pg_regress runs it) four times, each time in a
 * fresh `regression` database cloned from a template loaded once with test_setup.sql:
 *   1. directly on the primary, 2. directly again (the two must be identical, else the file is
 *   nondeterministic here and left out of the comparisons), 3. through pgsplit untagged, which must give
 *   exactly the direct output, 4. through pgsplit tagged (PGOPTIONS `-c pgsplit.route=replica`), where
 *   reads go to a replica right after the session's own writes: with read-your-writes these must match
 *   too, except for differences of the kinds listed in TAGGED_DIFFERENCES_EXPECTED (server-local state
 *   such as statistics, which no replica shares, and the first reads of a new connection made with \c,
 *   which does not inherit the previous session's position). Every difference is classified and
 *   reported; one of any other kind fails the test, as does a hang or pgsplit failing to serve.
 *
 * Then, with psql's AUTOCOMMIT off (every statement inside a transaction psql opens with a plain BEGIN,
 * as JDBC with autocommit off and most ORMs do; in a tagged session pgsplit defers that BEGIN, runs the
 * transaction on a replica while it only reads and moves it to the primary before its first write),
 * each file runs 5. directly and 6. through pgsplit tagged, both with the same psql variables:
 * AUTOCOMMIT=off and ON_ERROR_ROLLBACK=off (psql's default). With it the first error of a file aborts the
 * transaction psql opened, and what follows fails with 25P02 until the script's own COMMIT/ROLLBACK
 * (insert.sql: 350 of its 352 errors), so less of each file is compared than in autocommit; but it is
 * what an application sees, and its transactions do run on the replica and move (tx-read, tx-moved in
 * the summary). PGSPLIT_REGRESS_ON_ERROR_ROLLBACK=on makes psql wrap every statement in SAVEPOINT /
 * RELEASE, so the files run through as in autocommit; but pgsplit then opens every transaction on the
 * primary (its first statement is psql's SAVEPOINT, routed `savepoint`: no tx-read at all in a 17-file
 * run), so that mode compares primary transactions only. The tagged run must
 * equal run 5 except for the same expected kinds of difference, and must have at least as many files
 * identical as the autocommit tagged run. If it differs, run 5 is made again: a file whose two direct
 * AUTOCOMMIT-off runs differ is left out of that comparison only.
 * The summary goes to t.comment and to $TMPDIR/pgsplit-regress-differential/summary.json (with a diff
 * excerpt for every file that differs). Every run's full output (NAME.MODE.out) is kept in the run's work
 * directory when PGSPLIT_REGRESS_KEEP=1 (the summary names it).
 *
 * Choices, and why:
 * - One replica: tagged sessions all use it, which is enough to show stale reads; a second one would only
 *   add replay work on a 2-core machine.
 * - autovacuum off: a background ANALYZE/VACUUM landing in one run and not another changes plans and
 *   row orders, which would look like a pgsplit difference. max_prepared_transactions = 2 as in
 *   pg_regress's temporary instance.
 * - Cluster-wide objects (roles, tablespaces, other databases, role settings) are undone after every run
 *   (RegressRunner.restoreClusterState), so all four runs of a file start from the same shared state.
 * - Only the port in libpq's "connection to server at ..., port N failed" message is normalised
 *   (see normalise() in the runner); everything else is compared byte for byte.
 * - The direct output is also compared with expected/NAME.out (and NAME_N.out) the way pg_regress does
 *   (diff -w), for information only: the server is PostgreSQL 15 and the suite is 16's.
 *
 * Knobs: PGSPLIT_REGRESS_ONLY=a,b,c runs only those files; PGSPLIT_REGRESS_AUTOCOMMIT_OFF=0 leaves out
 * runs 5 and 6 (they add about half again to the run time); PGSPLIT_REGRESS_ON_ERROR_ROLLBACK=on|off; PGSPLIT_REGRESS_TIMEOUT_MS (default 60000) is
 * the per-run psql timeout; PGSPLIT_REGRESS_KEEP=1 keeps the outputs; PGSPLIT_REGRESS_CORPUS=DIR uses that
 * corpus instead of ../shared/corpus/pg-regress (beside the repo) or /work/shared/corpus/pg-regress.
 */
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import t from 'tap';
import { startProxy } from './fixtures/proxy-fixture.js';
import {
  REGRESS_DB, RegressRunner, TEMPLATE_DB, classifyHunk, corpusCandidates, diffExcerpt, diffHunks, findCorpus, findPsql,
  matchingExpected, normalise, readSchedule, runPsql, type DiffCategory, type PsqlResult,
} from './fixtures/regress-runner.js';

const FILE_TIMEOUT_MS = Number(process.env.PGSPLIT_REGRESS_TIMEOUT_MS ?? 60_000);
/** Where the summary goes (summary.json, replaced atomically by each run). */
const SUMMARY_DIR = path.join(os.tmpdir(), 'pgsplit-regress-differential');
/** Keep every run's psql output (in the work directory, whose path the summary gives) instead of removing it. */
const KEEP = Boolean(process.env.PGSPLIT_REGRESS_KEEP);

t.setTimeout(30 * 60_000);

const corpus = findCorpus();
const psql = findPsql();
const skip = !corpus
  ? `pg-regress corpus not found (looked for sql/test_setup.sql in ${corpusCandidates().join(' and ')})`
  : !psql
    ? 'psql not found (pg_config --bindir, PG_BINDIR, PATH)'
    : false;

type Mode = 'direct1' | 'direct2' | 'direct3' | 'untagged' | 'tagged' | 'directOff' | 'directOff2' | 'taggedOff';

/** The AUTOCOMMIT-off variant (runs 5 and 6 in the header), unless PGSPLIT_REGRESS_AUTOCOMMIT_OFF=0. */
const AUTOCOMMIT_OFF = process.env.PGSPLIT_REGRESS_AUTOCOMMIT_OFF !== '0';
/** psql's default (off) unless PGSPLIT_REGRESS_ON_ERROR_ROLLBACK=on; see the header for what each compares. */
const ON_ERROR_ROLLBACK = process.env.PGSPLIT_REGRESS_ON_ERROR_ROLLBACK === 'on' ? 'on' : 'off';
const OFF_VARIABLES: Readonly<Record<string, string>> = { AUTOCOMMIT: 'off', ON_ERROR_ROLLBACK };
const isOff = (m: Mode): boolean => m === 'directOff' || m === 'directOff2' || m === 'taggedOff';
const isTagged = (m: Mode): boolean => m === 'tagged' || m === 'taggedOff';

/** The kinds of tagged differences that read-your-writes does not remove (see the header). */
const TAGGED_DIFFERENCES_EXPECTED: ReadonlySet<string> = new Set([
  'server-local state differs (statistics, locks, backend)',
  "new connection (\\c) read before the replica replayed the previous connection's writes",
]);

/**
 * Files whose tagged runs differ because of a known pgsplit bug (reproduced in a subtest at the end):
 * reported, asserted as todo, and left out of the other assertions on that run. None now: the two the
 * runs found (an isolation change after a read in a tagged transaction succeeded on the primary;
 * current_schema() creating the temporary schema failed with 25006 inside one) are fixed, and their
 * reductions at the end are plain tests.
 */
const KNOWN_TAGGED_BUGS: ReadonlyMap<string, string> = new Map();

/** The same for the AUTOCOMMIT-off tagged run. */
const KNOWN_OFF_BUGS: ReadonlyMap<string, string> = new Map();

interface Run extends PsqlResult {
  mode: Mode;
  /** What restoreClusterState undid after the run. */
  undone: string[];
}

interface TaggedDiff {
  name: string;
  category: DiffCategory;
  /** 1-based line of the first difference in the direct output. */
  firstLine: number;
  hunks: number;
  hunkCategories: Partial<Record<DiffCategory, number>>;
  excerpt: string;
}

/** Opens a session through pgsplit and runs SELECT 1, within 10 s; the error message or null. */
async function proxyServes(port: number, tagged: boolean): Promise<string | null> {
  const c = new pg.Client({
    host: '127.0.0.1', port, user: 'postgres', database: 'postgres', connectionTimeoutMillis: 10_000,
    options: tagged ? '-c pgsplit.route=replica' : undefined,
  });
  c.on('error', () => undefined);
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      (async () => {
        await c.connect();
        await c.query('SELECT 1');
      })(),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error('no answer within 10 s')), 10_000);
      }),
    ]);
    return null;
  } catch (err) {
    return (err as Error).message;
  } finally {
    clearTimeout(timer);
    await c.end().catch(() => undefined);
  }
}

t.test('pg-regress suite: direct vs through pgsplit', { skip }, async (t) => {
  const started = Date.now();
  const corpusDir = corpus as string;
  const schedule = readSchedule(corpusDir);
  const only = process.env.PGSPLIT_REGRESS_ONLY?.split(',').map((s) => s.trim()).filter(Boolean);
  const files = only ? schedule.files.filter((f) => only.includes(f)) : schedule.files;

  // Outputs live in this run's own work directory, so two runs at once (two checkouts on one machine)
  // cannot mix their files; it is removed at the end unless PGSPLIT_REGRESS_KEEP is set.
  const workDir = await fsp.mkdtemp(path.join(os.tmpdir(), 'pgsplit-regress-'));
  const outDir = path.join(workDir, 'out');
  if (!KEEP) t.teardown(() => fsp.rm(workDir, { recursive: true, force: true }));

  const fx = await startProxy(t, {
    replicas: 1,
    cluster: { settings: { autovacuum: 'off', max_prepared_transactions: '2' } },
  });
  const primary = fx.cluster.primary;
  const ports = [primary.port, fx.port];
  const runner = new RegressRunner({ cluster: fx.cluster, corpusDir, psql: psql as string, workDir, outDir, timeoutMs: FILE_TIMEOUT_MS });
  t.teardown(() => runner.close());
  await runner.prepareDirs();

  const setupStarted = Date.now();
  const setup = await runner.loadTemplate();
  t.notOk(setup.timedOut, 'test_setup.sql loads into the template in time');
  const [loaded] = await primary.query<{ n: string }>('SELECT count(*)::text AS n FROM tenk1', undefined, TEMPLATE_DB);
  t.equal(loaded?.n, '10000', `${TEMPLATE_DB} holds test_setup's tables (tenk1 has 10000 rows)`);
  runner.baseline = await runner.snapshot();
  const setupMs = Date.now() - setupStarted;

  const overhead = { freshDatabaseMs: 0, restoreMs: 0, livenessMs: 0, psqlMs: 0 };
  const run = async (name: string, mode: Mode): Promise<Run> => {
    let t0 = Date.now();
    await runner.freshDatabase(name, { waitForReplicas: isTagged(mode) });
    overhead.freshDatabaseMs += Date.now() - t0;
    const res = await runPsql({
      psql: psql as string,
      sqlFile: runner.sqlFile(name),
      outFile: path.join(outDir, `${name}.${mode}.out`),
      cwd: runner.buildDir,
      env: runner.env(mode.startsWith('direct') ? primary.port : fx.port, REGRESS_DB, isTagged(mode)),
      timeoutMs: FILE_TIMEOUT_MS,
      variables: isOff(mode) ? OFF_VARIABLES : undefined,
    });
    overhead.psqlMs += res.ms;
    t0 = Date.now();
    const undone = await runner.restoreClusterState();
    overhead.restoreMs += Date.now() - t0;
    return { ...res, mode, undone };
  };

  const nondeterministic: Array<{ name: string; reason: string; excerpt: string }> = [];
  const untaggedMismatch: Array<{ name: string; excerpt: string }> = [];
  const untaggedMatched: string[] = [];
  const taggedMatched: string[] = [];
  const taggedDiffs: TaggedDiff[] = [];
  const timeouts: Array<{ name: string; mode: Mode }> = [];
  const liveness: Array<{ name: string; mode: Mode; error: string }> = [];
  const expectedMatched: Array<{ name: string; file: string }> = [];
  const residue: Array<{ name: string; mode: Mode; undone: string[] }> = [];
  const timings: Record<string, Partial<Record<Mode, number>>> = {};
  // The AUTOCOMMIT-off variant: compared over the files deterministic both ways.
  const offCompared: string[] = [];
  const offMatched: string[] = [];
  const offDiffs: TaggedDiff[] = [];
  const offNondeterministic: Array<{ name: string; excerpt: string }> = [];
  /** What pgsplit routed during the tagged AUTOCOMMIT-off runs, by reason (tx-read, tx-moved, ...). */
  const offReasons = new Map<string, number>();

  /** Checks a run through pgsplit: finished in time, not killed, and pgsplit serves both kinds of session afterwards. */
  const checkProxyRun = async (name: string, r: Run): Promise<void> => {
    const mode = r.mode;
    t.notOk(r.timedOut, `${name} ${mode}: psql through pgsplit finishes within ${FILE_TIMEOUT_MS} ms`);
    if (!r.timedOut) t.equal(r.signal, null, `${name} ${mode}: psql was not killed by a signal`);
    for (const tagged of [false, true]) {
      const t0 = Date.now();
      const err = await proxyServes(fx.port, tagged);
      overhead.livenessMs += Date.now() - t0;
      if (err !== null) liveness.push({ name, mode, error: `${tagged ? 'tagged' : 'untagged'} session: ${err}` });
      t.equal(err, null, `${name} ${mode}: pgsplit still serves ${tagged ? 'tagged' : 'untagged'} sessions afterwards`);
    }
  };

  /** The classified differences of a tagged output from the direct one, or null when identical. */
  const tagDiff = (name: string, dLines: string[], gLines: string[]): TaggedDiff | null => {
    const gHunks = diffHunks(dLines, gLines);
    if (gHunks.length === 0) return null;
    const hunkCategories: Partial<Record<DiffCategory, number>> = {};
    for (const h of gHunks) {
      const c = classifyHunk(dLines, gLines, h);
      hunkCategories[c] = (hunkCategories[c] ?? 0) + 1;
    }
    const first = gHunks[0]!;
    return {
      name,
      category: classifyHunk(dLines, gLines, first),
      firstLine: first.aStart + 1,
      hunks: gHunks.length,
      hunkCategories,
      excerpt: diffExcerpt(dLines, gLines, gHunks, { maxHunks: 1, maxLines: 12 }),
    };
  };

  for (const name of files) {
    const runs = {} as Record<Mode, Run>;
    for (const mode of ['direct1', 'direct2', 'untagged', 'tagged'] as const) {
      const r = await run(name, mode);
      runs[mode] = r;
      if (r.timedOut) timeouts.push({ name, mode });
      if (r.undone.length > 0) residue.push({ name, mode, undone: r.undone });
      if (mode === 'untagged' || mode === 'tagged') await checkProxyRun(name, r);
    }
    timings[name] = { direct1: runs.direct1.ms, direct2: runs.direct2.ms, untagged: runs.untagged.ms, tagged: runs.tagged.ms };

    const d1 = runs.direct1.output;
    const d1Lines = normalise(d1, ports).split('\n');
    const expected = matchingExpected(corpusDir, name, d1);
    if (expected) expectedMatched.push({ name, file: expected });

    let deterministic = true;
    if (runs.direct1.timedOut || runs.direct2.timedOut) {
      deterministic = false;
      nondeterministic.push({ name, reason: `a direct run timed out after ${FILE_TIMEOUT_MS} ms`, excerpt: '' });
    } else if (d1 !== runs.direct2.output) {
      deterministic = false;
      const d2Lines = runs.direct2.output.split('\n');
      const u = normalise(runs.untagged.output, ports);
      nondeterministic.push({
        name,
        reason: 'two direct runs differ' +
          (u === normalise(d1, ports) || u === normalise(runs.direct2.output, ports) ? ' (untagged equals one of them)' : ' (untagged equals neither)'),
        excerpt: diffExcerpt(d1.split('\n'), d2Lines, diffHunks(d1.split('\n'), d2Lines), { maxHunks: 2, labels: ['direct run 1', 'direct run 2'] }),
      });
    }

    if (deterministic && normalise(runs.untagged.output, ports) !== normalise(d1, ports)) {
      // Before calling this a pgsplit difference, make sure the file is not merely timing-dependent: a
      // third direct run that differs from the first one moves the file to the nondeterministic list.
      const d3 = await run(name, 'direct3');
      timings[name] = { ...timings[name], direct3: d3.ms };
      if (d3.timedOut || d3.output !== d1) {
        deterministic = false;
        const d3Lines = d3.output.split('\n');
        nondeterministic.push({
          name,
          reason: 'a third direct run (made because the untagged run differed) differs from the first',
          excerpt: diffExcerpt(d1.split('\n'), d3Lines, diffHunks(d1.split('\n'), d3Lines), { maxHunks: 2, labels: ['direct run 1', 'direct run 3'] }),
        });
      }
    }

    const uLines = normalise(runs.untagged.output, ports).split('\n');
    const gLines = normalise(runs.tagged.output, ports).split('\n');
    let verdict: string;
    if (!deterministic) {
      verdict = 'nondeterministic (excluded)';
    } else {
      const uHunks = diffHunks(d1Lines, uLines);
      if (uHunks.length === 0) untaggedMatched.push(name);
      else untaggedMismatch.push({ name, excerpt: diffExcerpt(d1Lines, uLines, uHunks) });
      t.ok(uHunks.length === 0, `${name}: output through pgsplit (untagged) equals the direct output`, {
        diff: uHunks.length === 0 ? undefined : diffExcerpt(d1Lines, uLines, uHunks),
      });
      t.equal(runs.untagged.exitCode, runs.direct1.exitCode, `${name}: psql exit status through pgsplit (untagged) equals the direct one`);

      const gDiff = runs.tagged.timedOut ? null : tagDiff(name, d1Lines, gLines);
      if (runs.tagged.timedOut) {
        verdict = 'tagged TIMEOUT';
      } else if (gDiff === null) {
        taggedMatched.push(name);
        verdict = 'tagged matches';
      } else {
        taggedDiffs.push(gDiff);
        verdict = `tagged differs from line ${gDiff.firstLine}: ${gDiff.category}`;
      }
      verdict = `${uHunks.length === 0 ? 'untagged matches' : 'UNTAGGED DIFFERS'}, ${verdict}`;

      if (AUTOCOMMIT_OFF) {
        const dOff = await run(name, 'directOff');
        const reasonsBefore = new Map(fx.proxy.stats.routedByReason);
        const gOff = await run(name, 'taggedOff');
        for (const [reason, n] of fx.proxy.stats.routedByReason) {
          const d = n - (reasonsBefore.get(reason) ?? 0);
          if (d > 0) offReasons.set(reason, (offReasons.get(reason) ?? 0) + d);
        }
        await checkProxyRun(name, gOff);
        if (gOff.timedOut) timeouts.push({ name, mode: 'taggedOff' });
        timings[name] = { ...timings[name], directOff: dOff.ms, taggedOff: gOff.ms };
        const dOffLines = normalise(dOff.output, ports).split('\n');
        let offDiff = gOff.timedOut ? null : tagDiff(name, dOffLines, normalise(gOff.output, ports).split('\n'));
        let offDeterministic = !dOff.timedOut;
        if (offDeterministic && offDiff !== null) {
          // As for run 3: a second direct AUTOCOMMIT-off run tells a timing-dependent file from a pgsplit difference.
          const d2 = await run(name, 'directOff2');
          timings[name] = { ...timings[name], directOff2: d2.ms };
          if (d2.timedOut || d2.output !== dOff.output) {
            offDeterministic = false;
            const d2Lines = normalise(d2.output, ports).split('\n');
            offNondeterministic.push({ name, excerpt: diffExcerpt(dOffLines, d2Lines, diffHunks(dOffLines, d2Lines), { maxHunks: 2, labels: ['direct off 1', 'direct off 2'] }) });
          }
        }
        if (!offDeterministic) {
          offDiff = null;
          verdict += '; AUTOCOMMIT off: direct runs differ (excluded)';
        } else {
          offCompared.push(name);
          if (gOff.timedOut) verdict += '; AUTOCOMMIT off tagged TIMEOUT';
          else if (offDiff === null) {
            offMatched.push(name);
            verdict += '; AUTOCOMMIT off tagged matches';
          } else {
            offDiffs.push(offDiff);
            verdict += `; AUTOCOMMIT off tagged differs from line ${offDiff.firstLine}: ${offDiff.category}`;
          }
        }
      }
    }
    t.comment(`${name}: ${verdict} (${Object.values(timings[name]).map((ms) => (ms / 1000).toFixed(1)).join('/')} s)`);
  }

  // --- summary ---------------------------------------------------------------------------------------
  const deterministicCount = files.length - nondeterministic.length;
  const byFirstCategory: Record<string, string[]> = {};
  const hunkTotals: Record<string, number> = {};
  const filesByHunkCategory: Record<string, string[]> = {};
  for (const d of taggedDiffs) {
    (byFirstCategory[d.category] ??= []).push(d.name);
    for (const [c, n] of Object.entries(d.hunkCategories)) {
      hunkTotals[c] = (hunkTotals[c] ?? 0) + (n ?? 0);
      (filesByHunkCategory[c] ??= []).push(d.name);
    }
  }
  const offByFirst: Record<string, string[]> = {};
  const offHunkTotals: Record<string, number> = {};
  const offFilesByHunk: Record<string, string[]> = {};
  for (const d of offDiffs) {
    (offByFirst[d.category] ??= []).push(d.name);
    for (const [c, n] of Object.entries(d.hunkCategories)) {
      offHunkTotals[c] = (offHunkTotals[c] ?? 0) + (n ?? 0);
      (offFilesByHunk[c] ??= []).push(d.name);
    }
  }
  // The autocommit tagged run, counted over the same files, for the "as many identical" comparison.
  const taggedMatchedOfOffCompared = offCompared.filter((n) => taggedMatched.includes(n)).length;
  const [version] = await runner.query<{ v: string }>('SELECT version() AS v');
  const psqlVersion = (await runPsqlVersion(psql as string)).trim();
  const totalMs = Date.now() - started;
  const summary = {
    generatedAt: new Date().toISOString(),
    corpus: corpusDir,
    server: version?.v,
    psql: psqlVersion,
    perRunTimeoutMs: FILE_TIMEOUT_MS,
    totalMs,
    templateLoadMs: setupMs,
    timeSpent: { ...overhead, freshDatabaseSteps: runner.phaseMs },
    files: files.length,
    scheduledButAbsent: schedule.absent.length,
    presentButUnscheduled: schedule.unscheduled,
    skipped: only ? schedule.files.filter((f) => !only.includes(f)) : [],
    deterministic: deterministicCount,
    nondeterministic,
    untagged: { compared: deterministicCount, matched: untaggedMatched.length, mismatched: untaggedMismatch },
    tagged: {
      compared: deterministicCount,
      matched: taggedMatched.length,
      matchedFiles: taggedMatched,
      differing: taggedDiffs.length,
      byFirstDifference: Object.fromEntries(Object.entries(byFirstCategory).sort((a, b) => b[1].length - a[1].length)),
      allHunks: Object.fromEntries(Object.entries(hunkTotals).sort((a, b) => b[1] - a[1])),
      filesByHunkCategory,
      files: taggedDiffs,
    },
    autocommitOff: AUTOCOMMIT_OFF
      ? {
        psqlVariables: OFF_VARIABLES,
        compared: offCompared.length,
        matched: offMatched.length,
        autocommitTaggedMatchedOfThese: taggedMatchedOfOffCompared,
        matchedFiles: offMatched,
        differing: offDiffs.length,
        byFirstDifference: Object.fromEntries(Object.entries(offByFirst).sort((a, b) => b[1].length - a[1].length)),
        allHunks: Object.fromEntries(Object.entries(offHunkTotals).sort((a, b) => b[1] - a[1])),
        filesByHunkCategory: offFilesByHunk,
        files: offDiffs,
        nondeterministic: offNondeterministic,
        routedByReason: Object.fromEntries([...offReasons].sort((a, b) => b[1] - a[1])),
      }
      : 'not run (PGSPLIT_REGRESS_AUTOCOMMIT_OFF=0)',
    timeouts,
    liveness,
    expected: { matched: expectedMatched.length, files: expectedMatched },
    clusterStateUndone: residue,
    timings,
    outputs: KEEP ? outDir : 'removed (set PGSPLIT_REGRESS_KEEP=1 to keep every run\'s output)',
  };
  await fsp.mkdir(SUMMARY_DIR, { recursive: true });
  const summaryFile = path.join(SUMMARY_DIR, 'summary.json');
  const partial = path.join(SUMMARY_DIR, `.summary-${process.pid}.json`);
  await fsp.writeFile(partial, JSON.stringify(summary, null, 2) + '\n');
  await fsp.rename(partial, summaryFile);

  const lines = [
    `pg-regress differential: ${files.length} files (${schedule.absent.length} scheduled files are not in this half of the suite; not scheduled, not run: ${schedule.unscheduled.join(', ') || 'none'})`,
    `deterministic: ${deterministicCount}; nondeterministic (excluded): ${nondeterministic.map((n) => n.name).join(', ') || 'none'}`,
    `untagged through pgsplit: ${untaggedMatched.length}/${deterministicCount} identical to direct`,
    `tagged through pgsplit: ${taggedMatched.length}/${deterministicCount} identical to direct; ${taggedDiffs.length} differ, by first difference:`,
    ...Object.entries(summary.tagged.byFirstDifference).map(([c, names]) => `  ${names.length} ${c}: ${names.join(', ')}`),
    '  all differing hunks (category: hunks in files):',
    ...Object.entries(summary.tagged.allHunks).map(([c, n]) => {
      const names = filesByHunkCategory[c] ?? [];
      return `    ${c}: ${n} in ${names.length}${c.startsWith('stale read') ? '' : ` (${names.join(', ')})`}`;
    }),
    ...(AUTOCOMMIT_OFF
      ? [
        `tagged through pgsplit with psql AUTOCOMMIT off (ON_ERROR_ROLLBACK ${ON_ERROR_ROLLBACK}), against direct runs with the same settings: ` +
          `${offMatched.length}/${offCompared.length} identical (autocommit tagged, same files: ${taggedMatchedOfOffCompared}/${offCompared.length}); ` +
          `left out (two direct AUTOCOMMIT-off runs differ): ${offNondeterministic.map((n) => n.name).join(', ') || 'none'}; ${offDiffs.length} differ, by first difference:`,
        ...Object.entries(offByFirst).sort((a, b) => b[1].length - a[1].length).map(([c, names]) => `  ${names.length} ${c}: ${names.join(', ')}`),
        `  routed during those runs, by reason: ${[...offReasons].sort((a, b) => b[1] - a[1]).map(([r, n]) => `${r} ${n}`).join(', ')}`,
        '  all differing hunks (category: hunks in files):',
        ...Object.entries(offHunkTotals).sort((a, b) => b[1] - a[1]).map(([c, n]) => `    ${c}: ${n} in ${(offFilesByHunk[c] ?? []).length} (${(offFilesByHunk[c] ?? []).join(', ')})`),
      ]
      : ['AUTOCOMMIT off variant not run (PGSPLIT_REGRESS_AUTOCOMMIT_OFF=0)']),
    `timeouts: ${timeouts.map((x) => `${x.name} ${x.mode}`).join(', ') || 'none'}`,
    `direct output equal to expected/ (diff -w; PG15 server vs PG16 suite): ${expectedMatched.length}/${files.length}`,
    `cluster-wide state undone after ${residue.length} run(s)${residue.some((r) => r.undone.some((u) => /FAILED|RESIDUE/.test(u))) ? ' (with failures or residue: see summary)' : ''}`,
    `total ${(totalMs / 1000).toFixed(0)} s: template load ${(setupMs / 1000).toFixed(1)} s, psql ${(overhead.psqlMs / 1000).toFixed(0)} s, ` +
      `fresh databases ${(overhead.freshDatabaseMs / 1000).toFixed(0)} s, cluster-state restore ${(overhead.restoreMs / 1000).toFixed(0)} s, ` +
      `pgsplit liveness checks ${(overhead.livenessMs / 1000).toFixed(0)} s`,
    `summary: ${summaryFile}`,
  ];
  t.comment(lines.join('\n'));
  t.equal(untaggedMismatch.length, 0, 'every deterministic file gives identical output untagged through pgsplit');
  for (const d of taggedDiffs.filter((x) => KNOWN_TAGGED_BUGS.has(x.name))) {
    t.ok(false, `${d.name}: tagged equals the direct run (differs from line ${d.firstLine}: ${d.category})`, { todo: KNOWN_TAGGED_BUGS.get(d.name), diff: d.excerpt });
  }
  const unexpected = Object.keys(hunkTotals).filter((c) => !TAGGED_DIFFERENCES_EXPECTED.has(c))
    .filter((c) => (filesByHunkCategory[c] ?? []).some((n) => !KNOWN_TAGGED_BUGS.has(n)));
  t.same(unexpected.map((c) => `${c}: ${(filesByHunkCategory[c] ?? []).filter((n) => !KNOWN_TAGGED_BUGS.has(n)).join(', ')}`), [],
    `tagged through pgsplit, every difference is of an expected kind (${taggedMatched.length}/${deterministicCount} files identical; known bugs: ${[...KNOWN_TAGGED_BUGS.keys()].join(', ')})`);
  if (AUTOCOMMIT_OFF) {
    for (const d of offDiffs.filter((x) => KNOWN_OFF_BUGS.has(x.name))) {
      t.ok(false, `${d.name}: tagged with AUTOCOMMIT off equals the direct run (differs from line ${d.firstLine}: ${d.category})`,
        { todo: KNOWN_OFF_BUGS.get(d.name), diff: d.excerpt });
    }
    const offUnexpected = Object.keys(offHunkTotals).filter((c) => !TAGGED_DIFFERENCES_EXPECTED.has(c))
      .filter((c) => (offFilesByHunk[c] ?? []).some((n) => !KNOWN_OFF_BUGS.has(n)));
    t.same(offUnexpected.map((c) => `${c}: ${(offFilesByHunk[c] ?? []).filter((n) => !KNOWN_OFF_BUGS.has(n)).join(', ')}`), [],
      `tagged with AUTOCOMMIT off, every difference is of an expected kind (${offMatched.length}/${offCompared.length} files identical; known bugs: ${[...KNOWN_OFF_BUGS.keys()].join(', ')})`);
    // Counted over the files without a known bug, so that the bug is asserted once (as todo above).
    const fair = offCompared.filter((n) => !KNOWN_OFF_BUGS.has(n));
    const offFair = offMatched.filter((n) => fair.includes(n)).length;
    const taggedFair = fair.filter((n) => taggedMatched.includes(n)).length;
    t.ok(offFair >= taggedFair,
      `tagged with AUTOCOMMIT off, as many files identical to the direct run as tagged in autocommit (${offFair} >= ${taggedFair} of ${fair.length}, known-bug files left out)`);
  }
  t.equal(fx.proxy.state, 'listening', 'pgsplit is still listening after the whole suite');
  t.equal(timeouts.filter((x) => x.mode === 'untagged' || isTagged(x.mode)).length, 0, 'no run through pgsplit hung');
});

async function runPsqlVersion(psqlPath: string): Promise<string> {
  const { execFile } = await import('node:child_process');
  return new Promise((resolve) => execFile(psqlPath, ['--version'], (err, stdout) => resolve(err ? 'unknown' : stdout)));
}

/**
 * A pgsplit bug the AUTOCOMMIT-off run found (in transactions.sql: `BEGIN TRANSACTION ISOLATION LEVEL
 * SERIALIZABLE` sent inside the transaction psql opened), reduced: in a tagged session's transaction opened
 * with a plain BEGIN, after a read has run on the replica, `SET TRANSACTION ISOLATION LEVEL ...` (or a
 * nested `BEGIN ISOLATION LEVEL ...`) must fail as PostgreSQL fails it (25001 "SET TRANSACTION ISOLATION
 * LEVEL must be called before any query", the transaction aborted, COMMIT answering ROLLBACK). pgsplit
 * instead moves the transaction to the primary, where no query has run yet, so the statement succeeds,
 * the transaction silently becomes REPEATABLE READ / SERIALIZABLE after reading at READ COMMITTED, and the
 * write after it commits where a direct connection commits nothing.
 */


t.test('pgsplit bugs the differential runs found, reduced (tagged plain-BEGIN transactions)', async (t) => {
  const fx = await startProxy(t, { replicas: 1 });
  await fx.cluster.primary.query('CREATE TABLE iso_after_read (a int)');
  await fx.cluster.waitForReplication();
  const run = async (port: number, tagged: boolean, statements: readonly string[]): Promise<string[]> => {
    const c = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', database: 'postgres', options: tagged ? '-c pgsplit.route=replica' : undefined });
    await c.connect();
    const out: string[] = [];
    c.on('notice', (n) => out.push(`notice ${n.code}`));
    for (const q of statements) {
      try {
        const r = await c.query(q);
        out.push(`${q}: ${r.command} ${JSON.stringify(r.rows)}`);
      } catch (e) {
        out.push(`${q}: ERROR ${(e as { code?: string }).code}`);
      }
    }
    await c.end();
    return out;
  };
  const cases: Array<[string, string[]]> = [
    ['SET TRANSACTION', ['BEGIN', 'SELECT count(*) FROM iso_after_read', 'SET TRANSACTION ISOLATION LEVEL REPEATABLE READ',
      'INSERT INTO iso_after_read VALUES (1)', 'COMMIT']],
    ['nested BEGIN', ['BEGIN', 'SELECT count(*) FROM iso_after_read', 'BEGIN ISOLATION LEVEL SERIALIZABLE',
      'INSERT INTO iso_after_read VALUES (2)', 'COMMIT']],
  ];
  for (const [label, statements] of cases) {
    const direct = await run(fx.cluster.primary.port, false, statements);
    const [afterDirect] = await fx.cluster.primary.query<{ n: number }>('SELECT count(*)::int AS n FROM iso_after_read');
    const tagged = await run(fx.port, true, statements);
    const [afterTagged] = await fx.cluster.primary.query<{ n: number }>('SELECT count(*)::int AS n FROM iso_after_read');
    t.match(direct.find((l) => l.startsWith(`${statements[2]}:`)), /ERROR 25001$/, `${label}: a direct connection refuses it with 25001`);
    t.same(tagged, direct, `${label}: tagged through pgsplit, every answer as on a direct connection`);
    t.equal(afterTagged?.n, afterDirect?.n, `${label}: the write after it commits nothing, as on a direct connection`);
    await fx.cluster.primary.query('DELETE FROM iso_after_read');
  }

  const temp = ["SET search_path TO 'pg_temp'", 'BEGIN', "SELECT current_schema() ~ 'pg_temp' AS is_temp", 'COMMIT'];
  const direct = await run(fx.cluster.primary.port, false, temp);
  t.same(direct.find((l) => l.startsWith(`${temp[2]}:`)), `${temp[2]}: SELECT [{"is_temp":true}]`, 'current_schema() creates the temporary schema on a direct connection');
  t.same(await run(fx.port, true, temp), direct, 'current_schema() creating the temporary schema in a tagged transaction: answers as on a direct connection');
});
