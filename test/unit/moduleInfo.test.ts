import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { UserError } from '../../src/core/errors';
import { inspectModule } from '../../src/core/wasm/moduleInfo';
import { abiFromRuntimeName, runtimeAbiNames } from '../../src/core/wasm/abi';
import { filterWat, wat } from '../helpers/wasm';

function rejects(bytes: Uint8Array, code: string, message: RegExp) {
  assert.throws(
    () => inspectModule(bytes, { source: 'bad.wasm' }),
    (err: unknown) => err instanceof UserError && err.code === code && message.test(err.message) && !!err.hint,
  );
}

describe('module validation', () => {
  it('finds the ABI version and allocator of each ABI generation', async () => {
    for (const [exportName, abi] of [
      ['proxy_abi_version_0_1_0', '0.1.0'],
      ['proxy_abi_version_0_2_0', '0.2.0'],
      ['proxy_abi_version_0_2_1', '0.2.1'],
    ] as const) {
      const info = inspectModule(await wat(filterWat({ abi: exportName })));
      assert.equal(info.abiVersion, abi);
      assert.equal(info.abiExport, exportName);
      assert.equal(info.allocator, 'malloc');
    }
    const info = inspectModule(await wat(filterWat({ allocator: 'proxy_on_memory_allocate' })));
    assert.equal(info.allocator, 'proxy_on_memory_allocate');
  });

  it('rejects files that are not WebAssembly, saying what they start with', () => {
    rejects(Buffer.from('#!/bin/sh\necho not wasm\n'), 'E_NOT_WASM', /not a WebAssembly module \(it starts with "#!\/bin\/sh/);
    rejects(Buffer.alloc(0), 'E_NOT_WASM', /not a WebAssembly module/);
  });

  it('rejects truncated modules with V8\'s reason', async () => {
    const good = await wat(filterWat());
    rejects(good.subarray(0, good.length - 5), 'E_INVALID_WASM', /not a valid WebAssembly module: .+/);
  });

  it('rejects modules without an ABI marker as Envoy would', async () => {
    rejects(await wat(filterWat({ abi: '' })), 'E_NO_ABI', /proxy_abi_version_\*.*Missing or unknown Proxy-Wasm ABI version/);
  });

  it('rejects modules without an allocator', async () => {
    rejects(await wat(filterWat({ allocator: '' })), 'E_NO_ALLOCATOR', /proxy_on_memory_allocate or malloc/);
  });

  it('records root ids found in the data, UTF-8 or UTF-16', async () => {
    const utf8 = inspectModule(await wat(filterWat({ rootId: 'my_root' })), { expectedRootIds: ['my_root'] });
    assert.deepEqual(utf8.rootIdsFound, ['my_root']);
    assert.deepEqual(utf8.warnings, []);
    const utf16 = inspectModule(await wat(filterWat({ rootId: 'as_root', utf16: true })), { expectedRootIds: ['as_root'] });
    assert.deepEqual(utf16.rootIdsFound, ['as_root']);
    const missing = inspectModule(await wat(filterWat({ rootId: 'other' })), { expectedRootIds: ['add_header'] });
    assert.deepEqual(missing.rootIdsFound, []);
    assert.match(missing.warnings.join('\n'), /Root id "add_header" does not appear/);
  });

  it('names ABIs both the wasme way and by version', () => {
    assert.deepEqual(runtimeAbiNames('0.2.0'), ['v0-4689a30309abf31aee9ae36e73d34b1bb182685f', 'v0.2.0']);
    assert.deepEqual(runtimeAbiNames('0.2.1'), ['v0.2.1']);
    assert.equal(abiFromRuntimeName('v0-097b7f2e4cc1fb490cc1943d0d633655ac3c522f'), '0.1.0');
    assert.equal(abiFromRuntimeName('v0.2.1'), '0.2.1');
    assert.equal(abiFromRuntimeName('v9'), undefined);
  });
});
