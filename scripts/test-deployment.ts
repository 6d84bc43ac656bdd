/**
 * The test suite's own deployment on the local sites (scripts/run-tests.sh):
 *   sweep  remove what killed test runs left behind (unconnected test databases, orphaned test tokens and folders)
 *   drop   remove this run's database, tokens, queue keys and folder (FLEETPKI_PG_DATABASE,
 *          FLEETPKI_HSM_TOKEN_PREFIX, FLEETPKI_DEPLOYMENT_DIR)
 */
import { loadConfig } from '@fleetpki/core';
import { dropDeployment, removeTestDeploymentDir, sweepTestDeployments } from '@fleetpki/sites';

const command = process.argv[2];
const config = loadConfig();
const log = (line: string) => console.log(`test deployment: ${line}`);
if (command === 'sweep') await sweepTestDeployments(config, log);
else if (command === 'drop') {
  // The folder goes even when the database cannot be dropped (clusters down): the next run's sweep drops that.
  try {
    await dropDeployment(config, log);
  } finally {
    removeTestDeploymentDir(config, log);
  }
} else {
  console.error('usage: test-deployment.ts sweep|drop');
  process.exit(2);
}
