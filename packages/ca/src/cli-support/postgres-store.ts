import { appendAuditEvents, manufacturerExists, type Pool } from '@fleetpki/store';
import type { InstallationStore } from './store.js';

/** The installation port on the site's database: the only file of cli-support/ that calls the store. */
export function postgresInstallationStore(pool: Pool): InstallationStore {
  return {
    manufacturerExists: (id) => manufacturerExists(pool, id),
    countActiveAdministrators: async () => (await pool.query<{ n: number }>("SELECT count(*)::int AS n FROM people WHERE role = 'administrator' AND disabled_at IS NULL")).rows[0]!.n,
    appendAudit: (event) => appendAuditEvents(pool, [event]),
  };
}
