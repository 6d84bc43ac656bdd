/**
 * One process of a multi-process raw HSM signing measurement (bench-batch runs several at once, the
 * same count as its workers): prints {"rate": signatures/s} on stdout.
 */
import { parseArgs } from 'node:util';
import { loadConfig } from '@fleetpki/core';
import { measureRawHsmRate } from './lib/bench.js';

const { values } = parseArgs({ options: { sessions: { type: 'string', default: '4' }, seconds: { type: 'string', default: '3' } } });
const rate = await measureRawHsmRate(loadConfig({ ...process.env, FLEETPKI_SITE: 'a' }), { sessions: Number(values.sessions), seconds: Number(values.seconds) });
console.log(JSON.stringify({ rate }));
