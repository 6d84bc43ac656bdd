import { parentPort } from 'node:worker_threads';
import { generateDeviceKeys } from '@fleetpki/x509';
import { generatedEui64, type GenerateRequest } from './generate.js';

// One chunk of NDJSON lines per request (generate.ts hands out the ranges).
parentPort?.on('message', (request: GenerateRequest) => {
  let text = '';
  for (let i = 0; i < request.count; i++) {
    const keys = generateDeviceKeys(request.roles.length).map((k, r) => ({
      role: request.roles[r],
      ...(request.keyForm === 'csr' ? { csr: k.csr.toString('base64') } : { publicKey: k.publicKeySpki.toString('base64') }),
    }));
    text += JSON.stringify({ eui64: generatedEui64(request.euiPrefix, request.first + i), deviceType: request.deviceType, keys }) + '\n';
  }
  parentPort?.postMessage(text);
});
