// The image's HEALTHCHECK: GET /healthz on the metrics listener that PGSPLIT_METRICS_LISTEN names (the
// image sets 0.0.0.0:9187; pgsplit reads the same variable, so the two cannot disagree). Exit 0 when
// pgsplit answers, 1 otherwise, with the reason on stderr.
const text = (process.env.PGSPLIT_METRICS_LISTEN ?? '').trim();
const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:]*)):(\d+)$/.exec(text) ?? (/^\d+$/.test(text) ? [text, undefined, '127.0.0.1', text] : null);
if (m === null) {
  process.stderr.write(`healthcheck: PGSPLIT_METRICS_LISTEN=${JSON.stringify(text)} is not HOST:PORT; set it (the image sets 0.0.0.0:9187) so that pgsplit serves /healthz\n`);
  process.exit(1);
}
let host = m[1] ?? m[2] ?? '127.0.0.1';
// A wildcard listener is reached on loopback.
if (host === '' || host === '0.0.0.0') host = '127.0.0.1';
if (host === '::') host = '::1';
const url = `http://${host.includes(':') ? `[${host}]` : host}:${m[3]}/healthz`;
fetch(url, { signal: AbortSignal.timeout(2500) }).then(
  (r) => {
    if (!r.ok) process.stderr.write(`healthcheck: ${url} answered ${r.status}\n`);
    process.exit(r.ok ? 0 : 1);
  },
  (e) => {
    process.stderr.write(`healthcheck: ${url}: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  },
);
