import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';

export interface HttpResponse {
  status: number;
  body: string;
}

/**
 * GET (http or https) without keep-alive. An idle kept-alive connection holds up ClickHouse's shutdown for its whole
 * keep-alive timeout, so probes must not leave one behind (fetch() would).
 */
export function httpGet(url: URL, opts: { timeoutMs: number; headers?: Record<string, string> }): Promise<HttpResponse> {
  return new Promise((resolve, reject) => {
    const request = url.protocol === 'https:' ? httpsRequest : httpRequest;
    const req = request(url, { method: 'GET', agent: false, headers: opts.headers, timeout: opts.timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer from ${url.host} within ${opts.timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}
