// Lint rules, including the architecture's boundaries (ARCHITECTURE.md, Layout): one package owns each
// outside system, and services never import each other. A boundary is checked here, not by memory.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

/** Which package alone may import which libraries. */
const OWNERS = {
  'packages/store': ['pg', 'pg-copy-streams'],
  'packages/hsm': ['graphene-pk11', 'pkcs11js'],
  'packages/queue': ['bullmq', 'ioredis'],
};
const SERVICES = ['issuer-api', 'batch-worker', 'status-responder', 'daemons', 'crl-publisher', 'cli'];

function restrictedFor(area) {
  const paths = [];
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
  ...areas.map((area) => ({ files: [`${area}/**/*.ts`], rules: { 'no-restricted-imports': restrictedFor(area) } })),
  { files: ['**/*.js'], languageOptions: { globals: { process: 'readonly', console: 'readonly' } } },
);
