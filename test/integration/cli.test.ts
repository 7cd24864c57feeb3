import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { runCli, snapshotTree, tempDir } from '../helpers/env';
import { filterWat, wat } from '../helpers/wasm';

async function moduleFile(dir: string, name: string, options: Parameters<typeof filterWat>[0] = {}): Promise<string> {
  const file = path.join(dir, name);
  await fs.writeFile(file, await wat(filterWat(options)));
  return file;
}

describe('wasm-filter CLI', () => {
  it('packages a precompiled module, lists, tags, inspects and removes it', async () => {
    const home = tempDir();
    const file = await moduleFile(home, 'filter.wasm');
    const build = await runCli(['build', 'precompiled', file, '-t', 'localhost:5000/team/f:v1', '--root-id', 'add_header'], { home });
    assert.equal(build.code, 0, build.stderr);
    assert.match(build.stdout, /Built localhost:5000\/team\/f:v1 .*ABI 0\.2\.1/);
    assert.equal((await runCli(['tag', 'localhost:5000/team/f:v1', 'alice/f:v2'], { home })).code, 0);
    const inspect = JSON.parse((await runCli(['inspect', 'alice/f:v2', '--json'], { home })).stdout);
    assert.match(inspect.manifestDigest, /^sha256:[a-f0-9]{64}$/);
    assert.match(inspect.wasmDigest, /^sha256:[a-f0-9]{64}$/);
    assert.notEqual(inspect.manifestDigest, inspect.wasmDigest);
    assert.deepEqual(inspect.rootIds, ['add_header']);
    assert.equal(inspect.config.type, 'envoy_proxy');
    const list = await runCli(['list', '--json'], { home });
    assert.deepEqual(JSON.parse(list.stdout).map((i: { familiar: string }) => i.familiar).sort(), ['alice/f:v2', 'localhost:5000/team/f:v1']);
    const rm = await runCli(['rm', 'alice/f:v2', 'localhost:5000/team/f:v1'], { home });
    assert.equal(rm.code, 0, rm.stderr);
    assert.deepEqual(await fs.readdir(path.join(home, 'store', 'blobs', 'sha256')), [], 'no orphaned blob');
    const header = (await runCli(['list'], { home })).stdout.trim();
    assert.equal(header, 'NAME  TAG  SIZE  SHA  UPDATED');
  });

  it('rejects bad references with the reason and exit code 1, writing nothing', async () => {
    const home = tempDir();
    const file = await moduleFile(home, 'filter.wasm');
    await runCli(['list'], { home });
    const before = await snapshotTree(home);
    for (const [args, message] of [
      [['build', 'precompiled', file, '-t', 'Alice/Filter:v1'], /must be lowercase/],
      [['build', 'precompiled', file, '-t', 'alice/filter:v1:v2'], /not a valid (image reference|registry)|not a valid/],
      [['tag', 'nothing:v1', 'x:y'], /No image nothing:v1 in the local store/],
      [['inspect', 'alice/f@sha256:zz'], /not a digest/],
    ] as const) {
      const result = await runCli([...args], { home });
      assert.equal(result.code, 1, `${args.join(' ')}: ${result.stderr}`);
      assert.match(result.stderr, message);
      assert.match(result.stderr, /→ /, 'says what to do');
    }
    assert.deepEqual(await snapshotTree(home), before);
  });

  it('refuses non-wasm and ABI-less modules, leaving the store as it was', async () => {
    const home = tempDir();
    await runCli(['list'], { home });
    const text = path.join(home, 'notes.wasm');
    await fs.writeFile(text, 'hello, not wasm');
    const noAbi = await moduleFile(home, 'noabi.wasm', { abi: '' });
    const before = await snapshotTree(path.join(home, 'store'));
    const a = await runCli(['build', 'precompiled', text, '-t', 'f:v1'], { home });
    assert.equal(a.code, 1);
    assert.match(a.stderr, /is not a WebAssembly module \(it starts with "hello, not wasm"/);
    const b = await runCli(['build', 'precompiled', noAbi, '-t', 'f:v1'], { home });
    assert.equal(b.code, 1);
    assert.match(b.stderr, /exports no proxy_abi_version_\* function/);
    assert.deepEqual(await snapshotTree(path.join(home, 'store')), before);
  });

  it('reports a corrupted index and leaves it untouched', async () => {
    const home = tempDir();
    await runCli(['build', 'precompiled', await moduleFile(home, 'f.wasm'), '-t', 'f:v1'], { home });
    const index = path.join(home, 'store', 'index.json');
    await fs.writeFile(index, 'not json');
    const result = await runCli(['list'], { home });
    assert.equal(result.code, 1);
    assert.match(result.stderr, /corrupted: index\.json is not valid JSON/);
    assert.equal(await fs.readFile(index, 'utf8'), 'not json');
  });

  it('keeps every entry when several processes build and tag at once', async () => {
    const home = tempDir();
    const files = await Promise.all(Array.from({ length: 6 }, (_, i) => moduleFile(home, `f${i}.wasm`, { rootId: `root_${i}` })));
    const results = await Promise.all(files.map((f, i) => runCli(['build', 'precompiled', f, '-t', `alice/f${i}:v1`], { home })));
    for (const r of results) assert.equal(r.code, 0, r.stderr);
    const tags = await Promise.all(files.map((_, i) => runCli(['tag', `alice/f${i}:v1`, `alice/f${i}:stable`], { home })));
    for (const r of tags) assert.equal(r.code, 0, r.stderr);
    const list = JSON.parse((await runCli(['list', '--json'], { home })).stdout);
    assert.equal(list.length, 12);
    JSON.parse(await fs.readFile(path.join(home, 'store', 'index.json'), 'utf8'));
  });

  it('init refuses a non-empty folder and says how to proceed', async () => {
    const home = tempDir();
    const dir = path.join(home, 'proj');
    await fs.mkdir(dir);
    await fs.writeFile(path.join(dir, 'main.go'), 'package main');
    const result = await runCli(['init', dir, '--yes', '--no-install'], { home });
    assert.equal(result.code, 1);
    assert.match(result.stderr, /is not empty \(main\.go\)[\s\S]*--force/);
    assert.deepEqual(await fs.readdir(dir), ['main.go']);
  });

  it('says which toolchain is missing and how to install it', async () => {
    const home = tempDir();
    // A PATH that holds node and nothing else, whatever this machine has installed.
    const bin = path.join(home, 'bin');
    await fs.mkdir(bin);
    await fs.symlink(process.execPath, path.join(bin, 'node'));
    for (const [language, tool] of [['rust', 'cargo'], ['tinygo', 'tinygo'], ['cpp', 'make']] as const) {
      const dir = path.join(home, language);
      assert.equal((await runCli(['init', dir, '--yes', '--language', language], { home })).code, 0);
      const result = await runCli(['build', dir], { home, env: { PATH: bin } });
      assert.equal(result.code, 1);
      assert.match(result.stderr, new RegExp(`needs \`${tool}\`, which is not on PATH[\\s\\S]*→ Install`));
    }
  });

  it('prints usage errors with exit code 2', async () => {
    const home = tempDir();
    const result = await runCli(['init', '--language', 'cobol'], { home });
    assert.equal(result.code, 2);
    assert.match(result.stderr, /--language must be one of: assemblyscript, rust, tinygo, cpp/);
  });
});
