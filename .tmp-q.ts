import { classifyQuery } from './src/router/statement-classifier.js';
import { lexSql } from './src/router/sql-lexer.js';
for (const q of process.argv.slice(2)) { console.log(q, JSON.stringify(classifyQuery(q))); }
console.log(lexSql("SELECT E'a'\n'\\' ' ; DELETE FROM t; -- '").statements.map(s=>s.map(t=>t.raw)));
