/**
 * The floor for any Node.js proxy on this machine: a relay that forwards bytes between each client and
 * the server and does nothing else (no framing, no routing), through the same public socket API pgsplit
 * uses. Run beside the real proxies, it shows how much of pgsplit's cost is Node's own I/O path.
 *
 *   node dist/bench/node-relay.js LISTEN_PORT TARGET_PORT
 *
 * bench-suite.ts runs it as a child (pgsplit is a child there); write-then-read runs it in its own
 * process through startNodeRelay (pgsplit is in process there), so each compares like with like.
 */
import net from 'node:net';
import { pathToFileURL } from 'node:url';

/** Listens on 127.0.0.1:`listenPort` (0: any free port) and relays every connection to 127.0.0.1:`targetPort`. */
export function startNodeRelay(listenPort: number, targetPort: number): Promise<net.Server> {
  const relay = net.createServer((client) => {
    client.setNoDelay(true);
    const server = net.connect(targetPort, '127.0.0.1');
    server.setNoDelay(true);
    client.on('data', (d: Buffer) => server.write(d));
    server.on('data', (d: Buffer) => client.write(d));
    client.on('close', () => server.destroy());
    server.on('close', () => client.destroy());
    client.on('error', () => server.destroy());
    server.on('error', () => client.destroy());
  });
  return new Promise((resolve, reject) => {
    relay.once('error', reject);
    relay.listen(listenPort, '127.0.0.1', () => {
      relay.off('error', reject);
      resolve(relay);
    });
  });
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const [listenPort, targetPort] = process.argv.slice(2).map(Number);
  if (!listenPort || !targetPort) {
    process.stderr.write('usage: node-relay LISTEN_PORT TARGET_PORT\n');
    process.exit(2);
  }
  process.on('SIGTERM', () => process.exit(0));
  void startNodeRelay(listenPort, targetPort);
}
