import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { UserError } from '../../src/core/errors';
import { loadProject } from '../../src/core/project/projectManifest';
import { scaffoldProject, type ScaffoldOptions } from '../../src/core/scaffold/scaffold';
import { snapshotTree, tempDir } from '../helpers/env';

function options(dir: string, extra: Partial<ScaffoldOptions> = {}): ScaffoldOptions {
  return { dir, language: 'assemblyscript', platform: 'istio', platformVersion: '1.28.x', rootId: 'add_header', name: 'my-filter', install: false, ...extra };
}

describe('scaffold', () => {
  it('creates an AssemblyScript project with the chosen root id, manifest and wasme runtime config', async () => {
    const dir = path.join(tempDir(), 'f');
    const result = await scaffoldProject(options(dir, { rootId: 'my_root' }));
    assert.deepEqual(result.kept, []);
    const project = await loadProject(dir);
    assert.equal(project.manifest.language, 'assemblyscript');
    assert.equal(project.manifest.sdk, 'modern');
    assert.equal(project.manifest.rootId, 'my_root');
    assert.deepEqual(project.runtimeConfig, { type: 'envoy_proxy', abiVersions: ['v0.2.1'], config: { rootIds: ['my_root'] } });
    const source = await fs.readFile(path.join(dir, 'assembly', 'index.ts'), 'utf8');
    assert.match(source, /registerRootContext\([\s\S]*"my_root"\);/);
    assert.match(source, /@gcoredev\/proxy-wasm-sdk-as/);
    const pkg = JSON.parse(await fs.readFile(path.join(dir, 'package.json'), 'utf8'));
    assert.equal(pkg.devDependencies.assemblyscript, '0.28.20');
    assert.ok((await fs.readdir(dir)).includes('.gitignore'));
  });

  it('creates the wasme flavour with the wasme-era compiler and SDK', async () => {
    const dir = path.join(tempDir(), 'f');
    await scaffoldProject(options(dir, { sdk: 'wasme', platformVersion: '1.9.x' }));
    const pkg = JSON.parse(await fs.readFile(path.join(dir, 'package.json'), 'utf8'));
    assert.equal(pkg.devDependencies['@solo-io/proxy-runtime'], '0.1.8');
    assert.equal(pkg.devDependencies.assemblyscript, '0.14.9');
    assert.match(await fs.readFile(path.join(dir, 'assembly', 'index.ts'), 'utf8'), /@solo-io\/proxy-runtime\/proxy/);
  });

  for (const language of ['rust', 'tinygo', 'cpp'] as const) {
    it(`creates a ${language} project that says how it builds`, async () => {
      const dir = path.join(tempDir(), 'f');
      const result = await scaffoldProject(options(dir, { language }));
      assert.equal(result.installed, false);
      const project = await loadProject(dir);
      assert.ok(project.manifest.build.command?.length);
      const files = await fs.readdir(dir);
      assert.ok(files.some((f) => /Cargo\.toml|go\.mod|Makefile/.test(f)));
    });
  }

  it('refuses a non-empty folder unless forced, and then keeps the user\'s files', async () => {
    const dir = tempDir();
    await fs.writeFile(path.join(dir, 'README.md'), 'my notes');
    const before = await snapshotTree(dir);
    await assert.rejects(scaffoldProject(options(dir)), (err: unknown) => {
      assert.ok(err instanceof UserError);
      assert.match(err.message, /is not empty \(README\.md\)/);
      assert.match(err.hint ?? '', /--force/);
      return true;
    });
    assert.deepEqual(await snapshotTree(dir), before);
    const result = await scaffoldProject(options(dir, { force: true }));
    assert.deepEqual(result.kept, ['README.md']);
    assert.equal(await fs.readFile(path.join(dir, 'README.md'), 'utf8'), 'my notes');
    assert.ok(result.written.includes('wasm-filter.json'));
  });

  it('refuses SDK and platform combinations whose ABI the proxy would not load', async () => {
    const dir = path.join(tempDir(), 'f');
    await assert.rejects(scaffoldProject(options(dir, { platformVersion: '1.8.x' })), /istio 1\.8\.x loads proxy-wasm ABI 0\.2\.0 only[\s\S]*/);
    await assert.rejects(scaffoldProject(options(dir, { platformVersion: '1.8.x' })), (err: unknown) => /--sdk wasme/.test((err as UserError).hint ?? ''));
    await assert.rejects(scaffoldProject(options(dir, { platform: 'istio', platformVersion: '2.99' })), /not a platform version this tool knows/);
    await assert.rejects(scaffoldProject(options(dir, { name: 'Bad Name' })), /not a valid filter name/);
    await assert.rejects(scaffoldProject(options(dir, { rootId: 'a"b' })), /not a valid root id/);
    await assert.rejects(fs.access(dir), 'nothing was created');
  });
});
