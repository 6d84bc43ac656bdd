import { request } from 'node:https';

export interface HttpsAnswer {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: string;
}

/**
 * One HTTPS request as a client outside fleetpki sends it (a device, a script, a forging site): its own
 * headers, an optional client certificate, the server checked against `ca`; the body read as text.
 */
export function httpsCall(url: string, options: { ca: Buffer; method?: string; body?: string; headers?: Record<string, string>; cert?: Buffer; key?: Buffer }): Promise<HttpsAnswer> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: options.method ?? (options.body === undefined ? 'GET' : 'POST'), ca: options.ca, headers: options.headers ?? {}, ...(options.cert ? { cert: options.cert, key: options.key } : {}) }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end(options.body);
  });
}
