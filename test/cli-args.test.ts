import t from 'tap';
import { parse } from 'yaml';
import { HELP_TEXT, parseCliArgs, type CliCommand } from '../src/config/cli-args.js';
import { DEFAULT_CONFIG } from '../src/config/config.js';
import { resolveConfig } from '../src/config/load-config.js';

function errorOf(argv: string[]): string {
  try {
    parseCliArgs(argv);
  } catch (err) {
    if (err instanceof Error) return err.message;
    throw err;
  }
  throw new Error(`expected parseCliArgs(${JSON.stringify(argv)}) to throw`);
}

const P = 'postgres://app:pw@localhost:5432/app';
const R1 = 'postgres://app:pw@localhost:5433/app';
const R2 = 'postgres://app:pw@localhost:5434/app';

t.test('run: no arguments', async (t) => {
  t.strictSame(parseCliArgs([]), { command: 'run', overrides: {} });
  t.strictSame(parseCliArgs(['run']), { command: 'run', overrides: {} });
});

t.test('run: every flag, space and = forms', async (t) => {
  const expected: CliCommand = {
    command: 'run',
    configFile: '/etc/pgsplit.yaml',
    overrides: {
      listen: '127.0.0.1:7432',
      primary: P,
      replicas: [R1, R2],
      metricsListen: '127.0.0.1:9187',
      logLevel: 'debug',
      applicationNames: ['report*', 'metabase'],
    },
  };
  t.strictSame(parseCliArgs([
    '--config', '/etc/pgsplit.yaml', '--listen', '127.0.0.1:7432', '--primary', P,
    '--replica', R1, '--replica', R2, '--metrics-listen', '127.0.0.1:9187', '--log-level', 'debug',
    '--tag-application-name', 'report*', '--tag-application-name', 'metabase',
  ]), expected);
  t.strictSame(parseCliArgs([
    'run', '--config=/etc/pgsplit.yaml', '--listen=127.0.0.1:7432', `--primary=${P}`,
    `--replica=${R1}`, `--replica=${R2}`, '--metrics-listen=127.0.0.1:9187', '--log-level=debug',
    '--tag-application-name=report*', '--tag-application-name', 'metabase',
  ]), expected);
  // a value containing '=' keeps everything after the first '='
  t.strictSame(parseCliArgs(['--tag-application-name=a=b']), { command: 'run', overrides: { applicationNames: ['a=b'] } });
  t.strictSame(parseCliArgs(['--primary', P]), { command: 'run', overrides: { primary: P } });
});

t.test('help and version', async (t) => {
  for (const argv of [['-h'], ['--help'], ['help'], ['demo', '--help'], ['--primary', P, '-h'], ['explain', '--json', '--help'], ['--bogus', '--help']]) {
    t.strictSame(parseCliArgs(argv), { command: 'help' }, argv.join(' '));
  }
  for (const argv of [['-V'], ['--version'], ['version'], ['run', '-V']]) {
    t.strictSame(parseCliArgs(argv), { command: 'version' }, argv.join(' '));
  }
  // after --, -h is SQL text, not a flag
  t.strictSame(parseCliArgs(['explain', '--', '-h']), { command: 'explain', json: false, sql: '-h' });
});

t.test('demo', async (t) => {
  t.strictSame(parseCliArgs(['demo']), { command: 'demo', replicas: 2 });
  t.strictSame(parseCliArgs(['demo', '--duration', '30', '--replicas', '3', '--listen', '127.0.0.1:7000']),
    { command: 'demo', duration: 30, replicas: 3, listen: '127.0.0.1:7000' });
  t.strictSame(parseCliArgs(['demo', '--duration=0.5', '--replicas=0', '--listen=[::1]:0']),
    { command: 'demo', duration: 0.5, replicas: 0, listen: '[::1]:0' });
  t.match(errorOf(['demo', '--duration', 'soon']), /--duration "soon" is not a number of seconds; write e\.g\. --duration 30; run pgsplit --help/);
  t.match(errorOf(['demo', '--duration', '0']), /--duration "0" is not a number of seconds/);
  t.match(errorOf(['demo', '--replicas', '99']), /--replicas "99" is not a replica count; write a whole number from 0 to 16/);
  t.match(errorOf(['demo', '--replicas', '1.5']), /is not a replica count/);
  t.match(errorOf(['demo', '--listen', 'localhost']), /--listen "localhost" is not HOST:PORT; write e\.g\. --listen 127\.0\.0\.1:6432/);
  t.match(errorOf(['demo', '--listen', 'h:99999']), /is not HOST:PORT/);
  t.match(errorOf(['demo', '--primary', P]), /^unknown flag --primary for pgsplit demo; run pgsplit --help$/);
  t.match(errorOf(['demo', 'extra']), /unexpected argument "extra"; usage: pgsplit demo .*; run pgsplit --help/);
  t.match(errorOf(['demo', '--duration']), /--duration needs a value: --duration SECONDS; run pgsplit --help/);
});

t.test('check-config', async (t) => {
  t.strictSame(parseCliArgs(['check-config', 'pgsplit.yaml']), { command: 'check-config', configFile: 'pgsplit.yaml' });
  t.strictSame(parseCliArgs(['check-config', '--config', 'a.yaml']), { command: 'check-config', configFile: 'a.yaml' });
  t.strictSame(parseCliArgs(['check-config', '--config=a.yaml']), { command: 'check-config', configFile: 'a.yaml' });
  t.match(errorOf(['check-config']), /check-config needs a file: pgsplit check-config FILE; run pgsplit --help/);
  t.match(errorOf(['check-config', 'a.yaml', 'b.yaml']), /unexpected argument "b\.yaml"; check-config takes one file/);
  t.match(errorOf(['check-config', '--json', 'a.yaml']), /unknown flag --json for pgsplit check-config; run pgsplit --help/);
});

t.test('explain', async (t) => {
  t.strictSame(parseCliArgs(['explain', 'SELECT 1']), { command: 'explain', json: false, sql: 'SELECT 1' });
  t.strictSame(parseCliArgs(['explain', '--json', 'SELECT * FROM t']), { command: 'explain', json: true, sql: 'SELECT * FROM t' });
  t.strictSame(parseCliArgs(['explain', 'SELECT 1', '--json']), { command: 'explain', json: true, sql: 'SELECT 1' });
  t.strictSame(parseCliArgs(['explain', 'SELECT', '*', 'FROM', 't']), { command: 'explain', json: false, sql: 'SELECT * FROM t' });
  t.strictSame(parseCliArgs(['explain', '--json', '--', '--json is text here']), { command: 'explain', json: true, sql: '--json is text here' });
  t.strictSame(parseCliArgs(['explain', '-- comment\nSELECT 1']), { command: 'explain', json: false, sql: '-- comment\nSELECT 1' });
  t.strictSame(parseCliArgs(['explain', "/* pgsplit:route=replica */ SELECT '--x'"]), { command: 'explain', json: false, sql: "/* pgsplit:route=replica */ SELECT '--x'" });
  t.match(errorOf(['explain']), /explain needs a SQL statement: pgsplit explain \[--json\] 'SELECT 1'.*; run pgsplit --help/);
  t.match(errorOf(['explain', '--json', '  ']), /explain needs a SQL statement/);
  t.match(errorOf(['explain', '--json=yes', 'SELECT 1']), /--json takes no value; write just --json; run pgsplit --help/);
  t.match(errorOf(['explain', '--jsno', 'SELECT 1']), /unknown flag --jsno for pgsplit explain \(did you mean --json\?\); run pgsplit --help/);
  // --file and --config
  t.strictSame(parseCliArgs(['explain', '--file', 'w.sql']), { command: 'explain', json: false, file: 'w.sql' });
  t.strictSame(parseCliArgs(['explain', '--json', '--file=w.sql', '--config', 'p.yaml']), { command: 'explain', json: true, file: 'w.sql', configFile: 'p.yaml' });
  t.strictSame(parseCliArgs(['explain', '--config', 'p.yaml', 'SELECT f(1)']), { command: 'explain', json: false, sql: 'SELECT f(1)', configFile: 'p.yaml' });
  t.match(errorOf(['explain', '--file', 'w.sql', 'SELECT 1']), /explain takes SQL or --file, not both: drop "SELECT 1" or --file "w.sql"; run pgsplit --help/);
  t.match(errorOf(['explain', '--file']), /--file needs a value: --file FILE; run pgsplit --help/);
  t.match(errorOf(['explain', '--config', 'a.yaml']), /explain needs a SQL statement: .*or a file: pgsplit explain --file FILE\.sql/);
  t.match(errorOf(['explain', '--file', 'a.sql', '--file', 'b.sql']), /--file is given more than once; give it once/);
  t.match(errorOf(['explain', '--fiel', 'a.sql']), /unknown flag --fiel for pgsplit explain \(did you mean --file\?\)/);
});

t.test('bad run arguments', async (t) => {
  t.equal(errorOf(['--bogus']), 'unknown flag --bogus; run pgsplit --help');
  t.equal(errorOf(['--replca', R1]), 'unknown flag --replca (did you mean --replica?); run pgsplit --help');
  t.equal(errorOf(['run', '--primary=x', '--duration', '3']), 'unknown flag --duration; run pgsplit --help');
  t.equal(errorOf(['-c', 'x']), 'unknown flag -c; run pgsplit --help');
  t.match(errorOf(['--primary']), /^--primary needs a value: --primary URL; run pgsplit --help$/);
  t.match(errorOf(['--primary', '--replica', R1]), /^--primary needs a value: --primary URL/);
  t.match(errorOf(['--primary=']), /--primary needs a non-empty value/);
  t.match(errorOf(['--primary', P, '--primary', R1]), /--primary is given more than once \(use --replica URL for each replica\); give it once; run pgsplit --help/);
  t.match(errorOf(['--config', 'a', '--config', 'b']), /--config is given more than once; give it once/);
  t.match(errorOf(['--primary', P, 'stray']), /unexpected argument "stray"; usage: pgsplit \[run\]/);
  t.match(errorOf(['serve']), /unknown command "serve"; commands are run, demo, check-config, explain, help, version; run pgsplit --help/);
  t.match(errorOf(['demos']), /unknown command "demos" \(did you mean demo\?\)/);
  t.match(errorOf(['check']), /unknown command "check"/);
});

t.test('passwords in arguments do not appear in errors', async (t) => {
  const secret = 'Sup3rSecretPw';
  for (const argv of [
    [`postgres://app:${secret}@h/app`],
    ['--primary', P, `postgres://app:${secret}@h/app`],
    ['demo', '--listen', `postgres://app:${secret}@h:5432`],
    ['demo', `--primary=postgres://app:${secret}@h/app`],
    ['check-config', 'a.yaml', `app:${secret}@h`],
    [`app:${secret}@h`],
  ]) {
    const msg = errorOf(argv);
    t.notMatch(msg, secret, msg);
    t.match(msg, 'run pgsplit --help');
  }
});

t.test('HELP_TEXT', async (t) => {
  for (const needle of [
    'pgsplit demo', 'pgsplit check-config FILE', 'pgsplit explain [--json]', '--help', '--version',
    '--file FILE', 'writing_functions:', 'read_only_functions:', 'unknown_functions:', 'pgsplit explain --json --config',
    '--config FILE', '--listen HOST:PORT', '--primary URL', '--replica URL', '--metrics-listen HOST:PORT',
    '--log-level LEVEL', '--tag-application-name PATTERN', '--duration SECONDS', '--replicas N', '--json',
    "SET pgsplit.route = 'replica'", "PGOPTIONS='-c pgsplit.route=replica'", '/* pgsplit:route=replica */',
    'application_name', 'development mode', 'loopback',
    'listen:', 'primary:', 'replicas:', 'users:', 'auth:', 'method:', 'routing:', 'application_names:', 'default:',
    'limits:', 'max_message_size:', 'max_client_connections:', 'startup_timeout:', 'connect_timeout:', 'metrics:', 'log:', 'level:',
  ]) {
    t.ok(HELP_TEXT.includes(needle), `help mentions ${needle}`);
  }
  t.notMatch(HELP_TEXT, /\t/);
  for (const line of HELP_TEXT.split('\n')) t.ok(line.length <= 110, `line not too long: ${line}`);
});

t.test('the example config file in HELP_TEXT is valid', async (t) => {
  const lines = HELP_TEXT.split('\n');
  const start = lines.findIndex((l) => l.startsWith('CONFIG FILE'));
  t.ok(start > 0);
  const body: string[] = [];
  for (const line of lines.slice(start + 1)) {
    if (line.trim() === '') break;
    body.push(line.slice(2));
  }
  const raw = parse(body.join('\n')) as unknown;
  const cfg = resolveConfig(raw);
  t.equal(cfg.primary.host, 'db-primary');
  t.equal(cfg.replicas.length, 2);
  t.equal(cfg.replicas[1]?.name, 'replica-east');
  t.equal(cfg.replicas[1]?.weight, 2);
  t.equal(cfg.users.length, 3);
  t.equal(cfg.users[2]?.serverUser, 'app', 'a user mapped to another server role');
  t.strictSame(cfg.databases, { app: 'app_production' });
  t.equal(cfg.monitor.user, 'pgsplit_monitor');
  t.strictSame(cfg.admin.users, ['ops']);
  t.strictSame(cfg.routing.applicationNames, ['reporting-*', 'metabase']);
  t.strictSame(cfg.routing.writingFunctions, ['audit_touch']);
  t.strictSame(cfg.routing.readOnlyFunctions, ['report_totals', 'reporting.monthly']);
  t.equal(cfg.routing.unknownFunctions, 'primary');
  t.equal(cfg.limits.maxMessageSize, 64 * 1024 * 1024);
  t.strictSame(cfg.metrics.listen, { host: '127.0.0.1', port: 9187 });
  // The pool: block is commented out (its values are the defaults); uncommented, it is valid and shows them.
  const from = body.findIndex((l) => l.startsWith('# pool:'));
  const to = body.findIndex((l, i) => i > from && !l.startsWith('#   '));
  const pool = body.slice(from, to);
  t.equal(pool.length, 8, 'the pool block and its seven keys');
  const poolCfg = resolveConfig({ primary: 'postgres://u@h/db', ...(parse(pool.map((l) => l.slice(2)).join('\n')) as Record<string, unknown>) });
  t.strictSame(poolCfg.pool, DEFAULT_CONFIG.pool, 'the pool block in the help shows the defaults');
});

t.test('flags parsed here feed loadConfig', async (t) => {
  const cmd = parseCliArgs(['--primary', P, '--replica', R1, '--tag-application-name', 'report*', '--log-level', 'warn']);
  if (cmd.command !== 'run') throw new Error('expected run');
  const cfg = resolveConfig({}, cmd.overrides);
  t.equal(cfg.primary.port, 5432);
  t.equal(cfg.replicas[0]?.port, 5433);
  t.strictSame(cfg.routing.applicationNames, ['report*']);
  t.equal(cfg.log.level, 'warn');
});
