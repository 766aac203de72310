/**
 * The resolution context every config reader is given: it raises a ConfigError keyed by the dotted
 * path of the offending value, and says which flag or PGSPLIT_* variable gave the value, so that the
 * message points at the place the user has to fix. Also the small helpers all readers share.
 *
 * Values are echoed only through show(), which masks URLs; user passwords are never echoed at all.
 */
import { ConfigError } from '../errors.js';
import { maskUrl } from './config.js';
import { NESTED_HOME } from './config-keys.js';
import { suggest } from './suggest.js';

export type Raw = Record<string, unknown>;

export function isMap(v: unknown): v is Raw {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function child(path: string, key: string): string {
  return path === '' ? key : `${path}.${key}`;
}

/** A value for an error message: masked, quoted, shortened. Never call this on a user password. */
export function show(v: unknown): string {
  if (typeof v === 'string') {
    const m = maskUrl(v);
    return JSON.stringify(m.length > 80 ? `${m.slice(0, 77)}...` : m);
  }
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  return describe(v);
}

/** What kind of value this is, in words (never the value itself). */
export function describe(v: unknown): string {
  if (v === null || v === undefined) return 'empty';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  if (typeof v === 'number') return 'a number';
  if (typeof v === 'boolean') return 'true/false';
  if (typeof v === 'string') return 'a string';
  return `a ${typeof v}`;
}

/** Resolution context: raises ConfigErrors, noting which flag a value came from. */
export class ConfigContext {
  constructor(private readonly sources: Map<string, string>) {}

  fail(key: string, message: string): never {
    let source: string | undefined;
    let longest = -1;
    for (const [prefix, label] of this.sources) {
      const covers = key === prefix || key.startsWith(`${prefix}.`) || key.startsWith(`${prefix}[`);
      if (covers && prefix.length > longest) {
        source = label;
        longest = prefix.length;
      }
    }
    throw new ConfigError(key, source === undefined ? message : `${message} (value given by ${source})`);
  }

  checkKeys(obj: Raw, allowed: readonly string[], path: string): void {
    for (const key of Object.keys(obj)) {
      if (allowed.includes(key)) continue;
      const full = child(path, key);
      const near = suggest(key, allowed);
      if (near !== undefined) this.fail(full, `unknown key ${full}; did you mean ${near}?`);
      if (path === '') {
        const normKey = key.toLowerCase().replace(/-/g, '_');
        const home = NESTED_HOME[normKey];
        if (home !== undefined) this.fail(full, `unknown key ${full}; ${normKey} belongs under ${home}:, write ${home}: {${normKey}: ...}`);
      }
      const where = path === '' ? 'at the top level' : `under ${path}`;
      this.fail(full, `unknown key ${full}; remove it or use one of the keys allowed ${where}: ${allowed.join(', ')}`);
    }
  }

  oneOf<T extends string>(v: unknown, allowed: readonly T[], key: string, what: string): T {
    if (typeof v === 'string' && (allowed as readonly string[]).includes(v)) return v as T;
    const near = typeof v === 'string' ? suggest(v, allowed) : undefined;
    this.fail(key, `${show(v)} is not ${what}; write one of ${allowed.join(', ')}${near !== undefined ? ` (did you mean ${near}?)` : ''}`);
  }

  section(raw: Raw, key: string, allowed: readonly string[], example: string): Raw {
    const v = raw[key];
    if (v === undefined || v === null) return {};
    if (!isMap(v)) this.fail(key, `must be a mapping, not ${describe(v)}; write ${example}`);
    this.checkKeys(v, allowed, key);
    return v;
  }
}
