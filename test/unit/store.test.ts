import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { UserError } from '../../src/core/errors';
import { makeRuntimeConfig, packImage } from '../../src/core/image/wasmImage';
import { parseReference } from '../../src/core/reference';
import { LocalStore, resolveStoreRoot } from '../../src/core/store/localStore';
import { snapshotTree, tempDir } from '../helpers/env';
import { filterWat, wat } from '../helpers/wasm';

async function addImage(store: LocalStore, ref: string, rootId = 'add_header', variant: 'oci' | 'compat' = 'oci') {
  const wasm = await wat(filterWat({ rootId }));
  const packed = await packImage({ wasm, runtimeConfig: makeRuntimeConfig('0.2.1', [rootId]), variant });
  return store.commit(parseReference(ref), packed.blobs, packed.manifestBytes);
}

async function blobFiles(root: string): Promise<string[]> {
  return (await fs.readdir(path.join(root, 'blobs', 'sha256'))).sort();
}

describe('local store', () => {
  it('is an OCI image layout', async () => {
    const root = tempDir();
    const store = await LocalStore.open(root);
    await addImage(store, 'alice/f:v1');
    assert.deepEqual(JSON.parse(await fs.readFile(path.join(root, 'oci-layout'), 'utf8')), { imageLayoutVersion: '1.0.0' });
    const index = JSON.parse(await fs.readFile(path.join(root, 'index.json'), 'utf8'));
    assert.equal(index.schemaVersion, 2);
    assert.equal(index.manifests[0].annotations['org.opencontainers.image.ref.name'], 'webassemblyhub.io/alice/f:v1');
    for (const name of await blobFiles(root)) assert.match(name, /^[a-f0-9]{64}$/);
  });

  it('finds its root from --store, WASM_FILTER_HOME, or the home folder', () => {
    assert.equal(resolveStoreRoot({ store: '/x/s' }), path.resolve('/x/s'));
    assert.equal(resolveStoreRoot({ env: { WASM_FILTER_HOME: '/h' } }), path.resolve('/h/store'));
    assert.match(resolveStoreRoot({ env: {} }), /\.wasm-filter[\\/]store$/);
  });

  it('lists, resolves by tag and digest, and moves a tag to a new build', async () => {
    const store = await LocalStore.open(tempDir());
    const first = await addImage(store, 'alice/f:v1', 'one');
    await addImage(store, 'alice/g:v1');
    assert.deepEqual((await store.list()).map((i) => i.refName), ['webassemblyhub.io/alice/f:v1', 'webassemblyhub.io/alice/g:v1']);
    assert.equal((await store.resolve('alice/f:v1')).descriptor.digest, first.descriptor.digest);
    assert.equal((await store.resolve(first.descriptor.digest.slice(7, 19))).refName, first.refName);
    assert.equal((await store.resolve(`alice/f@${first.descriptor.digest}`)).refName, first.refName);
    const second = await addImage(store, 'alice/f:v1', 'two');
    assert.notEqual(second.descriptor.digest, first.descriptor.digest);
    assert.equal((await store.list()).length, 2, 'a rebuild replaces the entry, it does not add one');
  });

  it('tags an image under another name without copying blobs', async () => {
    const root = tempDir();
    const store = await LocalStore.open(root);
    const image = await addImage(store, 'alice/f:v1');
    const before = await blobFiles(root);
    const tagged = await store.tag('alice/f:v1', 'localhost:5000/team/f:prod');
    assert.equal(tagged.refName, 'localhost:5000/team/f:prod');
    assert.equal(tagged.descriptor.digest, image.descriptor.digest);
    assert.deepEqual(await blobFiles(root), before);
    await assert.rejects(store.tag('alice/nope:v1', 'x:y'), /No image alice\/nope:v1 in the local store/);
  });

  it('removes an image and every blob nothing else references', async () => {
    const root = tempDir();
    const store = await LocalStore.open(root);
    await addImage(store, 'alice/keep:v1', 'keep');
    const keptBlobs = await blobFiles(root);
    await addImage(store, 'alice/gone:v1', 'gone');
    await store.tag('alice/gone:v1', 'alice/gone:v2');
    await store.remove(['alice/gone:v1']);
    assert.ok((await blobFiles(root)).length > keptBlobs.length, 'v2 still needs the blobs');
    const { freedBytes } = await store.remove(['alice/gone:v2']);
    assert.ok(freedBytes > 0);
    assert.deepEqual(await blobFiles(root), keptBlobs, 'no orphaned blob remains, and the other image keeps its own');
    assert.deepEqual((await store.list()).map((i) => i.refName), ['webassemblyhub.io/alice/keep:v1']);
  });

  it('never loses an entry when many writers commit and tag at once', async () => {
    const root = tempDir();
    const stores = await Promise.all(Array.from({ length: 4 }, () => LocalStore.open(root)));
    await Promise.all(Array.from({ length: 16 }, (_, i) => addImage(stores[i % 4]!, `alice/f${i}:v1`, `root${i}`)));
    await Promise.all(Array.from({ length: 16 }, (_, i) => stores[i % 4]!.tag(`alice/f${i}:v1`, `alice/f${i}:v2`)));
    const names = (await stores[0]!.list()).map((i) => i.refName);
    assert.equal(names.length, 32);
    const leftovers = (await fs.readdir(root)).filter((f) => f.endsWith('.tmp') || f === '.lock');
    assert.deepEqual(leftovers, []);
  });

  it('reports a corrupted index clearly and changes nothing', async () => {
    const root = tempDir();
    const store = await LocalStore.open(root);
    await addImage(store, 'alice/f:v1');
    await fs.writeFile(path.join(root, 'index.json'), '{"schemaVersion": 2, "manifests": [');
    const before = await snapshotTree(root);
    for (const attempt of [() => store.list(), () => addImage(store, 'alice/g:v1'), () => store.remove(['alice/f:v1'])]) {
      await assert.rejects(attempt(), (err: unknown) => {
        assert.ok(err instanceof UserError);
        assert.match(err.message, /image store at .* is corrupted: index\.json is not valid JSON/);
        assert.match(err.hint ?? '', /index\.json\.bak/);
        return true;
      });
    }
    assert.deepEqual(await snapshotTree(root), before);
  });

  it('detects a blob whose content no longer matches its digest', async () => {
    const root = tempDir();
    const store = await LocalStore.open(root);
    const image = await addImage(store, 'alice/f:v1');
    const wasmLayer = image.manifest.layers[1]!;
    const file = store.blobPath(wasmLayer.digest as never);
    await fs.chmod(file, 0o644);
    await fs.writeFile(file, 'tampered');
    await assert.rejects(store.readBlob(wasmLayer.digest as never), /does not match its digest/);
  });

  it('refuses to turn a folder of other files into a store', async () => {
    const root = tempDir();
    await fs.writeFile(path.join(root, 'notes.txt'), 'mine');
    await assert.rejects(LocalStore.open(root), /is not an image store/);
    assert.deepEqual(await fs.readdir(root), ['notes.txt']);
  });
});
