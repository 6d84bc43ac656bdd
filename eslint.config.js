// Lint rules, including the architecture's boundaries (../shared/ARCHITECTURE.md, Layout): one package owns each
// outside system, and services never import each other. A boundary is checked here, not by memory.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

/** Which package alone may import which libraries. */
const OWNERS = {
  'packages/store': ['pg', 'pg-copy-streams'],
  'packages/hsm': ['graphene-pk11', 'pkcs11js'],
  'packages/queue': ['bullmq', 'ioredis'],
  'packages/metrics': ['prom-client'],
};
const SERVICES = ['issuer-api', 'batch-worker', 'status-responder', 'daemons', 'site-agent', 'cli'];

/**
 * ca is the only door to the database (issue 37): services, the CLI and ca's capability code call ca,
 * and in ca only each capability's postgres-store.ts (its one PostgreSQL adapter) imports store values.
 * Types may cross (a port's record shapes are the store's).
 */
const STORE_DOOR = { name: '@fleetpki/store', allowTypeImports: true, message: 'call @fleetpki/ca (services, CLI) or your capability\'s ports (ca): in ca only <capability>/postgres-store.ts imports store values' };

function restrictedFor(area, storeDoor = false) {
  const paths = storeDoor ? [STORE_DOOR] : [];
  for (const [owner, libs] of Object.entries(OWNERS)) {
    if (owner === area) continue;
    for (const name of libs) paths.push({ name, message: `only ${owner} may import ${name}; use its exports` });
  }
  const patterns = [];
  if (area.startsWith('services/') || area.startsWith('packages/')) {
    const self = area.startsWith('services/') ? area.slice('services/'.length) : undefined;
    const others = SERVICES.filter((s) => s !== self);
    patterns.push({ group: others.map((s) => `@fleetpki/${s}`), message: 'services never import each other; share code through packages/' });
    patterns.push({ group: ['**/services/*/**', '../../services/**'], message: 'import a package, not another service' });
  }
  return ['error', { paths, patterns }];
}

const areas = [...Object.keys(OWNERS), ...SERVICES.map((s) => `services/${s}`)];

export default tseslint.config(
  { ignores: ['**/node_modules/**', '**/dist/**', '.fleetpki/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
      'no-restricted-imports': restrictedFor('elsewhere'),
    },
  },
  // packages other than the owners, plus scripts and tests: none of the owned libraries
  { files: ['packages/**/*.ts'], rules: { 'no-restricted-imports': restrictedFor('packages/any') } },
  ...areas.map((area) => ({ files: [`${area}/**/*.ts`], rules: { 'no-restricted-imports': restrictedFor(area, area.startsWith('services/')) } })),
  // ca behind its door: capability code reaches PostgreSQL through its ports only.
  { files: ['packages/ca/src/**/*.ts'], ignores: ['packages/ca/src/*/postgres-store.ts', 'packages/ca/src/**/*.test.ts'], rules: { 'no-restricted-imports': restrictedFor('packages/any', true) } },
  // The justified exception: `fleetpki db migrate` runs the store's migrations runner on a pool of its own.
  { files: ['services/cli/src/commands/db.ts'], rules: { 'no-restricted-imports': restrictedFor('services/cli') } },
  // A file over 350 lines is two jobs or needs a reason in its head comment (an eslint-disable of
  // max-lines with the reason after "--"); tests may be longer.
  { files: ['packages/**/*.ts', 'services/**/*.ts', 'scripts/**/*.ts'], ignores: ['**/*.test.ts'], rules: { 'max-lines': ['error', { max: 350 }] } },
  { files: ['**/*.js'], languageOptions: { globals: { process: 'readonly', console: 'readonly' } } },
);
