/**
 * PEM files named in the config (tls.cert, tls.key, tls.ca, a server URL's sslrootcert), read when the
 * config is loaded so that check-config and a reload find a missing or wrong file before clients do.
 */
import { readFileSync } from 'node:fs';
import type { ConfigContext } from './config-context.js';

/** Reads a PEM file named in the config; ConfigError naming the key when it cannot be read. */
export function readPem(file: string, key: string, what: string, ctx: ConfigContext): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied (make it readable by the user running pgsplit)' : code ?? String(e);
    ctx.fail(key, `cannot read ${what} ${JSON.stringify(file)}: ${why}; give the path of a PEM file`);
  }
  if (!text.includes('-----BEGIN ')) ctx.fail(key, `${JSON.stringify(file)} is not a PEM file (no -----BEGIN line); give ${what} in PEM form`);
  return text;
}
