import { readdirSync, readFileSync } from 'node:fs';
import { classifyQuery } from './src/router/statement-classifier.js';
import { lexSql } from './src/router/sql-lexer.js';
const dir = '/work/shared/corpus/pg-regress/sql';
const texts: string[] = [];
for (const f of readdirSync(dir)) {
  const s = readFileSync(dir + '/' + f, 'latin1').split('\n').filter((l) => !l.startsWith('\\')).join('\n');
  const lx = lexSql(s);
  for (const st of lx.statements) texts.push(s.slice(st[0]!.start, st[st.length - 1]!.end));
}
for (let round = 0; round < 5; round++) {
  let t0 = process.hrtime.bigint();
  for (const q of texts) lexSql(q);
  const lexMs = Number(process.hrtime.bigint() - t0) / 1e6;
  t0 = process.hrtime.bigint();
  for (const q of texts) classifyQuery(q);
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  console.log(texts.length, 'lex', lexMs.toFixed(1), 'ms; classify', ms.toFixed(1), 'ms', Math.round(texts.length / ms * 1000), 'stmt/s');
}
