import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { before, describe, it } from 'node:test';
import { buildProject } from '../../src/core/build/build';
import { CancelledError } from '../../src/core/errors';
import { LocalStore } from '../../src/core/store/localStore';
import { requireTool, runCli, snapshotTree, startRun, tempDir } from '../helpers/env';

/** Both AssemblyScript flavours, scaffolded and installed once for the whole file (npm install is slow). */
const flavours = [
  { sdk: 'modern', platformVersion: '1.28.x', abiExport: 'proxy_abi_version_0_2_1', abiVersions: ['v0.2.1'], name: 'modern-filter' },
  { sdk: 'wasme', platformVersion: '1.9.x', abiExport: 'proxy_abi_version_0_2_0', abiVersions: ['v0-4689a30309abf31aee9ae36e73d34b1bb182685f', 'v0.2.0'], name: 'wasme-filter' },
] as const;

const home = tempDir('wfs-as-');
const projects = new Map<string, string>();

describe('AssemblyScript filters, end to end with the real compilers', () => {
  before(async () => {
    await Promise.all(
      flavours.map(async (f) => {
        const dir = path.join(home, f.name);
        const result = await runCli(['init', dir, '--yes', '--sdk', f.sdk, '--platform', 'istio', '--platform-version', f.platformVersion, '--name', f.name], { home });
        assert.equal(result.code, 0, result.stderr);
        projects.set(f.sdk, dir);
      }),
    );
  });

  for (const f of flavours) {
    it(`${f.sdk}: scaffolds, builds, validates and lists; the module exports ${f.abiExport}`, async () => {
      const dir = projects.get(f.sdk)!;
      const build = await runCli(['build', dir, '-t', `alice/${f.name}:v1`, '--json'], { home });
      assert.equal(build.code, 0, build.stderr);
      const result = JSON.parse(build.stdout);
      assert.equal(result.reference, `webassemblyhub.io/alice/${f.name}:v1`);
      assert.deepEqual(result.abiVersions, f.abiVersions);
      assert.deepEqual(result.rootIds, ['add_header']);

      const wasm = await fs.readFile(path.join(dir, 'build', 'filter.wasm'));
      const exports = WebAssembly.Module.exports(new WebAssembly.Module(wasm)).map((e) => e.name);
      assert.ok(exports.includes(f.abiExport), `exports ${f.abiExport}`);
      assert.ok(exports.includes('malloc') || exports.includes('proxy_on_memory_allocate'));
      assert.ok(exports.includes('proxy_on_response_headers'));

      const list = await runCli(['list'], { home });
      const row = list.stdout.split('\n').find((l) => l.startsWith(`webassemblyhub.io/alice/${f.name} `));
      assert.ok(row, list.stdout);
      const [, tag, size, unit, sha] = row!.split(/\s+/);
      assert.equal(tag, 'v1');
      assert.match(`${size} ${unit}`, /^\d+(\.\d+)? kB$/);
      assert.equal(sha, result.wasmDigest.slice(7, 15), 'SHA is the wasm layer digest');
    });
  }

  for (const f of flavours) {
    it(`${f.sdk}: the tutorial check without a cluster: wasm-filter run answers with hello: world!, and with --config`, async () => {
      const dir = projects.get(f.sdk)!;
      for (const [args, expected] of [
        [[], 'world!'],
        [['--config', 'tanjunchen20'], 'tanjunchen20'],
      ] as const) {
        const run = await startRun([dir, ...args], { home });
        try {
          // Several requests: the filter must keep answering, not just once (the wasme-era SDK freed the
          // configuration string after the first response until the template stopped using ?: there).
          for (let i = 0; i < 5; i++) {
            const response = await fetch(`${run.url}/`);
            assert.equal(response.status, 200, `request ${i + 1}`);
            assert.equal(response.headers.get('hello'), expected);
            const echoed = JSON.parse(await response.text());
            assert.equal(echoed.path, '/', 'the built-in echo upstream answered');
          }
        } finally {
          const stopped = await run.stop();
          assert.match(stopped.output, /Stopped\./);
        }
      }
    });
  }

  for (const f of flavours) {
    it(`${f.sdk}: the template's own filter tests pass; a wrong expectation fails with TAP and JUnit`, async () => {
      const dir = projects.get(f.sdk)!;
      const passing = await runCli(['test', dir], { home });
      assert.equal(passing.code, 0, passing.stdout + passing.stderr);
      assert.match(passing.stdout, /^TAP version 13\n1\.\.4\n/);
      assert.match(passing.stdout, /# pass 4\n# fail 0/);

      const file = path.join(dir, 'wrong.test.yaml');
      await fs.writeFile(file, 'tests:\n  - name: expects the wrong greeting\n    config: bob\n    expect:\n      headers:\n        hello: alice\n      logs: [never logged]\n');
      const junit = path.join(dir, 'junit.xml');
      const failing = await runCli(['test', dir, '--file', file, '--junit', junit], { home });
      assert.equal(failing.code, 1);
      assert.match(failing.stdout, /not ok 1 - expects the wrong greeting\n  ---\n  line: 2\n/);
      assert.match(failing.stdout, /response header \\"hello\\" is \\"bob\\", expected \\"alice\\"/);
      assert.match(failing.stdout, /no log line contains/);
      const xml = await fs.readFile(junit, 'utf8');
      assert.match(xml, /<testsuites tests="1" failures="1"/);
      assert.match(xml, /<failure message="response header &quot;hello&quot; is &quot;bob&quot;, expected &quot;alice&quot;">/);
    });
  }

  it('skopeo reads the images straight from the store (an OCI image layout)', async (t) => {
    if (!(await requireTool('skopeo'))) return t.skip('skopeo is not installed');
    const store = path.join(home, 'store');
    const raw = JSON.parse(execFileSync('skopeo', ['inspect', '--raw', `oci:${store}:webassemblyhub.io/alice/modern-filter:v1`], { encoding: 'utf8' }));
    assert.equal(raw.config.mediaType, 'application/vnd.module.wasm.config.v1+json');
    assert.equal(raw.layers[1].mediaType, 'application/vnd.module.wasm.content.layer.v1+wasm');

    const dir = projects.get('modern')!;
    const build = await runCli(['build', dir, '-t', 'alice/modern-filter:compat', '--variant', 'compat'], { home });
    assert.equal(build.code, 0, build.stderr);
    const inspected = JSON.parse(execFileSync('skopeo', ['inspect', `oci:${store}:webassemblyhub.io/alice/modern-filter:compat`], { encoding: 'utf8' }));
    assert.equal(inspected.Os, 'wasip1');
    assert.equal(inspected.Layers.length, 1);
    const copy = path.join(tempDir(), 'copy');
    execFileSync('skopeo', ['copy', `oci:${store}:webassemblyhub.io/alice/modern-filter:compat`, `dir:${copy}`], { stdio: 'pipe' });
    const layer = await fs.readFile(path.join(copy, inspected.Layers[0].slice(7)));
    const tar = gunzipSync(layer);
    assert.ok(tar.includes(await fs.readFile(path.join(dir, 'build', 'filter.wasm'))), 'plugin.wasm in the layer is the built module');
  });

  it('a broken source gives the compiler\'s error at file:line:column, and the store is unchanged', async () => {
    const dir = projects.get('modern')!;
    const source = path.join(dir, 'assembly', 'index.ts');
    const original = await fs.readFile(source, 'utf8');
    const storeBefore = await snapshotTree(path.join(home, 'store'));
    const broken = original.replace('if (value == "") value = "world!";', 'if (value == "") value = undefinedThing;');
    const line = broken.split('\n').findIndex((l) => l.includes('undefinedThing')) + 1;
    const column = broken.split('\n')[line - 1]!.indexOf('undefinedThing') + 1;
    await fs.writeFile(source, broken);
    try {
      const build = await runCli(['build', dir, '-t', 'alice/broken:v1'], { home });
      assert.equal(build.code, 1);
      assert.match(build.stderr, new RegExp(`assembly/index\\.ts:${line}:${column} - error TS2304: Cannot find name 'undefinedThing'\\.`));
      assert.match(build.stderr, /error: The AssemblyScript compiler \(0\.28\.\d+\) failed: 1 error\./);
      assert.deepEqual(await snapshotTree(path.join(home, 'store')), storeBefore);
    } finally {
      await fs.writeFile(source, original);
    }
  });

  it('builds both compiler generations in one process (as the extension does), and cancels cleanly', async () => {
    // asc 0.28 defines globals that break asc 0.14 in the same realm; each install has its own worker.
    const store = await LocalStore.open(tempDir());
    const modern = await buildProject(projects.get('modern')!, { store, tag: 'mixed/modern:v1' });
    const wasme = await buildProject(projects.get('wasme')!, { store, tag: 'mixed/wasme:v1' });
    const again = await buildProject(projects.get('modern')!, { store, tag: 'mixed/modern:v2' });
    assert.equal(modern.module.abiVersion, '0.2.1');
    assert.equal(wasme.module.abiVersion, '0.2.0');
    assert.equal(again.manifestDigest, modern.manifestDigest, 'a rebuild of unchanged sources is byte-identical');
    const abort = new AbortController();
    const cancelled = buildProject(projects.get('wasme')!, { store, tag: 'mixed/cancelled:v1', signal: abort.signal });
    setTimeout(() => abort.abort(), 50);
    await assert.rejects(cancelled, (err: unknown) => err instanceof CancelledError);
    assert.deepEqual((await store.list()).map((i) => i.reference.repository).sort(), ['mixed/modern', 'mixed/modern', 'mixed/wasme']);
    const after = await buildProject(projects.get('wasme')!, { store, tag: 'mixed/wasme:v2' });
    assert.equal(after.manifestDigest, wasme.manifestDigest, 'the next build after a cancel works');
  });

  it('`wat` shows a stored module as WebAssembly text', async () => {
    const result = await runCli(['wat', 'alice/wasme-filter:v1'], { home });
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /^\(module/);
    assert.match(result.stdout, /\(export "proxy_abi_version_0_2_0"/);
  });
});
