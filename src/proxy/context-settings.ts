import type { PgsplitConfig } from '../config/config.js';
import { Router } from '../router/router.js';
import type { SessionContext } from '../session/session-context.js';

/** The part of the SessionContext that comes from the configuration. */
export type ContextSettings = Pick<SessionContext,
  'router' | 'maxMessageSize' | 'connectTimeoutMs' | 'tagApplicationNames' | 'defaultRoute' | 'maxLagMs' | 'readYourWritesTimeoutMs' |
  'whenNoReplica' | 'transactions' | 'monitorTimeoutMs' | 'maxPendingBytes' | 'poolMode'>;

/**
 * The session settings that come from the configuration: set at start, and again by each reload (which
 * passes the router in force when the function lists did not change, so its caches stay).
 */
export function contextSettings(c: PgsplitConfig, router: Router = routerFor(c)): ContextSettings {
  return {
    router,
    maxMessageSize: c.limits.maxMessageSize,
    connectTimeoutMs: c.limits.connectTimeoutMs,
    tagApplicationNames: c.routing.applicationNames,
    defaultRoute: c.routing.default,
    maxLagMs: c.routing.maxLagMs,
    readYourWritesTimeoutMs: c.routing.readYourWritesTimeoutMs,
    whenNoReplica: c.routing.whenNoReplica,
    transactions: c.routing.transactions,
    monitorTimeoutMs: c.monitor.timeoutMs,
    maxPendingBytes: c.limits.maxPendingBytes,
    poolMode: c.pool.mode,
  };
}

/** The statement router for routing.writing_functions, read_only_functions and unknown_functions. */
export function routerFor(c: PgsplitConfig): Router {
  return new Router({
    writingFunctions: c.routing.writingFunctions,
    readOnlyFunctions: c.routing.readOnlyFunctions,
    unknownFunctions: c.routing.unknownFunctions,
  });
}
