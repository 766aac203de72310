/**
 * Every error pgsplit reports to a client or an operator is built here, so that codes stay stable and
 * messages keep to one style: say what went wrong, name the config key or input that caused it, and say
 * what to do instead. Secrets (passwords, query parameters) never go into a message.
 */

/** SQLSTATE codes pgsplit itself emits. Names follow PostgreSQL's errcodes.txt. */
export const SqlState = {
  protocolViolation: '08P01',
  inFailedSqlTransaction: '25P02',
  connectionFailure: '08006',
  connectionException: '08000',
  sqlclientUnableToEstablishSqlconnection: '08001',
  invalidAuthorizationSpecification: '28000',
  invalidPassword: '28P01',
  featureNotSupported: '0A000',
  programLimitExceeded: '54000',
  tooManyConnections: '53300',
  invalidParameterValue: '22023',
  undefinedObject: '42704',
  syntaxError: '42601',
  duplicatePreparedStatement: '42P05',
  adminShutdown: '57P01',
  cannotConnectNow: '57P03',
  cantChangeRuntimeParam: '55P02',
  queryCanceled: '57014',
  readOnlySqlTransaction: '25006',
  divisionByZero: '22012',
  idleInTransactionSessionTimeout: '25P03',
  configFileError: 'F0000',
  internalError: 'XX000',
} as const;

export type SqlStateCode = (typeof SqlState)[keyof typeof SqlState];

/** Stable pgsplit error codes, for logs and tests; each maps to one SQLSTATE. */
export type PgsplitErrorCode =
  | 'CONFIG_INVALID'
  | 'STARTUP_INVALID'
  | 'PROTOCOL_UNSUPPORTED'
  | 'MESSAGE_TOO_LARGE'
  | 'MESSAGE_INVALID'
  | 'AUTH_FAILED'
  | 'AUTH_UNSUPPORTED'
  | 'SERVER_UNAVAILABLE'
  | 'SERVER_LOST'
  | 'NO_REPLICA'
  | 'SETTING_INVALID'
  | 'SETTING_UNKNOWN'
  | 'SETTING_NOT_ALONE'
  | 'SHUTTING_DOWN'
  | 'LIMIT_EXCEEDED'
  | 'TRANSACTION_ABORTED'
  | 'INTERNAL'
  | 'STARTING_UP'
  | 'SERVER_LOGIN_FAILED'
  | 'TERMINATED'
  | 'STATEMENT_EXISTS'
  | 'POOL_WAIT_TIMEOUT';

/** An error meant for a client: carries the SQLSTATE and severity of the ErrorResponse it becomes. */
export class PgsplitError extends Error {
  readonly code: PgsplitErrorCode;
  readonly sqlState: string;
  readonly severity: 'ERROR' | 'FATAL';
  readonly detail: string | undefined;
  readonly hint: string | undefined;

  constructor(
    code: PgsplitErrorCode,
    sqlState: string,
    message: string,
    opts: { severity?: 'ERROR' | 'FATAL'; detail?: string; hint?: string; cause?: unknown } = {},
  ) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'PgsplitError';
    this.code = code;
    this.sqlState = sqlState;
    this.severity = opts.severity ?? 'ERROR';
    this.detail = opts.detail;
    this.hint = opts.hint;
  }
}

/** A configuration problem: names the key (dotted path) and what to write instead. */
export class ConfigError extends Error {
  readonly key: string;
  constructor(key: string, message: string) {
    super(`config ${key}: ${message}`);
    this.name = 'ConfigError';
    this.key = key;
  }
}

export const errors = {
  startupTooShort: (len: number) =>
    new PgsplitError('STARTUP_INVALID', SqlState.protocolViolation,
      `invalid length of startup packet (${len} bytes); the client must begin with a PostgreSQL StartupMessage`,
      { severity: 'FATAL' }),
  startupNotPostgres: () =>
    new PgsplitError('STARTUP_INVALID', SqlState.protocolViolation,
      'invalid startup packet: this is a PostgreSQL server (pgsplit); connect with a PostgreSQL client such as psql or libpq',
      { severity: 'FATAL' }),
  unsupportedProtocol: (major: number, minor: number) =>
    new PgsplitError('PROTOCOL_UNSUPPORTED', SqlState.featureNotSupported,
      `unsupported frontend protocol ${major}.${minor}: pgsplit supports protocol 3.0; upgrade the client library`,
      { severity: 'FATAL' }),
  startupMissingUser: () =>
    new PgsplitError('STARTUP_INVALID', SqlState.invalidAuthorizationSpecification,
      'no PostgreSQL user name specified in startup packet; set user= in the connection string',
      { severity: 'FATAL' }),
  messageTooLarge: (type: string, len: number, limit: number) =>
    new PgsplitError('MESSAGE_TOO_LARGE', SqlState.programLimitExceeded,
      `message of type '${type}' is ${len} bytes, over the limit of ${limit} bytes set by limits.max_message_size; ` +
      'send smaller statements or raise limits.max_message_size',
      { severity: 'FATAL' }),
  invalidMessageLength: (type: string, len: number) =>
    new PgsplitError('MESSAGE_INVALID', SqlState.protocolViolation,
      `invalid message length ${len} for message of type '${type}'`, { severity: 'FATAL' }),
  unexpectedMessage: (type: string, during: string) =>
    new PgsplitError('MESSAGE_INVALID', SqlState.protocolViolation,
      `unexpected message type '${type}' ${during}`, { severity: 'FATAL' }),
  passwordFailed: (user: string) =>
    new PgsplitError('AUTH_FAILED', SqlState.invalidPassword,
      `password authentication failed for user "${user}"`, { severity: 'FATAL' }),
  authProtocol: (why: string) =>
    new PgsplitError('AUTH_FAILED', SqlState.protocolViolation,
      `authentication failed: ${why}`, { severity: 'FATAL' }),
  serverUnavailable: (node: string, why: string) =>
    new PgsplitError('SERVER_UNAVAILABLE', SqlState.sqlclientUnableToEstablishSqlconnection,
      `pgsplit could not connect to ${node}: ${why}`,
      { hint: 'check that the server is running and that its URL (primary / replicas in the config) is right' }),
  serverLost: (node: string, why: string) =>
    new PgsplitError('SERVER_LOST', SqlState.connectionFailure,
      `connection to ${node} was lost while running the statement: ${why}; the statement may or may not have run`,
      { severity: 'FATAL' }),
  transactionServerDown: (node: string, why: string) =>
    new PgsplitError('SERVER_LOST', SqlState.connectionFailure,
      `the transaction's server ${node} was taken out of rotation (${why}); the transaction is lost and nothing more was sent to it`,
      { severity: 'FATAL', hint: 'run the transaction again: a new one goes to a server in rotation' }),
  noReplica: (detail: string, hint: string) =>
    new PgsplitError('NO_REPLICA', SqlState.cannotConnectNow,
      'no replica can serve this read now, and routing.when_no_replica is error', { detail, hint }),
  settingInvalid: (name: string, value: string, allowed: string) =>
    new PgsplitError('SETTING_INVALID', SqlState.invalidParameterValue,
      `invalid value for parameter "${name}": "${value}"`, { hint: `Allowed values: ${allowed}.` }),
  unknownSetting: (name: string) =>
    new PgsplitError('SETTING_UNKNOWN', SqlState.undefinedObject,
      `unrecognized configuration parameter "${name}"`, { hint: 'pgsplit knows pgsplit.route, pgsplit.max_lag, pgsplit.after and pgsplit.lsn' }),
  primaryLsnUnknown: (why: string) =>
    new PgsplitError('SERVER_UNAVAILABLE', SqlState.connectionFailure,
      `the primary did not report its WAL position: ${why}`, {
        hint: 'SHOW pgsplit.lsn asks the primary; try again once it is reachable',
      }),
  localCommandAlone: () =>
    new PgsplitError('SETTING_NOT_ALONE', SqlState.featureNotSupported,
      'pgsplit.* settings must be SET or RESET in a statement of their own', {
        hint: "send it alone, e.g. SET pgsplit.route = 'replica' (not SET LOCAL, and not together with other statements in one query string)",
      }),
  settingReadOnly: (name: string) =>
    new PgsplitError('SETTING_INVALID', SqlState.cantChangeRuntimeParam,
      `parameter "${name}" cannot be changed`, { hint: 'pgsplit.lsn is read-only: SHOW it, and hand the value to another session with SET pgsplit.after' }),
  inFailedTransaction: () =>
    new PgsplitError('TRANSACTION_ABORTED', SqlState.inFailedSqlTransaction,
      'current transaction is aborted, commands ignored until end of transaction block', {
        hint: 'end the transaction with ROLLBACK first; pgsplit answers SHOW/SET pgsplit.* as PostgreSQL answers any statement there',
      }),
  idleInTransactionTimeout: (ms: number) =>
    new PgsplitError('LIMIT_EXCEEDED', SqlState.idleInTransactionSessionTimeout,
      `terminating connection due to idle-in-transaction timeout: the session was idle inside a transaction for ${ms} ms ` +
      '(limits.idle_in_transaction_timeout); the transaction was rolled back', {
        severity: 'FATAL', hint: 'end transactions promptly (COMMIT or ROLLBACK), or raise limits.idle_in_transaction_timeout',
      }),
  tooManyClients: (limit: number) =>
    new PgsplitError('LIMIT_EXCEEDED', SqlState.tooManyConnections,
      `sorry, too many clients already: pgsplit allows ${limit} (limits.max_client_connections)`, { severity: 'FATAL' }),
  tooManyForUser: (user: string, limit: number) =>
    new PgsplitError('LIMIT_EXCEEDED', SqlState.tooManyConnections,
      `too many connections for user "${user}": pgsplit allows ${limit} per user (limits.max_user_connections)`, { severity: 'FATAL' }),
  tlsRequired: () =>
    new PgsplitError('AUTH_FAILED', SqlState.invalidAuthorizationSpecification,
      'pgsplit accepts only TLS connections (tls.mode: require); connect with sslmode=require or stronger', { severity: 'FATAL' }),
  shuttingDown: () =>
    new PgsplitError('SHUTTING_DOWN', SqlState.adminShutdown,
      'terminating connection because pgsplit is shutting down', { severity: 'FATAL' }),
  startingUp: (ms: number) =>
    new PgsplitError('STARTING_UP', SqlState.cannotConnectNow,
      `the database system is starting up: pgsplit was still checking its servers ${ms} ms after this connection arrived (limits.startup_timeout)`, {
        severity: 'FATAL',
        hint: 'connect again in a moment; if pgsplit takes this long to start, check that its servers answer (monitor.timeout) or raise limits.startup_timeout',
      }),
  /** pgsplit's own credentials (the server URL's user and password) were refused: the operator's to fix, not the client's. */
  serverLoginFailed: (node: string, key: string, user: string, serverMessage: string) =>
    new PgsplitError('SERVER_LOGIN_FAILED', SqlState.sqlclientUnableToEstablishSqlconnection,
      `pgsplit could not log in to server ${node} as "${user}" with the credentials in its URL (${key} in the pgsplit config): the server said: ${serverMessage}`, {
        hint: `this is pgsplit's configuration, not your connection: the operator must fix the user and password in the URL of ${key}, then ` +
          (key === 'primary' ? 'restart pgsplit (a reload does not change the primary)' : 'reload pgsplit (SIGHUP, or RELOAD in the admin console)'),
      }),
  /** The monitor's own login (monitor.user / monitor.password) was refused. */
  monitorLoginFailed: (node: string, user: string, serverMessage: string) =>
    new PgsplitError('SERVER_LOGIN_FAILED', SqlState.sqlclientUnableToEstablishSqlconnection,
      `the pgsplit monitor could not log in to server ${node} as "${user}" (monitor.user and monitor.password in the pgsplit config): the server said: ${serverMessage}`, {
        hint: 'the operator must fix monitor.user / monitor.password or the role on the servers, then reload pgsplit (SIGHUP, or RELOAD in the admin console)',
      }),
  serverUserLoginFailed: (node: string, user: string, key: string, serverMessage: string) =>
    new PgsplitError('SERVER_LOGIN_FAILED', SqlState.sqlclientUnableToEstablishSqlconnection,
      `pgsplit could not log in to server ${node} as "${user}" with ${key} of the pgsplit config: the server said: ${serverMessage}`, {
        hint: `this is pgsplit's configuration, not your connection: the operator must make ${key} the role's password on the servers ` +
          '(for a SCRAM verifier: copy rolpassword from pg_authid on the primary), create the role there, or map the user to another role ' +
          `with ${key.replace(/\.[a-z_]+$/, '')}.server_user and server_password, then reload pgsplit (SIGHUP, or RELOAD in the admin console)`,
      }),
  serverLoginUnsupported: (node: string, user: string, key: string, method: string, have: 'password' | 'md5-hash' | 'scram-keys') =>
    new PgsplitError('SERVER_LOGIN_FAILED', SqlState.sqlclientUnableToEstablishSqlconnection,
      `pgsplit cannot log in to server ${node} as "${user}": the server asks for ${method}, which ${key} ` +
      `(${have === 'md5-hash' ? 'an md5 hash' : have === 'scram-keys' ? 'a SCRAM verifier' : 'a password'}) cannot answer`, {
        hint: have === 'md5-hash'
          ? `an md5 hash answers only md5 (and only where the server stores that same hash): write the plaintext password in ${key}, or use md5 for this role on the server`
          : `a SCRAM verifier answers only SCRAM-SHA-256: write the plaintext password in ${key}, or use scram-sha-256 for this role in the server's pg_hba.conf`,
      }),
  scramVerifierMismatch: (node: string, user: string, key: string) =>
    new PgsplitError('SERVER_LOGIN_FAILED', SqlState.sqlclientUnableToEstablishSqlconnection,
      `pgsplit could not log in to server ${node} as "${user}": the server's SCRAM verifier for the role has another salt or iteration count than ${key}, ` +
      'so SCRAM pass-through cannot work', {
        hint: `copy the role's verifier into ${key}: SELECT rolpassword FROM pg_authid WHERE rolname = '${user.replace(/'/g, "''")}' on the primary ` +
          '(replicas have the same), or write the plaintext password there; then reload pgsplit',
      }),
  terminatedByAdmin: (id: number) =>
    new PgsplitError('TERMINATED', SqlState.adminShutdown,
      `terminating connection due to administrator command: KILL ${id} in the pgsplit admin console`, { severity: 'FATAL' }),
  /** A Parse under a name the client already prepared (PostgreSQL's own message and SQLSTATE). */
  preparedStatementExists: (name: string) =>
    new PgsplitError('STATEMENT_EXISTS', SqlState.duplicatePreparedStatement,
      `prepared statement "${name}" already exists`, { hint: 'Close it (or DEALLOCATE it) before preparing another statement under the same name' }),
  /** No server connection of a pool came free within pool.max_client_wait. */
  poolWaitTimeout: (pool: string, waitedMs: number, size: number) =>
    new PgsplitError('POOL_WAIT_TIMEOUT', SqlState.tooManyConnections,
      `no server connection of pool ${pool} came free within ${waitedMs} ms (pool.max_client_wait): all ${size} (pool.size) were busy`, {
        hint: 'run shorter transactions, raise pool.size (the server must allow that many connections), or raise pool.max_client_wait',
      }),
  internal: (why: string) =>
    new PgsplitError('INTERNAL', SqlState.internalError, `pgsplit internal error: ${why}`, { severity: 'FATAL' }),
};
