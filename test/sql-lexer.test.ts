import t from 'tap';
import { lexSql, type Token, type TokenKind } from '../src/router/sql-lexer.js';

type Tok = [TokenKind, string];
const simple = (tok: Token): Tok => [tok.kind, tok.text];
/** Tokens of every statement as [kind, text]. */
const lex = (sql: string, scs = true): Tok[][] =>
  lexSql(sql, { standardConformingStrings: scs }).statements.map((s) => s.map(simple));
/** Tokens of a single-statement input. */
const one = (sql: string): Tok[] => {
  const r = lex(sql);
  if (r.length !== 1) throw new Error(`expected one statement in ${JSON.stringify(sql)}, got ${r.length}`);
  return r[0]!;
};

t.test('identifiers and keywords', async (t) => {
  t.same(one('SeLeCt a, B_2, c$d FROM "T"'), [
    ['keyword_or_ident', 'select'],
    ['keyword_or_ident', 'a'],
    ['punct', ','],
    ['keyword_or_ident', 'b_2'],
    ['punct', ','],
    ['keyword_or_ident', 'c$d'],
    ['keyword_or_ident', 'from'],
    ['quoted_ident', 'T'],
  ]);
  // Only ASCII letters are lowercased, as the server does in UTF8.
  t.same(one('SELECT CAFÉ, café, _x'), [
    ['keyword_or_ident', 'select'],
    ['keyword_or_ident', 'cafÉ'],
    ['punct', ','],
    ['keyword_or_ident', 'café'],
    ['punct', ','],
    ['keyword_or_ident', '_x'],
  ]);
  const tok = lexSql('SELECT').statements[0]![0]!;
  t.equal(tok.is('select'), true);
  t.equal(tok.is('selec'), false);
  t.equal(tok.is('from'), false);
  t.equal(tok.raw, 'SELECT');
  t.same(tok.toJSON(), { kind: 'keyword_or_ident', text: 'select', start: 0, end: 6, depth: 0 });
  // a quoted identifier is never a keyword
  const q = lexSql('"select"').statements[0]![0]!;
  t.equal(q.is('select'), false);
  t.equal(q.text, 'select');
});

t.test('quoted identifiers', async (t) => {
  const cases: [string, Tok[]][] = [
    ['"a""b"', [['quoted_ident', 'a"b']]],
    ['"Foo Bar"', [['quoted_ident', 'Foo Bar']]],
    ['"a;b"', [['quoted_ident', 'a;b']]],
    ['"--x"', [['quoted_ident', '--x']]],
    ['U&"d\\0061t\\+000061"', [['quoted_ident', 'data']]],
    ['u&"\\006Eextval"', [['quoted_ident', 'nextval']]],
    [
      'U&"d!0061t" UESCAPE \'!\'',
      [
        ['quoted_ident', 'dat'],
        ['keyword_or_ident', 'uescape'],
        ['string', '!'],
      ],
    ],
  ];
  for (const [sql, want] of cases) t.same(one(sql), want, sql);
  const r = lexSql('SELECT "abc');
  t.equal(r.unterminated, true);
  t.same(r.statements[0]!.map(simple), [
    ['keyword_or_ident', 'select'],
    ['quoted_ident', 'abc'],
  ]);
});

t.test('string literals', async (t) => {
  const cases: [string, Tok[]][] = [
    ["'it''s'", [['string', "it's"]]],
    ["'a;b'", [['string', 'a;b']]],
    ["'FOR UPDATE'", [['string', 'FOR UPDATE']]],
    ["''", [['string', '']]],
    // standard_conforming_strings=on: backslash is ordinary
    ["'a\\'", [['string', 'a\\']]],
    // E'' strings and their escapes
    ["E'\\''", [['string', "'"]]],
    ["e'a\\\\'", [['string', 'a\\']]],
    ["E'\\n\\t\\x41\\101\\u0042\\U00000043\\q'", [['string', '\n\tAABCq']]],
    ["E'it''s'", [['string', "it's"]]],
    ["B'0101'", [['string', '0101']]],
    ["x'1F'", [['string', '1F']]],
    ["N'abc'", [['string', 'abc']]],
    ["U&'d\\0061t\\+000061'", [['string', 'data']]],
    ["U&'a''b'", [['string', "a'b"]]],
    // a prefix letter only counts directly before the quote
    [
      "ex'a'",
      [
        ['keyword_or_ident', 'ex'],
        ['string', 'a'],
      ],
    ],
    [
      "E 'a'",
      [
        ['keyword_or_ident', 'e'],
        ['string', 'a'],
      ],
    ],
    [
      "u &'a'",
      [
        ['keyword_or_ident', 'u'],
        ['operator', '&'],
        ['string', 'a'],
      ],
    ],
  ];
  for (const [sql, want] of cases) t.same(one(sql), want, sql);
  const s = lexSql("SELECT E'x'").statements[0]![1]!;
  t.equal(s.style, 'escape');
  t.equal(lexSql("SELECT 'x'").statements[0]![1]!.style, 'standard');
  t.equal(lexSql('SELECT $$x$$').statements[0]![1]!.style, 'dollar');
});

t.test('string continuation across newlines', async (t) => {
  t.same(one("'a'\n'b'"), [['string', 'ab']], 'newline joins segments');
  t.same(one("'a' -- note, it's fine\n  'b'"), [['string', 'ab']], 'a -- comment may sit in between');
  t.same(
    one("'a' 'b'"),
    [
      ['string', 'a'],
      ['string', 'b'],
    ],
    'without a newline they are two literals',
  );
  t.same(
    one("'a' /* c */\n'b'"),
    [
      ['string', 'a'],
      ['string', 'b'],
    ],
    'a block comment stops the continuation',
  );
  t.same(one("E'a'\n'\\''"), [['string', "a'"]], 'an E string continues in escape mode');
  // The dangerous case: read as a plain string, the second segment would end early and hide the DELETE.
  const r = lex("SELECT E'a'\n'\\' ' ; DELETE FROM t; -- '");
  t.equal(r.length, 2);
  t.same(r[1], [
    ['keyword_or_ident', 'delete'],
    ['keyword_or_ident', 'from'],
    ['keyword_or_ident', 't'],
  ]);
});

t.test('standard_conforming_strings', async (t) => {
  const sql = "SELECT 'a\\'; DELETE FROM t; --'";
  t.equal(lex(sql, true).length, 2, "on: 'a\\' is a whole string and DELETE is a statement");
  const off = lex(sql, false);
  t.equal(off.length, 1, 'off: the backslash escapes the quote');
  t.same(off[0]![1], ['string', "a'; DELETE FROM t; --"]);
  t.equal(lexSql("SELECT N'a\\'b'", { standardConformingStrings: false }).statements[0]![1]!.text, "a'b");
});

t.test('dollar quoting and parameters', async (t) => {
  const cases: [string, Tok[]][] = [
    ['$$;INSERT$$', [['string', ';INSERT']]],
    ['$tag$ $$ ; $tag$', [['string', ' $$ ; ']]],
    ['$a$x$b$y$b$z$a$', [['string', 'x$b$y$b$z']]],
    ['$_$x$_$', [['string', 'x']]],
    ['$Tag$ $tag$ $Tag$', [['string', ' $tag$ ']]],
    ['$1', [['param', '$1']]],
    [
      '$12, $3',
      [
        ['param', '$12'],
        ['punct', ','],
        ['param', '$3'],
      ],
    ],
    ['a$$b', [['keyword_or_ident', 'a$$b']]],
    [
      '1$$x$$',
      [
        ['number', '1'],
        ['string', 'x'],
      ],
    ],
  ];
  for (const [sql, want] of cases) t.same(one(sql), want, sql);
  // `$1$` is a parameter followed by a `$`, not a tag (tags cannot start with a digit)
  t.same(one('$1$'), [
    ['param', '$1'],
    ['operator', '$'],
  ]);
  const r = lexSql('SELECT $$abc');
  t.equal(r.unterminated, true);
  t.same(r.statements[0]![1]!.text, 'abc');
  t.equal(lex('SELECT $$;$$; SELECT 2').length, 2);
});

t.test('numbers', async (t) => {
  const nums = ['1', '42', '1.5', '.5', '1.', '1e10', '1E+10', '1.5e-3', '0x1F', '0o17', '0b101', '1_000_000'];
  for (const n of nums) t.same(one(n), [['number', n]], n);
  t.same(one('1..2'), [
    ['number', '1'],
    ['punct', '..'],
    ['number', '2'],
  ]);
  t.same(one('a.b'), [
    ['keyword_or_ident', 'a'],
    ['punct', '.'],
    ['keyword_or_ident', 'b'],
  ]);
  t.same(one('1e'), [
    ['number', '1'],
    ['keyword_or_ident', 'e'],
  ]);
});

t.test('operators and punctuation', async (t) => {
  const ops = (sql: string) => one(sql).map(([k, x]) => `${k === 'operator' ? 'op' : k === 'punct' ? 'p' : k[0]}:${x}`);
  t.same(ops('a<>b'), ['k:a', 'op:<>', 'k:b']);
  t.same(ops('a>=b'), ['k:a', 'op:>=', 'k:b']);
  t.same(ops('a=-1'), ['k:a', 'op:=', 'op:-', 'n:1'], 'no trailing minus on =-');
  t.same(ops('a @- b'), ['k:a', 'op:@-', 'k:b'], '@ allows a trailing minus');
  t.same(ops('a !=- b'), ['k:a', 'op:!=-', 'k:b']);
  t.same(ops('a*-+b'), ['k:a', 'op:*', 'op:-', 'op:+', 'k:b'], 'trailing + and - are split off one by one');
  t.same(ops('1 +-- c\n2'), ['n:1', 'op:+', 'n:2'], 'an operator stops at --');
  t.same(ops('2*/*c*/3'), ['n:2', 'op:*', 'n:3'], 'an operator stops at /*');
  t.same(ops('x::int'), ['k:x', 'p:::', 'k:int']);
  t.same(ops('f(a := 1, b => 2)'), ['k:f', 'p:(', 'k:a', 'op::=', 'n:1', 'p:,', 'k:b', 'op:=>', 'n:2', 'p:)']);
  t.same(ops('a[1:2]'), ['k:a', 'p:[', 'n:1', 'p::', 'n:2', 'p:]']);
  t.same(ops(':var'), ['p::', 'k:var']);
  t.same(ops('\\gset'), ['op:\\', 'k:gset'], 'an unknown character is a one-character token');
  const tok = lexSql('a <> b').statements[0]![1]!;
  t.equal(tok.isOperator('<>'), true);
  t.equal(tok.isOperator('<'), false);
  t.equal(tok.isPunct('<>'), false);
});

t.test('the server rule for trailing + and -', async (t) => {
  const texts = (sql: string) => one(sql).map((x) => x[1]);
  t.same(texts('a*-b'), ['a', '*', '-', 'b']);
  t.same(texts('a<-b'), ['a', '<', '-', 'b']);
  t.same(texts('a ~- b'), ['a', '~-', 'b']);
  t.same(texts('a +- b'), ['a', '+', '-', 'b']);
  t.same(texts('a ?-| b'), ['a', '?-|', 'b']);
});

t.test('comments', async (t) => {
  const r = lexSql('/* lead */ SELECT 1 -- FOR UPDATE; DELETE\n, /* a /* nested */ still */ 2 -- tail');
  t.same(r.statements.map((s) => s.map(simple)), [
    [
      ['keyword_or_ident', 'select'],
      ['number', '1'],
      ['punct', ','],
      ['number', '2'],
    ],
  ]);
  t.equal(r.comments.length, 4);
  t.match(r.comments[0], { kind: 'block', start: 0, end: 10, text: '/* lead */', body: ' lead ', terminated: true });
  t.match(r.comments[1], { kind: 'line', body: ' FOR UPDATE; DELETE', terminated: true });
  t.match(r.comments[2], { kind: 'block', body: ' a /* nested */ still ' });
  t.match(r.comments[3], { kind: 'line', body: ' tail' });
  t.same(lex('SELECT /* /* */ FOR UPDATE */ 1').map((s) => s.map((x) => x[1])), [['select', '1']]);
  t.equal(lexSql('SELECT 1 -- no newline at end').unterminated, false);
  const u = lexSql('SELECT 1 /* open /* nested */');
  t.equal(u.unterminated, true);
  t.match(u.comments[0], { kind: 'block', terminated: false });
  // `--` inside a string or a quoted identifier is not a comment
  t.same(one("'--' \"/*\""), [
    ['string', '--'],
    ['quoted_ident', '/*'],
  ]);
  // A comment ends at \r too
  t.same(lex('SELECT 1 --x\r, 2')[0]!.length, 4);
});

t.test('statement splitting', async (t) => {
  t.same(lex('SELECT 1; SELECT 2;;').map((s) => s.map((x) => x[1])), [
    ['select', '1'],
    ['select', '2'],
  ]);
  t.same(lex(';;'), []);
  t.same(lex(''), []);
  t.same(lex('  -- only a comment\n/* and this */ '), []);
  t.same(lex("SELECT 'a;b'; SELECT \"c;d\"; SELECT $$e;f$$; SELECT 1 -- ;\n").length, 4);
  // A `;` inside parentheses does not split, and stays as a token
  const p = lexSql('SELECT (1; 2)');
  t.equal(p.statements.length, 1);
  t.match(p.statements[0]!.map((x) => x.toJSON()), [{ text: 'select' }, { text: '(' }, { text: '1' }, { text: ';', depth: 1 }, { text: '2' }, { text: ')' }]);
  // A stray `)` does not make the depth negative
  t.equal(lex('SELECT 1); SELECT 2').length, 2);
  // CREATE RULE ... DO ALSO ( a; b ) is one statement
  t.equal(lex('CREATE RULE r AS ON INSERT TO t DO ALSO (INSERT INTO u VALUES (1); DELETE FROM v); SELECT 1').length, 2);
});

t.test('BEGIN ATOMIC bodies', async (t) => {
  const sql = `CREATE FUNCTION f(a int) RETURNS int LANGUAGE sql
BEGIN ATOMIC
  SELECT 1;
  SELECT CASE WHEN a > 0 THEN 1 ELSE 2 END;
END;
SELECT 2; END`;
  const r = lex(sql);
  t.equal(r.length, 3);
  t.equal(r[0]![0]![1], 'create');
  t.same(r[1], [
    ['keyword_or_ident', 'select'],
    ['number', '2'],
  ]);
  t.same(r[2], [['keyword_or_ident', 'end']]);
  const proc = lex('CREATE OR REPLACE PROCEDURE p() BEGIN ATOMIC INSERT INTO t VALUES (1); INSERT INTO t VALUES (2); END; COMMIT');
  t.equal(proc.length, 2);
  // Outside CREATE FUNCTION/PROCEDURE, begin and end do not matter
  t.equal(lex('BEGIN; SELECT 1; END; SELECT begin, atomic FROM t; SELECT 2').length, 5);
  t.equal(lex('SELECT CASE WHEN true THEN 1 END; SELECT 2').length, 2);
});

t.test('offsets and depth', async (t) => {
  const sql = 'SELECT f(a, (b)) FROM t; SELECT 2';
  const r = lexSql(sql);
  const toks = r.statements[0]!;
  for (const tok of toks) t.equal(sql.slice(tok.start, tok.end), tok.raw);
  t.same(
    toks.map((x) => [x.raw, x.depth]),
    [
      ['SELECT', 0],
      ['f', 0],
      ['(', 0],
      ['a', 1],
      [',', 1],
      ['(', 1],
      ['b', 2],
      [')', 1],
      [')', 0],
      ['FROM', 0],
      ['t', 0],
    ],
  );
  const second = r.statements[1]!;
  t.equal(second[0]!.start, sql.indexOf('SELECT 2'));
  t.equal(second[1]!.end, sql.length);
});

t.test('unterminated input', async (t) => {
  for (const sql of ["SELECT 'abc", "SELECT E'abc\\'", 'SELECT "abc', 'SELECT $$abc', 'SELECT $x$abc$$', 'SELECT 1 /* x', "SELECT B'01", "SELECT U&'x"]) {
    const r = lexSql(sql);
    t.equal(r.unterminated, true, sql);
    t.ok(r.statements.length >= 1, sql);
  }
  for (const sql of ["SELECT 'abc'", 'SELECT 1 -- x', "SELECT E'\\\\'", 'SELECT $x$ $$ $x$']) t.equal(lexSql(sql).unterminated, false, sql);
});

t.test('never throws on odd input', async (t) => {
  const odd = ['\\', '$', '$$', "'", '"', "E'\\", 'U&', 'U&"', "U&'", '/*', '--', '*/', '0x', '1e+', '.', '..', ':', '::', '(((', ')))', '\u0000', '\uD800', 'é', '$a', '$a$'];
  for (const s of odd) {
    t.doesNotThrow(() => {
      const r = lexSql(s);
      for (const st of r.statements) for (const tok of st) void tok.text;
    }, JSON.stringify(s));
  }
  // random strings from an alphabet of special characters
  const alphabet = ['$', "'", '"', '\\', '-', '/', '*', ';', '(', ')', 'E', 'U', '&', 'a', '1', ' ', '\n', '.', ':'];
  let seed = 12345;
  const rnd = () => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed;
  };
  for (let i = 0; i < 2000; i++) {
    let s = '';
    const len = rnd() % 30;
    for (let j = 0; j < len; j++) s += alphabet[rnd() % alphabet.length];
    const r = lexSql(s);
    for (const st of r.statements) {
      for (const tok of st) {
        void tok.text;
        if (tok.start < 0 || tok.end > s.length || tok.end <= tok.start) t.fail(`bad offsets in ${JSON.stringify(s)}`);
      }
    }
  }
});
