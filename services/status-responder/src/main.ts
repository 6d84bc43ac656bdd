import { isFleetError, loadConfig } from '@fleetpki/core';
import { createStatusRuntime } from './app.js';

// Thin entry point: OCSP and CRLs for this site on its status port.
try {
  const config = loadConfig();
  const runtime = await createStatusRuntime(config);
  await runtime.app.listen({ host: '127.0.0.1', port: config.sites[config.site].statusPort });
  const stop = async () => {
    await runtime.close();
    process.exit(0);
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
} catch (err) {
  console.error(isFleetError(err) ? `status-responder: ${err.code}: ${err.message}` : err);
  process.exit(1);
}
