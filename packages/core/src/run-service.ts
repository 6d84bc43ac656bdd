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
   * SIGHUP (`systemctl reload`): read the TLS material again and serve it to new connections; false
   * when the service serves plain HTTP (there is no pair to read). Throws (a FleetError naming what is
   * wrong) when the new material is unusable; the service keeps serving what it had.
   */
  reload?(): boolean;
}

export async function runService(name: SecretReadingService, start: (config: FleetConfig) => Promise<RunningService>): Promise<void> {
  // Installed before anything starts: Node's default for SIGHUP ends the process, and a `systemctl
  // reload` during a slow start (HSM login, pools) must not kill a unit that systemd would not restart.
  let running: RunningService | undefined;
  process.on('SIGHUP', () => {
    if (!running) return console.error(`${name}: SIGHUP while starting: ignored (the pair is read as the service starts; send it again once it is up)`);
    if (!running.reload) return console.error(`${name}: SIGHUP: nothing to reload`);
    try {
      console.error(running.reload() ? `${name}: TLS material reloaded: new connections get it` : `${name}: SIGHUP: nothing to reload (this service serves plain HTTP)`);
    } catch (err) {
      console.error(`${name}: reload refused, still serving the previous certificate: ${isFleetError(err) ? `${err.code}: ${err.message}` : String(err)}`);
    }
  });
  try {
    const config = loadConfig();
    checkServiceCredentials(config, name);
    const started = await start(config);
    running = started;
    const stop = async () => {
      await started.close();
      process.exit(0);
    };
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
    // A parent that started us with an IPC channel (the start-up benchmark, a supervisor) learns the
    // moment we are ready, the same moment for every service, without knowing how each one serves.
    process.send?.({ fleetpkiReady: name });
  } catch (err) {
    console.error(isFleetError(err) ? `${name}: ${err.code}: ${err.message}` : err);
    process.exit(1);
  }
}
