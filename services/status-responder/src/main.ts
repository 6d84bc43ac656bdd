import { runService } from '@fleetpki/core';
import { createStatusRuntime } from './app.js';

// Thin entry point: OCSP and CRLs for this site on its status port (HTTPS with tls.status), and on its
// plain-HTTP port for OCSP and CRLs when one is configured (sites.<id>.status.httpPort).
await runService('status-responder', async (config) => {
  const runtime = await createStatusRuntime(config);
  const site = config.sites[config.site];
  await runtime.app.listen({ host: site.host, port: site.statusPort });
  if (runtime.plainApp) await runtime.plainApp.listen({ host: site.host, port: site.statusHttpPort! });
  return runtime;
});
