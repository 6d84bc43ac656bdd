/**
 * Garbage CMP from its own process and its own source addresses (127.0.0.2, 127.0.0.3, ...: the API's
 * per-address budget applies to them, not to the honest clients it shares a machine with), paced at a
 * rate, at most a number in flight per address. Each request would cost the API a secret derived in the
 * HSM, PBM iterations and an HSM-signed error if nothing bounded it. Prints "flooding" once it runs,
 * and on SIGTERM {"requests", "seconds", "by_answer"}.
 * Usage: node --import tsx scripts/lib/cmp-flood.ts URL RATE ADDRESSES IN_FLIGHT HEX_REQUEST...
 */
import { Agent, request } from 'node:http';

const [url, rateText, addressesText, inFlightText, ...hexBodies] = process.argv.slice(2);
const bodies = hexBodies.map((h) => Buffer.from(h, 'hex'));
const target = new URL(url!);
const rate = Number(rateText);
const addresses = Array.from({ length: Number(addressesText) }, (_, i) => `127.0.0.${i + 2}`);
const maxInFlight = Number(inFlightText);
const agents = new Map(addresses.map((a) => [a, new Agent({ keepAlive: true, maxSockets: maxInFlight, localAddress: a })]));
const inFlight = new Map(addresses.map((a) => [a, 0]));
const byAnswer = new Map<string, number>();
let requests = 0;
let turn = 0;
const started = performance.now();

const count = (kind: string) => byAnswer.set(kind, (byAnswer.get(kind) ?? 0) + 1);

function send(address: string): void {
  const body = bodies[requests % bodies.length]!;
  requests++;
  inFlight.set(address, inFlight.get(address)! + 1);
  const req = request({ host: target.hostname, port: target.port, path: target.pathname, method: 'POST', agent: agents.get(address)!, headers: { 'content-type': 'application/pkixcmp', 'content-length': body.length } }, (res) => {
    const chunks: Buffer[] = [];
    res.on('data', (c: Buffer) => chunks.push(c));
    res.on('end', () => {
      inFlight.set(address, inFlight.get(address)! - 1);
      // 200: a CMP error message (signed by the API's CMP key); 429: refused before anything was read.
      if (res.statusCode === 429) count(`429 ${(/"code":"([A-Z_]+)"/.exec(Buffer.concat(chunks).toString('utf8')) ?? [])[1] ?? ''}`.trim());
      else count(res.statusCode === 200 ? '200 cmp error' : `http ${res.statusCode}`);
    });
  });
  req.on('error', () => {
    inFlight.set(address, inFlight.get(address)! - 1);
    count('connection error');
  });
  req.end(body);
}

// Every 10 ms, the share of the rate due, round-robin over the addresses, skipping a full one.
const due = rate / 100;
let carry = 0;
const timer = setInterval(() => {
  carry += due;
  for (; carry >= 1; carry--) {
    const address = addresses[turn++ % addresses.length]!;
    if (inFlight.get(address)! < maxInFlight) send(address);
    else count('not sent (in flight)');
  }
}, 10);

// The parent starts its clock once the flood runs (a loaded machine takes seconds to start a process).
console.log('flooding');

process.on('SIGTERM', () => {
  clearInterval(timer);
  const seconds = (performance.now() - started) / 1000;
  console.log(JSON.stringify({ requests, seconds: Number(seconds.toFixed(2)), by_answer: Object.fromEntries(byAnswer) }));
  for (const agent of agents.values()) agent.destroy();
  process.exit(0);
});
