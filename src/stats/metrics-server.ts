import http from 'node:http';
import type { Registry } from 'prom-client';

/**
 * The HTTP listener of `metrics.listen`: `/metrics` (Prometheus text format), `/healthz` (the process is
 * alive and answering) and `/readyz` (the proxy is listening and the primary is reachable: what a load
 * balancer or Kubernetes readiness probe should ask). `/readyz?serving` is also ready while the primary
 * is down but a replica is up, so tagged reads go on: the probe for pods whose clients read from replicas.
 */
export class MetricsServer {
  private readonly server: http.Server;

  constructor(registry: Registry, ready: () => { ok: boolean; reason: string }) {
    this.server = http.createServer((req, res) => {
      const [path, query = ''] = (req.url ?? '/').split('?');
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.writeHead(405, { allow: 'GET, HEAD' }).end();
        return;
      }
      if (path === '/metrics') {
        registry.metrics().then(
          (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
          (e: unknown) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`metrics failed: ${String(e)}\n`),
        );
      } else if (path === '/healthz') {
        res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
      } else if (path === '/readyz') {
        const serving = new URLSearchParams(query).has('serving');
        const answer = (r: { ok: boolean; reason: string }) =>
          res.writeHead(r.ok ? 200 : 503, { 'content-type': 'text/plain' }).end(`${r.ok ? 'ready' : 'not ready'}: ${r.reason}\n`);
        const r = ready();
        // Only "the primary is down" is forgiven (readiness() names the primary first in exactly that
        // case); a proxy that is starting or closing is not ready either way.
        if (r.ok || !serving || !r.reason.startsWith('primary ')) answer(r);
        else upReplicas(registry).then(
          (up) => answer(up.length > 0 ? { ok: true, reason: `${r.reason}; tagged reads served by ${up.join(', ')}` } : { ok: false, reason: `${r.reason}, and no replica is up` }),
          (e: unknown) => answer({ ok: false, reason: `${r.reason}; replica health unknown: ${String(e)}` }),
        );
      } else {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('pgsplit serves /metrics, /healthz and /readyz\n');
      }
    });
  }

  /** Starts listening; resolves with the bound address (port 0 picks a free one). */
  async listen(host: string, port: number): Promise<{ host: string; port: number }> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.removeListener('error', reject);
        resolve();
      });
    });
    const a = this.server.address();
    return typeof a === 'object' && a !== null ? { host: a.address, port: a.port } : { host, port };
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** Replicas the monitor finds up, from the pgsplit_node_up gauge (the same view /metrics gives). */
async function upReplicas(registry: Registry): Promise<string[]> {
  const metric = registry.getSingleMetric('pgsplit_node_up');
  if (metric === undefined) return [];
  const { values } = await metric.get();
  return values.filter((v) => v.labels['role'] === 'replica' && v.value === 1).map((v) => String(v.labels['node']));
}
