import type net from 'node:net';
import type { Session } from './session.js';

/**
 * A client socket's events reach its session through functions shared by every session, which find the
 * session on the socket: four closures and the context they keep per session came to some 300 bytes of
 * every idle client.
 */
const SESSION = Symbol('pgsplit.session');
type ServedSocket = net.Socket & { [SESSION]?: Session };

/** From now on the socket's 'close' and 'error' end `session` (Session.start, before its first server). */
export function watchClient(socket: net.Socket, session: Session): void {
  (socket as ServedSocket)[SESSION] = session;
  socket.on('close', onClientClose);
  socket.on('error', onClientError);
}

/** From now on the socket's bytes and 'drain' go to its session (watchClient first). */
export function readClient(socket: net.Socket): void {
  socket.on('data', onClientData);
  socket.on('drain', onClientDrain);
}

function onClientClose(this: ServedSocket): void {
  this[SESSION]?.close();
}

function onClientError(this: ServedSocket, e: Error): void {
  this[SESSION]?.clientError(e);
}

function onClientData(this: ServedSocket, chunk: Buffer): void {
  this[SESSION]?.onClientData(chunk);
}

function onClientDrain(this: ServedSocket): void {
  this[SESSION]?.resumeServers();
}
