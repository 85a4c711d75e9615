import type { Socket } from 'node:net';
import { BaremigError } from '../errors.js';

/**
 * The file descriptor under a connected TCP socket, for the native page
 * stream (which works on its own dup of it). Node exposes it on the libuv
 * handle (`_handle.fd`) on Unix; it is not public API, so its absence is a
 * clear error rather than a silent fallback.
 */
export function socketFd(s: Socket): number {
  const fd = (s as unknown as { _handle?: { fd?: unknown } })._handle?.fd;
  if (typeof fd !== 'number' || fd < 0) throw new BaremigError('STREAM', `page stream: no file descriptor under the socket (Node ${process.version} on ${process.platform}; baremig's native stream needs Linux)`);
  return fd;
}
