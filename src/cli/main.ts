import { readFileSync } from 'node:fs';
import { HELP_TEXT, parseCliArgs, type CliCommand } from '../config/cli-args.js';
import { describeConfigSources, mistypedEnvVariables } from '../config/env-config.js';
import { loadConfig, loadConfigWithSources, loadRoutingPolicy } from '../config/load-config.js';
import { ConfigError } from '../errors.js';
import { createLogger } from '../log/logger.js';
import { ProxyServer } from '../proxy/proxy-server.js';
import { explainQuery, explainScript } from '../router/explain.js';
import { Router } from '../router/router.js';
import { PGSPLIT_VERSION } from '../version.js';

function version(): string {
  return PGSPLIT_VERSION;
}

/** Runs the proxy until SIGINT/SIGTERM. */
async function runProxy(cmd: Extract<CliCommand, { command: 'run' }>): Promise<void> {
  const load = () => loadConfig({ file: cmd.configFile, overrides: cmd.overrides });
  const config = load();
  const log = createLogger(config.log.level);
  for (const m of mistypedEnvVariables(process.env)) log.warn(m, 'environment variable is not a pgsplit setting; did you mean the other name?');
  // The flags stay in force over the file on every reload, as they were at start.
  const proxy = new ProxyServer(config, log, { reloadSource: cmd.configFile === undefined ? undefined : load });
  // SIGHUP reloads the file (PgBouncer's and PostgreSQL's habit); a refused file is logged, nothing changes.
  // Handled from the start: during listen()'s warm-up the default action would end the process.
  process.on('SIGHUP', () => {
    try {
      proxy.reloadFromSource();
    } catch {
      // Logged with its reason by reloadFromSource.
    }
  });
  await proxy.listen();
  // SIGTERM drains (in-flight statements finish, up to limits.shutdown_grace); SIGINT closes at once.
  // A second signal while draining closes at once too.
  let stopping = false;
  const stop = (signal: string) => {
    log.info({ signal }, signal === 'SIGTERM' && !stopping ? 'shutting down gracefully' : 'shutting down now');
    const done = signal === 'SIGTERM' && !stopping ? proxy.shutdown(proxy.config.limits.shutdownGraceMs) : proxy.close();
    stopping = true;
    done.then(() => process.exit(0), () => process.exit(1));
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}

/** `pgsplit explain`: one query string, or each statement of a psql script (--file). */
function explain(cmd: Extract<CliCommand, { command: 'explain' }>): number {
  const router = new Router(cmd.configFile === undefined ? {} : loadRoutingPolicy(cmd.configFile));
  if (cmd.file === undefined) {
    const r = explainQuery(router, cmd.sql ?? '');
    const c = r.classification;
    const out = {
      route: r.route,
      reason: r.reason,
      statements: c?.statements.map((s) => ({ kind: s.kind, replicaSafe: s.replicaSafe, reason: s.reason })) ?? [],
      hints: c?.hints,
    };
    process.stdout.write(cmd.json ? `${JSON.stringify(out)}\n` : `route: ${out.route}\nreason: ${out.reason}\n`);
    return 0;
  }
  let script: string;
  try {
    script = readFileSync(cmd.file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'it is a directory' : code ?? String(err);
    process.stderr.write(`pgsplit: cannot read ${cmd.file}: ${why}; check the path given to --file\n`);
    return 2;
  }
  const { rows, summary } = explainScript(router, script);
  const lines: string[] = [];
  if (cmd.json) {
    for (const r of rows) lines.push(JSON.stringify({ line: r.line, route: r.route, reason: r.reason, statement: r.statement }));
    lines.push(JSON.stringify({ summary }));
  } else {
    const lineWidth = Math.max(4, ...rows.map((r) => String(r.line).length));
    const reasonWidth = Math.min(40, Math.max(6, ...rows.map((r) => r.reason.length)));
    for (const r of rows) {
      lines.push(`${String(r.line).padStart(lineWidth)}  ${r.route.padEnd(7)}  ${r.reason.padEnd(reasonWidth)}  ${r.statement}`);
    }
    lines.push(`${summary.statements} statement(s): ${summary.replica} replica, ${summary.primary} primary`);
  }
  process.stdout.write(`${lines.join('\n')}\n`);
  return 0;
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
        const { config: c, sources } = loadConfigWithSources({ file: cmd.configFile, overrides: cmd.overrides });
        const notes = mistypedEnvVariables(process.env).map((m) => `note: ${m.variable} is not a pgsplit setting (did you mean ${m.meant}?)\n`);
        process.stdout.write(`${cmd.configFile ?? 'configuration'}: ok (primary ${c.primary.name}, ${c.replicas.length} replica(s), ${c.users.length} user(s))\n`
          + `${describeConfigSources(c, sources).join('\n')}\n${notes.join('')}`);
        return 0;
      }
      case 'explain':
        return explain(cmd);
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
