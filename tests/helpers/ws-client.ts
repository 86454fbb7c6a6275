import WebSocket from 'ws';

/** A test client of a WebSocket server: every text frame it receives, in order. */
export interface WsClient {
  frames: string[];
  ws: WebSocket;
  /** Resolves once open and `messages` are sent. */
  opened: Promise<void>;
  /** Resolves with the close code. */
  closed: Promise<number>;
}

/** Connects to `url`, sends `messages` on open and collects frames; errors show up as `closed`. */
export function openWsClient(url: string, messages: readonly string[] = []): WsClient {
  const ws = new WebSocket(url);
  const frames: string[] = [];
  ws.on('message', (d: Buffer) => frames.push(d.toString()));
  const opened = new Promise<void>((resolve) =>
    ws.on('open', () => {
      for (const m of messages) ws.send(m);
      resolve();
    }),
  );
  const closed = new Promise<number>((resolve) => ws.on('close', (code: number) => resolve(code)));
  ws.on('error', () => undefined);
  return { frames, ws, opened, closed };
}
