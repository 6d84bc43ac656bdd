import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { entryPoint, moduleNodeFlags, runningRuntime, runtimeSetting, SOURCE_NODE_FLAGS } from './runtime.js';

function layout(files: string[]): string {
  const root = mkdtempSync(join(tmpdir(), 'fleetpki-runtime-'));
  for (const file of files) {
    mkdirSync(join(root, file, '..'), { recursive: true });
    writeFileSync(join(root, file), '');
  }
  return root;
}

describe('how fleetpki programs run', () => {
  it('FLEETPKI_RUNTIME chooses; unset, the runtime of the code running now', () => {
    assert.equal(runtimeSetting({ FLEETPKI_RUNTIME: 'compiled' }), 'compiled');
    assert.equal(runtimeSetting({ FLEETPKI_RUNTIME: 'source' }), 'source');
    assert.equal(runtimeSetting({}), runningRuntime);
    // This test runs from sources.
    assert.equal(runningRuntime, 'source');
  });

  it('refuses an unknown runtime, naming the variable', () => {
    assert.throws(() => runtimeSetting({ FLEETPKI_RUNTIME: 'tsx' }), { code: 'CONFIG_INVALID', message: /FLEETPKI_RUNTIME must be one of compiled, source \(got "tsx"\)/ });
  });

  it('a compiled program is node and its built main, with no loader and no source condition', () => {
    const root = layout(['services/issuer-api/dist/main.js', 'services/issuer-api/src/main.ts']);
    assert.deepEqual(entryPoint(root, 'issuer-api', 'compiled'), [join(root, 'services/issuer-api/dist/main.js')]);
    assert.deepEqual(entryPoint(root, 'issuer-api', 'source'), [...SOURCE_NODE_FLAGS, join(root, 'services/issuer-api/src/main.ts')]);
  });

  it('a program missing in that runtime is named at once, with what to do', () => {
    const sourcesOnly = layout(['services/cli/src/main.ts']);
    assert.throws(() => entryPoint(sourcesOnly, 'cli', 'compiled'), { code: 'CONFIG_INVALID', message: /cli cannot start from the build: .*dist\/main\.js is missing; run `pnpm build` first/ });
    const installation = layout(['services/cli/dist/main.js']);
    assert.throws(() => entryPoint(installation, 'cli', 'source'), { code: 'CONFIG_INVALID', message: /an installation holds only the build/ });
  });

  it('a child module runs as its sibling does: tsx for a .ts file, nothing for a .js file', () => {
    assert.deepEqual(moduleNodeFlags('/x/src/hsm-process-child.ts'), [...SOURCE_NODE_FLAGS]);
    assert.deepEqual(moduleNodeFlags('/x/dist/hsm-process-child.js'), []);
  });
});
