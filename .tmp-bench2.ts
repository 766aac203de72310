import { readdirSync, readFileSync } from 'node:fs';
import { lexSql } from './src/router/sql-lexer.js';
const dir = '/work/shared/corpus/pg-regress/sql';
const texts: string[] = [];
for (const f of readdirSync(dir)) {
  const s = readFileSync(dir + '/' + f, 'latin1').split('\n').filter((l) => !l.startsWith('\\')).join('\n');
  const lx = lexSql(s);
  for (const st of lx.statements) texts.push(s.slice(st[0]!.start, st[st.length - 1]!.end));
}
let bytes = 0; for (const q of texts) bytes += q.length;
let toks = 0; for (const q of texts) for (const s of lexSql(q).statements) toks += s.length;
console.log('bytes', bytes, 'tokens', toks);
for (let round = 0; round < 30; round++) {
  const t0 = process.hrtime.bigint();
  for (const q of texts) lexSql(q);
  const lexMs = Number(process.hrtime.bigint() - t0) / 1e6;
  if (round % 5 === 4) console.log('lex', lexMs.toFixed(1), 'ms', (bytes / lexMs / 1000).toFixed(1), 'MB/s', (lexMs * 1e6 / toks).toFixed(0), 'ns/token');
}
