import { readdirSync, readFileSync } from 'node:fs';
import { classifyQuery } from './src/router/statement-classifier.js';
import { lexSql, type Token } from './src/router/sql-lexer.js';
const G_COMMANDS = new Set(['g', 'gx', 'gset', 'gexec', 'gdesc', 'crosstabview', 'watch']);

/**
 * Turns a psql script into plain SQL: meta-command lines and COPY data blocks are dropped, `\;` becomes
 * `;`, and a `\g`-like command ends the statement in the buffer. Lines inside a multi-line literal or
 * comment are kept as they are (the lexer tells where those are).
 */
function psqlToSql(script: string): string {
  const lines = script.split('\n');
  const out: string[] = [];
  let pending = ''; // text of a literal or comment still open at the end of the previous line
  let copyBlocks = 0; // data blocks that follow the current line
  let i = 0;
  const looksLikeSql = (line: string | undefined): boolean => {
    if (line === undefined) return true;
    const s = line.trim();
    if (s === '' || s.startsWith('--')) return true;
    return /^[A-Za-z_]+\s.*;\s*(--.*)?$/.test(s) || /^[A-Za-z_]+;$/.test(s);
  };
  while (i < lines.length) {
    let line = lines[i]!;
    i++;
    // Skip the data blocks of the COPY ... FROM stdin statements that just ended.
    while (copyBlocks > 0) {
      copyBlocks--;
      if (looksLikeSql(line)) break; // that COPY failed: no data block
      while (line !== '\\.' && i < lines.length) line = lines[i++]!;
      line = i < lines.length ? lines[i++]! : '';
    }
    // Remove meta-commands: a `\` outside literals and comments.
    let cleaned = '';
    let rest = line;
    for (;;) {
      const base = pending + cleaned;
      const lexed = lexSql(base + rest);
      let bs: Token | undefined;
      for (const st of lexed.statements) {
        for (const tok of st) {
          if (tok.start >= base.length && tok.isOperator('\\')) {
            bs = tok;
            break;
          }
        }
        if (bs) break;
      }
      if (!bs) {
        cleaned += rest;
        break;
      }
      const q = bs.start - base.length;
      cleaned += rest.slice(0, q);
      const after = rest.slice(q + 1);
      if (after.startsWith(';')) {
        cleaned += ';';
        rest = after.slice(1);
        continue;
      }
      // A meta-command runs to the end of the line; the g family sends the buffer.
      const cmds = [...after.matchAll(/(?:^|\\)([A-Za-z]+)/g)].map((m) => m[1]!.toLowerCase());
      // \r resets the buffer: end what is there so that it does not run into the next statement.
      if (cmds.some((c) => G_COMMANDS.has(c) || c === 'r' || c === 'reset')) cleaned += ';';
      if (cmds[0] === 'copy' && /\bfrom\s+(stdin|stdout|pstdin)\b/i.test(after)) copyBlocks++;
      break;
    }
    const text = pending + cleaned + '\n';
    const lexed = lexSql(text);
    if (lexed.unterminated) {
      pending = text;
      continue;
    }
    pending = '';
    out.push(text);
    // COPY ... FROM STDIN statements ended on this line are followed by data blocks.
    for (const st of lexed.statements) {
      if (!st[0]?.is('copy')) continue;
      let from = -1;
      for (let k = 0; k < st.length; k++) if (st[k]!.is('from') && (st[k + 1]?.is('stdin') || st[k + 1]?.is('stdout'))) from = k;
      if (from < 0) continue;
      const last = st[st.length - 1]!;
      if (/^\s*;/.test(text.slice(last.end))) copyBlocks++;
    }
  }
  out.push(pending);
  return out.join('');
}


const dir = '/work/shared/corpus/pg-regress/sql';
const reasons = new Map<string, string[]>();
for (const f of readdirSync(dir).sort()) {
  const sql = psqlToSql(readFileSync(dir + '/' + f, 'latin1'));
  for (const st of lexSql(sql).statements) {
    const text = sql.slice(st[0]!.start, st[st.length - 1]!.end);
    const r = classifyQuery(text);
    const first = st[0]!.kind === 'keyword_or_ident' ? st[0]!.text : st[0]!.raw;
    const key = first + ' -> ' + r.reason;
    const l = reasons.get(key) ?? [];
    l.push(f + ': ' + text.replace(/\s+/g, ' ').slice(0, 160));
    reasons.set(key, l);
  }
}
const want = process.argv[2];
for (const [k, v] of [...reasons.entries()].sort((a, b) => b[1].length - a[1].length)) {
  if (want ? k.includes(want) : true) {
    console.log(v.length, k);
    if (want) for (const x of v.slice(0, Number(process.argv[3] ?? 10))) console.log('    ', x);
  }
}
