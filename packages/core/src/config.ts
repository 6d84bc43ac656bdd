// The configuration, by part (config/): the resolved shape every part reads (types), the one schema of
// the file (schema), the file (file), the environment's overrides (env), the topology (sites), loading (load).
export * from './config/types.js';
export { deploymentSchema, secretSourceSchema, type Deployment, type DeploymentInput } from './config/schema.js';
export { DEFAULT_CONFIG_FILE, configFilePath, readConfigFile } from './config/file.js';
export { envSchema, type FleetEnv } from './config/env.js';
export { DEFAULT_PKCS11_MODULE, MAX_WORKER_INSTANCES } from './config/sites.js';
export { secretFile } from './config/sources.js';
export { SECRET_READING_SERVICES, checkServiceCredentials, credentialNameOf, serviceSecretFiles, type SecretReadingService, type SecretRead } from './config/service-secrets.js';
export { INSTALLATION_MARKER, findRepoRoot, loadConfig, loadDeployment } from './config/load.js';
export { EXAMPLE_CONFIG } from './config/example.js';
export { describeConfig, renderConfigFile } from './config/describe.js';
