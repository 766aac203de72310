/**
 * libpq passes `PGOPTIONS` / `options=` as one string of command-line switches (`-c name=value`,
 * `--name=value`), with backslash escaping spaces. pgsplit takes its own settings (pgsplit.*) out of it
 * and passes the rest to the servers unchanged in meaning.
 */
export interface SplitOptions {
  /** pgsplit.* settings found, name without the prefix, lowercased. */
  pgsplit: Record<string, string>;
  /** The remaining options string for the servers ('' when nothing remains). */
  rest: string;
}

function tokenize(s: string): string[] {
  const out: string[] = [];
  let cur = '';
  let has = false;
  for (let i = 0; i < s.length; i++) {
    const c = s[i] as string;
    if (c === '\\' && i + 1 < s.length) {
      cur += s[++i];
      has = true;
    } else if (c === ' ' || c === '\t' || c === '\n') {
      if (has) out.push(cur);
      cur = '';
      has = false;
    } else {
      cur += c;
      has = true;
    }
  }
  if (has) out.push(cur);
  return out;
}

function escape(s: string): string {
  return s.replace(/([\\ \t])/g, '\\$1');
}

export function splitStartupOptions(options: string | undefined): SplitOptions {
  const result: SplitOptions = { pgsplit: {}, rest: '' };
  if (!options) return result;
  const toks = tokenize(options);
  const keep: string[] = [];
  for (let i = 0; i < toks.length; i++) {
    const t = toks[i] as string;
    let setting: string | null = null;
    let consumed = 1;
    if (t === '-c' && i + 1 < toks.length) {
      setting = toks[i + 1] as string;
      consumed = 2;
    } else if (t.startsWith('-c') && t.length > 2) {
      setting = t.slice(2);
    } else if (t.startsWith('--') && t.includes('=')) {
      setting = t.slice(2);
    }
    if (setting !== null) {
      const eq = setting.indexOf('=');
      const name = (eq < 0 ? setting : setting.slice(0, eq)).toLowerCase().replace(/-/g, '_');
      if (name.startsWith('pgsplit.') && eq > 0) {
        result.pgsplit[name.slice('pgsplit.'.length)] = setting.slice(eq + 1);
        i += consumed - 1;
        continue;
      }
    }
    for (let k = 0; k < consumed; k++) keep.push(escape(toks[i + k] as string));
    i += consumed - 1;
  }
  result.rest = keep.join(' ');
  return result;
}

/**
 * The settings an options string (what splitStartupOptions left for the servers) asks for, `-c name=value`
 * and `--name=value`, by name as written (dashes as underscores): what a pooled connection, which starts
 * without the client's options, is given by set_config instead. Other switches are left out.
 */
export function optionSettings(rest: string): Map<string, string> {
  const out = new Map<string, string>();
  const toks = tokenize(rest);
  for (let i = 0; i < toks.length; i++) {
    const t = toks[i] as string;
    let setting: string | null = null;
    if (t === '-c' && i + 1 < toks.length) setting = toks[++i] as string;
    else if (t.startsWith('-c') && t.length > 2) setting = t.slice(2);
    else if (t.startsWith('--') && t.includes('=')) setting = t.slice(2);
    if (setting === null) continue;
    const eq = setting.indexOf('=');
    if (eq <= 0) continue;
    out.set(setting.slice(0, eq).replace(/-/g, '_'), setting.slice(eq + 1));
  }
  return out;
}
