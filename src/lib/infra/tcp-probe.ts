import { connect } from 'node:net';

/**
 * Sends one request over a raw TCP connection and judges the reply: `verdict` sees the text so far
 * (and whether the server closed) and returns true or false once it can tell, null to read on.
 * Any error, or no verdict within timeoutMs, is false. For readiness checks of servers whose client
 * we do not otherwise load (Redis PING, ZooKeeper's four-letter words).
 */
export function tcpProbe(host: string, port: number, request: string, timeoutMs: number, verdict: (reply: string, ended: boolean) => boolean | null): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    let reply = '';
    const finish = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => finish(false));
    socket.once('error', () => finish(false));
    socket.once('connect', () => socket.write(request));
    socket.on('data', (chunk: Buffer) => {
      reply += chunk.toString('latin1');
      const ok = verdict(reply, false);
      if (ok !== null) finish(ok);
    });
    socket.once('end', () => finish(verdict(reply, true) ?? false));
  });
}
