/**
 * The test suite's own deployment on the local sites (scripts/run-tests.sh):
 *   sweep  remove what killed test runs left behind (unconnected test databases, orphaned test tokens)
 *   drop   remove this run's database, tokens and queue keys (FLEETPKI_PG_DATABASE, FLEETPKI_HSM_TOKEN_PREFIX)
 */
import { loadConfig } from '@fleetpki/core';
import { dropDeployment, sweepTestDeployments } from '@fleetpki/sites';

const command = process.argv[2];
const config = loadConfig();
const log = (line: string) => console.log(`test deployment: ${line}`);
if (command === 'sweep') await sweepTestDeployments(config, log);
else if (command === 'drop') await dropDeployment(config, log);
else {
  console.error('usage: test-deployment.ts sweep|drop');
  process.exit(2);
}
