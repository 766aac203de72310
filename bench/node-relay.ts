/**
 * The floor for any Node.js proxy on this machine: a relay that forwards bytes between each client and
 * the server and does nothing else (no framing, no routing), through the same public socket API pgsplit
 * uses. Run beside the real proxies, it shows how much of pgsplit's cost is Node's own I/O path.
 *
 *   node dist/bench/node-relay.js LISTEN_PORT TARGET_PORT
 */
import net from 'node:net';

const [listenPort, targetPort] = process.argv.slice(2).map(Number);
if (!listenPort || !targetPort) {
  process.stderr.write('usage: node-relay LISTEN_PORT TARGET_PORT\n');
  process.exit(2);
}
net.createServer((client) => {
  client.setNoDelay(true);
  const server = net.connect(targetPort, '127.0.0.1');
  server.setNoDelay(true);
  client.on('data', (d: Buffer) => server.write(d));
  server.on('data', (d: Buffer) => client.write(d));
  client.on('close', () => server.destroy());
  server.on('close', () => client.destroy());
  client.on('error', () => server.destroy());
  server.on('error', () => client.destroy());
}).listen(listenPort, '127.0.0.1');
process.on('SIGTERM', () => process.exit(0));
