import { runService } from '@fleetpki/core';
import { createStatusRuntime } from './app.js';

// Thin entry point: OCSP and CRLs for this site on its status port.
await runService('status-responder', async (config) => {
  const runtime = await createStatusRuntime(config);
  await runtime.app.listen({ host: config.sites[config.site].host, port: config.sites[config.site].statusPort });
  return runtime;
});
