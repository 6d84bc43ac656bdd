import { loadConfig, type FleetConfig } from './config.js';
import { checkServiceCredentials, type SecretReadingService } from './config/service-secrets.js';
import { isFleetError } from './errors.js';

/**
 * The life of a service process, written once: read the configuration, start, stop cleanly on SIGTERM
 * or SIGINT, and exit 1 with the stable error code when starting fails (so supervisors and tests see
 * why at once).
 */
export interface RunningService {
  close(): Promise<void>;
  /**
   * SIGHUP (`systemctl reload`): read the TLS material again and serve it to new connections. Throws
   * (a FleetError naming what is wrong) when the new material is unusable; the service keeps serving
   * what it had.
   */
  reload?(): void;
}

export async function runService(name: SecretReadingService, start: (config: FleetConfig) => Promise<RunningService>): Promise<void> {
  try {
    const config = loadConfig();
    checkServiceCredentials(config, name);
    const running = await start(config);
    const stop = async () => {
      await running.close();
      process.exit(0);
    };
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
    process.on('SIGHUP', () => {
      if (!running.reload) return console.error(`${name}: SIGHUP: nothing to reload`);
      try {
        running.reload();
        console.error(`${name}: TLS material reloaded: new connections get it`);
      } catch (err) {
        console.error(`${name}: reload refused, still serving the previous certificate: ${isFleetError(err) ? `${err.code}: ${err.message}` : String(err)}`);
      }
    });
    // A parent that started us with an IPC channel (the start-up benchmark, a supervisor) learns the
    // moment we are ready, the same moment for every service, without knowing how each one serves.
    process.send?.({ fleetpkiReady: name });
  } catch (err) {
    console.error(isFleetError(err) ? `${name}: ${err.code}: ${err.message}` : err);
    process.exit(1);
  }
}
