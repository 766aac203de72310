/**
 * The YAML config file: reading and parsing it (messages that never quote the file, which may hold
 * passwords) and substituting ${ENV_VAR} references in its string values.
 */
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { ConfigError } from '../errors.js';
import { child, isMap, type Raw } from './config-context.js';

const ENV_RE = /\$(\$)?\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;

/** Replace ${NAME} (or ${NAME:-default}) in every string value; $${NAME} stays as the literal ${NAME}. */
export function substituteEnv(v: unknown, path: string, env: NodeJS.ProcessEnv): unknown {
  if (typeof v === 'string') {
    return v.replace(ENV_RE, (whole: string, escaped: string | undefined, name: string, dflt: string | undefined) => {
      if (escaped !== undefined) return whole.slice(1);
      const value = env[name];
      if (value !== undefined && value !== '') return value;
      if (dflt !== undefined) return dflt;
      if (value !== undefined) return value;
      throw new ConfigError(path === '' ? '(file)' : path, `uses the environment variable ${name}, which is not set; export ${name}=... before starting pgsplit, write \${${name}:-DEFAULT}, or write the value itself`);
    });
  }
  if (Array.isArray(v)) return v.map((item: unknown, i) => substituteEnv(item, `${path}[${i}]`, env));
  if (isMap(v)) {
    const out: Raw = {};
    for (const [k, item] of Object.entries(v)) out[k] = substituteEnv(item, child(path, k), env);
    return out;
  }
  return v;
}

/**
 * Read and parse a YAML config file, substituting ${ENV_VAR} references in string values.
 * Returns the raw (snake_case) object for resolveConfig().
 */
export function readConfigFile(file: string, env: NodeJS.ProcessEnv = process.env): unknown {
  return substituteEnv(readYamlFile(file), '', env);
}

/** Read and parse a YAML file, without environment substitution; ConfigError keyed '(file)' on failure. */
export function readYamlFile(file: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file; check the path given to --config'
      : code === 'EACCES' ? 'permission denied; make the file readable by the user running pgsplit'
      : code === 'EISDIR' ? 'it is a directory; give the path of the YAML file'
      : `${code ?? String(err)}; check the path given to --config`;
    throw new ConfigError('(file)', `cannot read ${file}: ${why}`);
  }
  let doc: unknown;
  try {
    doc = parse(text, { logLevel: 'error' });
  } catch (err) {
    const e = err as Error & { linePos?: Array<{ line: number; col: number }> };
    const pos = e.linePos?.[0];
    // Only the first line of the parser's message: later lines quote the file, which may hold passwords.
    const reason = (e.message.split('\n')[0] ?? 'invalid YAML').replace(/\s+at line \d+, column \d+:?\s*$/, '');
    const lineText = pos === undefined ? '' : (text.split(/\r?\n/)[pos.line - 1] ?? '');
    const hint = /\[[0-9A-Fa-f]*:[0-9A-Fa-f:.]*\]/.test(lineText)
      ? '; IPv6 addresses must be quoted, e.g. listen: "[::1]:6432"'
      : '; fix the YAML syntax there (quote values that contain : # [ ] { } or start with * & !)';
    const where = pos === undefined ? file : `${file} line ${pos.line}, column ${pos.col}`;
    throw new ConfigError('(file)', `${where}: ${reason}${hint}`);
  }
  return doc;
}
