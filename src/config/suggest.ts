/**
 * "Did you mean" for config keys, enum values and command-line flags: the closest known word to a
 * mistyped one, by edit distance, when it is close enough to be a likely typo.
 */


/** Edit distance, for "did you mean" suggestions in config and command-line errors. */
export function levenshtein(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      cur[j] = Math.min((prev[j] ?? 0) + 1, (cur[j - 1] ?? 0) + 1, (prev[j - 1] ?? 0) + cost);
    }
    prev = cur;
  }
  return prev[b.length] ?? 0;
}

/** The closest candidate to a mistyped word, if any is close enough. */
export function suggest(word: string, candidates: readonly string[]): string | undefined {
  const norm = (s: string) => s.toLowerCase().replace(/[-_\s]/g, '');
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const c of candidates) {
    const w = norm(word);
    const n = norm(c);
    const d = w === n ? 0
      : Math.min(levenshtein(word.toLowerCase(), c.toLowerCase()), w.length >= 3 && n.length >= 3 && (w.startsWith(n) || n.startsWith(w)) ? 1 : Infinity);
    if (d < bestDistance) {
      best = c;
      bestDistance = d;
    }
  }
  return bestDistance <= Math.max(1, Math.floor(word.length / 3)) ? best : undefined;
}
