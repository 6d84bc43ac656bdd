/**
 * A flood of OCSP requests for serials nobody issued, from its own process and its own source address
 * (127.0.0.2: the responder's per-address budget applies to it, not to the relying parties it shares a
 * machine with in the benchmark). Runs until SIGTERM, then prints {"requests", "seconds", "by_status"}.
 * Each such request would cost the responder an HSM signature if it were not limited.
 * Usage: node --import tsx scripts/lib/ocsp-flood.ts URL HEX_REQUEST... (requests as hex DER)
 */
import { Agent, request } from 'node:http';

const [url, ...hexBodies] = process.argv.slice(2);
const bodies = hexBodies.map((h) => Buffer.from(h, 'hex'));
const target = new URL(url!);
const agent = new Agent({ keepAlive: true, maxSockets: 32, localAddress: '127.0.0.2' });
const byKind = new Map<string, number>();
let requests = 0;
let running = true;
const started = performance.now();

function once(): Promise<void> {
  const body = bodies[Math.floor(Math.random() * bodies.length)]!;
  return new Promise((resolve) => {
    const req = request({ host: target.hostname, port: target.port, path: target.pathname, method: 'POST', agent, headers: { 'content-type': 'application/ocsp-request', 'content-length': body.length } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const der = Buffer.concat(chunks);
        // responseStatus tryLater (3) is the whole answer 30 03 0a 01 03; anything longer was signed.
        const kind = res.statusCode !== 200 ? `http ${res.statusCode}` : der.equals(Buffer.from('30030a0103', 'hex')) ? 'tryLater' : 'signed';
        byKind.set(kind, (byKind.get(kind) ?? 0) + 1);
        requests++;
        resolve();
      });
    });
    req.on('error', () => {
      byKind.set('error', (byKind.get('error') ?? 0) + 1);
      resolve();
    });
    req.end(body);
  });
}

process.on('SIGTERM', () => {
  running = false;
});
await Promise.all(
  Array.from({ length: 32 }, async () => {
    while (running) await once();
  }),
);
const seconds = (performance.now() - started) / 1000;
console.log(JSON.stringify({ requests, seconds: Number(seconds.toFixed(2)), by_status: Object.fromEntries(byKind) }));
agent.destroy();
