import net from 'node:net';
import { prepareScramVerifiers, type ClientTls } from '../client/client-handshake.js';
import { ClientAcceptor } from '../client/client-acceptor.js';
import { clientTlsFor } from '../client/client-tls.js';
import { errorFor } from '../codec/backend-messages.js';
import { ConfigError, PgsplitError, SqlState, errors } from '../errors.js';
import type { PgsplitConfig, ServerEndpoint } from '../config/config.js';
import type { Logger } from '../log/logger.js';
import type { Router } from '../router/router.js';
import { ReplicaMonitor } from '../monitor/replica-monitor.js';
import { ServerNodes } from '../server/server-nodes.js';
import { settleCancels } from '../server/server-connection.js';
import type { Session } from '../session/session.js';
import type { SessionContext } from '../session/session-context.js';
import { planReload } from './reload-plan.js';
import { contextSettings, routerFor } from './context-settings.js';
import { IdleSweep } from './idle-sweep.js';
import { MemoryTrim } from './memory-trim.js';
import { RetireSweep } from './retire-sweep.js';
import { ServerView } from './server-view.js';
import { PoolRegistry } from '../pool/pool-registry.js';
import { poolSettingsFrom } from '../pool/server-pool.js';
import { ProxyStats } from '../stats/proxy-stats.js';
import { MetricsServer } from '../stats/metrics-server.js';
import { createProxyMetrics } from '../stats/proxy-metrics.js';
import { proxyMetricsSource } from '../stats/proxy-metrics-source.js';
import type { Registry } from 'prom-client';
import type { AdminSource } from '../admin/admin-console.js';
import { proxyAdminSource } from '../admin/proxy-admin-source.js';

export { ADMIN_DATABASE } from '../client/client-acceptor.js';

/** What a reload did: keys applied, keys waiting for a restart, replicas added and removed (draining). */
export interface ReloadResult {
  changed: string[];
  needsRestart: string[];
  added: string[];
  removed: string[];
}

/** Options beyond the configuration. */
export interface ProxyOptions {
  /**
   * Reads and validates the configuration again (the --config file with the command-line flags over
   * it), for SIGHUP and the admin console's RELOAD; throws ConfigError when the new one is invalid.
   * Without it there is nothing to reload.
   */
  reloadSource?: () => PgsplitConfig;
}

/**
 * Lifecycle of the proxy listener. 'starting': the port is open but the monitor's first checks are still
 * running; connections that arrive then wait for 'listening' (up to limits.startup_timeout).
 */
export type ProxyState = 'created' | 'starting' | 'listening' | 'closing' | 'closed';

const LOOPBACK = new Set(['127.0.0.1', '::1', 'localhost']);

export function isLoopback(host: string): boolean {
  return LOOPBACK.has(host) || host.startsWith('127.');
}

/**
 * The proxy: its listener and lifecycle (start, reload, drain, close), and the parts it wires together:
 * the client side (ClientAcceptor: handshakes, sessions, cancel keys), the servers and their monitor,
 * the pools, the admin console and the metrics.
 */
export class ProxyServer {
  readonly nodes: ServerNodes;
  readonly monitor: ReplicaMonitor;
  readonly stats = new ProxyStats();
  /**
   * The server connection pools (pool.*), one per (node, server role, database, user): sessions borrow
   * from them through the SessionContext; SHOW POOLS and the pgsplit_pool_* metrics read them.
   */
  readonly pools: PoolRegistry;
  /** The Prometheus registry (served on metrics.listen when configured). */
  readonly metrics: Registry;
  private metricsServer: MetricsServer | null = null;
  /** Admin PAUSE / RESUME, shared with every session. */
  private readonly control = { paused: false };
  private metricsAddr: { host: string; port: number } | null = null;
  state: ProxyState = 'created';
  private readonly log: Logger;
  private readonly server: net.Server;
  /** The client side: every client socket, and the sessions by id. */
  private readonly clients: ClientAcceptor;
  private readonly sessions: ReadonlyMap<number, Session>;
  /** The servers and their connections as the admin console and the metrics show them. */
  private readonly view: ServerView;
  private current: PgsplitConfig;
  private readonly reloadSource: (() => PgsplitConfig) | undefined;
  /**
   * One context for every session: sessions read the routing settings from it when they use them, so a
   * reload that changes them here reaches sessions already open.
   */
  private readonly ctx: SessionContext;
  /** Drops replicas removed by a reload once no session uses them. */
  private readonly retireSweep: RetireSweep;
  /** limits.idle_in_transaction_timeout. */
  private readonly idleSweep: IdleSweep;
  /** Returns V8's grown young generation once the proxy is quiet (idle clients' memory). */
  private readonly memoryTrim: MemoryTrim;
  /** Client TLS as the handshake needs it, built from tls.* (again on a reload that changes them). */
  private clientTls: ClientTls;
  /** Clients that finished their handshake while pgsplit was starting, waiting for it to be ready. */
  private readonly readyWaiters = new Set<(how: 'ready' | 'closed') => void>();

  constructor(config: PgsplitConfig, log: Logger, opts: ProxyOptions = {}) {
    this.current = config;
    this.reloadSource = opts.reloadSource;
    this.log = log;
    if (config.users.length === 0 && !isLoopback(config.listen.host)) {
      throw new PgsplitError('CONFIG_INVALID', SqlState.invalidAuthorizationSpecification,
        `refusing to listen on ${config.listen.host} without users: with no users configured pgsplit trusts every client, ` +
        'which is only allowed on a loopback address; add users: (name, password) to the config or listen on 127.0.0.1');
    }
    this.nodes = new ServerNodes(config.primary, config.replicas);
    this.monitor = new ReplicaMonitor(this.nodes, config.monitor, log);
    this.nodes.lagOf = (n) => this.monitor.lagMs(n);
    this.monitor.onDown = (n, reason) => {
      for (const s of this.sessions.values()) s.serverDown(n, reason);
    };
    this.pools = new PoolRegistry(poolSettingsFrom(config));
    this.ctx = this.sessionContext(config);
    this.clientTls = clientTlsFor(config);
    prepareScramVerifiers(config.users);
    this.clients = new ClientAcceptor({
      state: () => this.state,
      config: () => this.current,
      clientTls: () => this.clientTls,
      ctx: this.ctx,
      stats: this.stats,
      log: this.log,
      whenReady: (waitMs) => this.whenReady(waitMs),
      adminSource: () => this.adminSource(),
    });
    this.sessions = this.clients.sessions;
    const closed = (): boolean => this.state === 'closed';
    this.retireSweep = new RetireSweep(this.nodes, this.monitor, this.sessions, this.log, closed);
    this.idleSweep = new IdleSweep(this.sessions, () => this.current.limits.idleInTransactionTimeoutMs, closed);
    this.memoryTrim = new MemoryTrim(() => this.stats.clientsAccepted + this.stats.unitsRouted());
    this.server = net.createServer((s) => this.clients.accept(s));
    this.view = new ServerView(this.nodes, this.monitor, this.sessions);
    this.metrics = createProxyMetrics(proxyMetricsSource({
      stats: this.stats, pools: this.pools, nodes: this.nodes, view: this.view, sessions: this.sessions,
      handshaking: () => this.clients.handshaking(),
    }));
  }

  /** The configuration in force (a reload replaces it). */
  get config(): PgsplitConfig {
    return this.current;
  }

  /** The statement router in force (a reload with new function lists replaces it). */
  get router(): Router {
    return this.ctx.router;
  }

  private sessionContext(config: PgsplitConfig): SessionContext {
    return {
      ...contextSettings(config),
      control: this.control,
      nodes: this.nodes,
      log: this.log,
      monitor: this.monitor,
      events: this.stats,
      pools: this.pools,
    };
  }

  /**
   * Reads the configuration again (SIGHUP, admin RELOAD) and applies it. An invalid one is refused with
   * its reason (ConfigError) and the configuration in force stays as it was.
   */
  reloadFromSource(): ReloadResult {
    try {
      if (this.reloadSource === undefined) {
        throw new PgsplitError('CONFIG_INVALID', SqlState.configFileError,
          'nothing to reload: pgsplit was started without --config; start it with --config FILE to change settings while it runs');
      }
      return this.reload(this.reloadSource());
    } catch (e) {
      this.log.error({ reason: (e as Error).message }, 'reload refused: the configuration in force is unchanged');
      throw e;
    }
  }

  /**
   * Applies a validated configuration without dropping a session: routing, limits, monitor settings,
   * users and log level take effect for the next statement or connection; replicas added are checked
   * and then used; replicas removed get no new reads and are let go by each session once what runs there
   * (a statement, a transaction) ends. listen, primary and metrics.listen need a restart: a change to
   * them is reported and the running value stays.
   */
  reload(next: PgsplitConfig): ReloadResult {
    const plan = planReload(this.current, next, this.nodes.replicas.filter((r) => !r.retiring));
    const c = plan.config;
    if (c.users.length === 0 && !isLoopback(c.listen.host)) {
      throw new ConfigError('users', `cannot be emptied while pgsplit listens on ${c.listen.host}: with no users every client is trusted, ` +
        'which is only allowed on a loopback address; keep at least one user');
    }
    const routingChanged = ['writing_functions', 'read_only_functions', 'unknown_functions'].some((k) => plan.changed.includes(`routing.${k}`));
    // Everything that can throw comes before the first change: a reload applies whole or not at all.
    const router = routingChanged ? routerFor(c) : this.ctx.router;
    const clientTls = plan.changed.includes('tls') ? clientTlsFor(c) : this.clientTls;
    prepareScramVerifiers(c.users);
    this.current = c;
    this.clientTls = clientTls;
    // Into the one shared object (sessions hold it), not a new one.
    Object.assign(this.ctx, contextSettings(c, router));
    this.idleSweep.arm();
    this.pools.reconfigure(poolSettingsFrom(c));
    this.monitor.configure(c.monitor);
    const keyOf = (e: ServerEndpoint): string => `replicas[${c.replicas.indexOf(e)}]`;
    for (const { node, endpoint } of plan.keep) {
      node.endpoint = endpoint;
      node.configKey = keyOf(endpoint);
    }
    const added = plan.add.map((e) => {
      const n = this.nodes.addReplica(e, keyOf(e));
      this.monitor.addNode(n);
      return e.name;
    });
    for (const n of plan.remove) {
      n.retiring = true;
      // Its pools close now (leases still out are closed as they come back), so that a replica added under
      // the same name gets pools of its own.
      this.pools.closeNode(n.endpoint.name, errors.shuttingDown());
      for (const s of this.sessions.values()) s.retire(n);
    }
    if (plan.remove.length > 0) this.retireSweep.sweep();
    const result: ReloadResult = { changed: plan.changed, needsRestart: plan.needsRestart, added, removed: plan.remove.map((n) => n.endpoint.name) };
    this.log.info({ ...result }, 'configuration reloaded');
    if (result.needsRestart.length > 0) {
      this.log.warn({ keys: result.needsRestart }, 'changed in the configuration but applied only at the next restart; the running values stay');
    }
    // Last, so that the reload itself is logged at the old level. Only when the file changed it: an
    // embedding program may have set its logger's level itself.
    if (plan.changed.includes('log.level')) this.log.level = c.log.level;
    return result;
  }

  private adminSource(): AdminSource {
    return proxyAdminSource({
      sessions: this.sessions, nodes: this.nodes, view: this.view, stats: this.stats, pools: this.pools, control: this.control,
      events: this.ctx.events, log: this.log, config: () => this.config, reload: () => this.reloadFromSource(),
    });
  }

  /** Where /metrics is served, when metrics.listen is set and the proxy listens. */
  get metricsAddress(): { host: string; port: number } | null {
    return this.metricsAddr;
  }

  /** Ready for traffic: listening, and the primary reachable (not found down by the monitor). */
  readiness(): { ok: boolean; reason: string } {
    if (this.state !== 'listening') return { ok: false, reason: `proxy ${this.state}` };
    const p = this.nodes.primary;
    if (p.health === 'down') return { ok: false, reason: `primary ${p.endpoint.name} is down${p.failReason ? `: ${p.failReason}` : ''}` };
    return { ok: true, reason: 'listening, primary reachable' };
  }

  /** Starts listening; resolves with the bound address (port 0 in the config picks a free port). */
  async listen(): Promise<{ host: string; port: number }> {
    // From the moment the port opens, clients are accepted and wait for the end of the warm-up below.
    this.state = 'starting';
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.config.listen.port, this.config.listen.host, () => {
        this.server.removeListener('error', reject);
        resolve();
      });
    });
    // Checks first, so that the first tagged sessions can already use the replicas.
    await this.monitor.warmUp();
    if (this.state !== 'starting') throw errors.shuttingDown();
    const ml = this.config.metrics.listen;
    if (ml !== null) {
      this.metricsServer = new MetricsServer(this.metrics, () => this.readiness());
      try {
        this.metricsAddr = await this.metricsServer.listen(ml.host, ml.port);
      } catch (e) {
        // Without this the open listener would keep a process alive that is meant to exit with the error.
        this.metricsServer = null;
        await this.close();
        throw new PgsplitError('CONFIG_INVALID', SqlState.invalidParameterValue,
          `cannot serve metrics on ${ml.host}:${ml.port} (metrics.listen): ${(e as Error).message}; choose a free port`);
      }
    }
    this.monitor.start();
    this.state = 'listening';
    this.settleWaiters('ready');
    this.idleSweep.arm();
    this.memoryTrim.start();
    const addr = this.server.address() as net.AddressInfo;
    if (this.config.users.length === 0) {
      this.log.warn({ listen: `${addr.address}:${addr.port}` }, 'no users configured: development mode, every client on this loopback address is trusted');
    }
    this.log.info({
      listen: `${addr.address}:${addr.port}`, primary: this.config.primary.name, replicas: this.config.replicas.map((r) => r.name),
      ...(this.metricsAddr ? { metrics: `http://${this.metricsAddr.host}:${this.metricsAddr.port}/metrics` } : {}),
    }, 'pgsplit listening');
    return { host: addr.address, port: addr.port };
  }

  get address(): { host: string; port: number } {
    const a = this.server.address() as net.AddressInfo;
    return { host: a.address, port: a.port };
  }

  get sessionCount(): number {
    return this.sessions.size;
  }

  /**
   * Resolves once pgsplit is ready ('ready'), closes ('closed'), or `waitMs` passes ('timeout'): a client
   * that connects while the monitor's first checks run waits instead of being refused.
   */
  private whenReady(waitMs: number): Promise<'ready' | 'closed' | 'timeout'> {
    if (this.state === 'listening') return Promise.resolve('ready');
    if (this.state !== 'starting') return Promise.resolve('closed');
    return new Promise((resolve) => {
      const done = (how: 'ready' | 'closed' | 'timeout'): void => {
        clearTimeout(timer);
        this.readyWaiters.delete(done);
        resolve(how);
      };
      const timer = setTimeout(() => done('timeout'), Math.max(0, waitMs));
      this.readyWaiters.add(done);
    });
  }

  private settleWaiters(how: 'ready' | 'closed'): void {
    for (const w of [...this.readyWaiters]) w(how);
  }

  /**
   * Graceful shutdown (SIGTERM): stops accepting, closes idle sessions at once with FATAL 57P01, lets
   * statements already sent to a server finish for up to `graceMs` (each such session closes after its
   * answer), then closes whatever is left.
   */
  async shutdown(graceMs: number): Promise<void> {
    if (this.state !== 'listening') return this.close();
    this.state = 'closing';
    this.log.info({ sessions: this.sessions.size, graceMs }, 'draining: no new clients, in-flight statements may finish');
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    const inSession = new Set<net.Socket>();
    for (const s of this.sessions.values()) {
      inSession.add(s.client);
      s.drain();
    }
    // Clients still in their startup handshake get the same FATAL.
    for (const sock of this.clients.sockets) if (!inSession.has(sock)) sock.end(errorFor(errors.shuttingDown()));
    const deadline = Date.now() + graceMs;
    while (this.sessions.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    await this.finishClose(closed);
  }

  /** Stops accepting, tells connected clients pgsplit is shutting down, and closes everything at once. */
  async close(): Promise<void> {
    if (this.state === 'closed') return;
    const wasClosing = this.state === 'closing';
    this.state = 'closing';
    const closed = wasClosing ? Promise.resolve() : new Promise<void>((resolve) => this.server.close(() => resolve()));
    await this.finishClose(closed);
  }

  private async finishClose(serverClosed: Promise<void>): Promise<void> {
    // Clients waiting for the start hear that pgsplit is shutting down (their sockets go below).
    this.settleWaiters('closed');
    this.retireSweep.stop();
    this.idleSweep.stop();
    this.memoryTrim.stop();
    await this.monitor.stop();
    await this.metricsServer?.close();
    this.metricsServer = null;
    for (const s of this.sessions.values()) {
      if (!s.client.destroyed) s.client.write(errorFor(errors.shuttingDown()));
      s.close();
    }
    for (const s of this.clients.sockets) s.destroy();
    this.pools.close();
    await serverClosed;
    await settleCancels(2000);
    this.state = 'closed';
  }

}
