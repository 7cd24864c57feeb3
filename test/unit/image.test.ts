import assert from 'node:assert/strict';
import { gunzipSync } from 'node:zlib';
import { describe, it } from 'node:test';
import { sha256Digest } from '../../src/core/digest';
import { makeRuntimeConfig, packImage, readImageContent } from '../../src/core/image/wasmImage';
import { LocalStore } from '../../src/core/store/localStore';
import { parseReference } from '../../src/core/reference';
import { filterWat, wat } from '../helpers/wasm';
import { tempDir } from '../helpers/env';

describe('image formats', () => {
  it('packs the wasme "oci" variant: runtime config as config, two titled layers, ABI annotations', async () => {
    const wasm = await wat(filterWat({ abi: 'proxy_abi_version_0_2_0' }));
    const packed = await packImage({ wasm, runtimeConfig: makeRuntimeConfig('0.2.0', ['add_header']), variant: 'oci' });
    const m = packed.manifest;
    assert.equal(m.mediaType, 'application/vnd.oci.image.manifest.v1+json');
    assert.equal(m.config.mediaType, 'application/vnd.module.wasm.config.v1+json');
    assert.deepEqual(
      m.layers.map((l) => [l.mediaType, l.annotations?.['org.opencontainers.image.title']]),
      [
        ['application/vnd.module.wasm.config.v1+json', 'runtime-config.json'],
        ['application/vnd.module.wasm.content.layer.v1+wasm', 'filter.wasm'],
      ],
    );
    assert.equal(m.layers[1]!.digest, sha256Digest(wasm));
    assert.equal(m.annotations?.['module.wasm.runtime/abi_version'], 'v0-4689a30309abf31aee9ae36e73d34b1bb182685f,v0.2.0');
    assert.equal(m.annotations?.['module.wasm.runtime/type'], 'envoy_proxy');
    const config = JSON.parse(packed.blobs[0]!.toString());
    assert.deepEqual(config, { type: 'envoy_proxy', abiVersions: ['v0-4689a30309abf31aee9ae36e73d34b1bb182685f', 'v0.2.0'], config: { rootIds: ['add_header'] } });
    assert.equal(packed.manifestDigest, sha256Digest(packed.manifestBytes));
  });

  it('packs the "compat" variant as one tar+gzip layer holding plugin.wasm', async () => {
    const wasm = await wat(filterWat());
    const packed = await packImage({ wasm, runtimeConfig: makeRuntimeConfig('0.2.1', ['add_header']), variant: 'compat' });
    assert.equal(packed.manifest.config.mediaType, 'application/vnd.oci.image.config.v1+json');
    assert.equal(packed.manifest.layers.length, 1);
    assert.equal(packed.manifest.layers[0]!.mediaType, 'application/vnd.oci.image.layer.v1.tar+gzip');
    assert.equal(packed.manifest.annotations?.['module.wasm.image/variant'], 'compat');
    const tar = gunzipSync(packed.blobs[1]!);
    assert.equal(tar.subarray(0, 11).toString(), 'plugin.wasm');
    assert.ok(tar.includes(wasm), 'the tar holds the module bytes');
    const config = JSON.parse(packed.blobs[0]!.toString());
    assert.deepEqual(config.rootfs.diff_ids, [sha256Digest(tar)]);
  });

  it('is reproducible: the same module gives the same manifest digest', async () => {
    const wasm = await wat(filterWat());
    for (const variant of ['oci', 'compat'] as const) {
      const a = await packImage({ wasm, runtimeConfig: makeRuntimeConfig('0.2.1', ['x']), variant });
      const b = await packImage({ wasm, runtimeConfig: makeRuntimeConfig('0.2.1', ['x']), variant });
      assert.equal(a.manifestDigest, b.manifestDigest, variant);
    }
  });

  it('reads the module back out of either variant', async () => {
    const store = await LocalStore.open(tempDir());
    const wasm = await wat(filterWat());
    for (const variant of ['oci', 'compat'] as const) {
      const packed = await packImage({ wasm, runtimeConfig: makeRuntimeConfig('0.2.1', ['add_header']), variant });
      const image = await store.commit(parseReference(`f:${variant}`), packed.blobs, packed.manifestBytes);
      const content = await readImageContent(store, image);
      assert.equal(content.variant, variant);
      assert.deepEqual(content.wasm, wasm);
      assert.equal(content.abi, '0.2.1');
      assert.deepEqual(content.rootIds, ['add_header']);
    }
  });
});
