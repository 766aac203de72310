import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { HELP_TEXT, parseCliArgs, type CliCommand } from '../config/cli-args.js';
import { loadConfig } from '../config/load-config.js';
import { ConfigError } from '../errors.js';
import { createLogger } from '../log/logger.js';
import { ProxyServer } from '../proxy/proxy-server.js';
import { Router } from '../router/router.js';

function version(): string {
  const here = path.dirname(fileURLToPath(import.meta.url));
  for (const rel of ['../../package.json', '../../../package.json']) {
    try {
      return (JSON.parse(readFileSync(path.join(here, rel), 'utf8')) as { version: string }).version;
    } catch {
      // try the next location (running from src/ or from dist/src/)
    }
  }
  return 'unknown';
}

/** Runs the proxy until SIGINT/SIGTERM. */
async function runProxy(cmd: Extract<CliCommand, { command: 'run' }>): Promise<void> {
  const config = loadConfig({ file: cmd.configFile, overrides: cmd.overrides });
  const log = createLogger(config.log.level);
  const proxy = new ProxyServer(config, log);
  await proxy.listen();
  const stop = (signal: string) => {
    log.info({ signal }, 'shutting down');
    proxy.close().then(() => process.exit(0), () => process.exit(1));
  };
  process.once('SIGINT', () => stop('SIGINT'));
  process.once('SIGTERM', () => stop('SIGTERM'));
}

/** Entry point of the `pgsplit` command; returns the exit code for commands that finish. */
export async function main(argv: string[]): Promise<number | null> {
  let cmd: CliCommand;
  try {
    cmd = parseCliArgs(argv);
  } catch (e) {
    process.stderr.write(`pgsplit: ${(e as Error).message}\n`);
    return 2;
  }
  try {
    switch (cmd.command) {
      case 'help':
        process.stdout.write(HELP_TEXT);
        return 0;
      case 'version':
        process.stdout.write(`pgsplit ${version()}\n`);
        return 0;
      case 'check-config': {
        const c = loadConfig({ file: cmd.configFile });
        process.stdout.write(`${cmd.configFile}: ok (primary ${c.primary.name}, ${c.replicas.length} replica(s), ${c.users.length} user(s))\n`);
        return 0;
      }
      case 'explain': {
        const d = new Router().decide([cmd.sql], { tagged: true, pinned: null });
        const c = d.classifications[0];
        const out = { route: d.target, reason: d.reason, statements: c?.statements.map((s) => ({ kind: s.kind, replicaSafe: s.replicaSafe, reason: s.reason })) ?? [], hints: c?.hints };
        process.stdout.write(cmd.json ? `${JSON.stringify(out)}\n` : `route: ${out.route}\nreason: ${out.reason}\n`);
        return 0;
      }
      case 'demo': {
        const { runDemo } = await import('../demo/demo.js');
        return await runDemo(cmd);
      }
      case 'run':
        await runProxy(cmd);
        return null;
    }
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(`pgsplit: ${e.message}\n`);
      return 2;
    }
    process.stderr.write(`pgsplit: ${(e as Error).message}\n`);
    return 1;
  }
}
