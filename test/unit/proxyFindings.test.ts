import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PATTERNS, findingsInLog, sourceLocationIn, type FindingKind } from '../../src/core/deploy/proxyFindings';
import { abiSupportsIstio } from '../../src/core/deploy/istioVersion';
import { annotateForCache, pluginConfigOf, unannotateForCache } from '../../src/core/deploy/istioObjects';

/** One line per pattern, as istio-proxy printed it (formats differ across Istio versions). */
const CASES: [FindingKind, string][] = [
  ['cache-race', '[2020-06-02 08:12:41.171][21][warning][config] [external/envoy/source/common/config/grpc_subscription_impl.cc:87] gRPC config for type.googleapis.com/envoy.api.v2.Listener rejected: Error adding/updating listener(s) virtualInbound: Invalid path: /var/local/lib/wasme-cache/' + 'ab'.repeat(32)],
  ['abi-unsupported', '2024-03-01T10:00:00.000000Z\terror\tenvoy wasm\tWasm VM failed: Missing or unknown Proxy-Wasm ABI version'],
  ['image-pull-unauthorized', '2024-03-01T10:00:00.000000Z\terror\twasm\terror in converting the wasm config to local: cannot fetch Wasm module oci://ghcr.io/alice/filter:v1: UNAUTHORIZED: authentication required'],
  ['image-digest-mismatch', '2024-03-01T10:00:00.000000Z\terror\twasm\terror in converting the wasm config to local: module digest does not match: want 1a2b, got 3c4d'],
  ['registry-unreachable', '2024-03-01T10:00:00.000000Z\terror\twasm\tcannot fetch Wasm module oci://registry.internal/f:v1: dial tcp: lookup registry.internal: no such host'],
  ['image-fetch-failed', '2024-03-01T10:00:00.000000Z\terror\twasm\terror in converting the wasm config to local: cannot fetch Wasm module oci://x/y:z: manifest unknown'],
  ['config-rejected', '[2021-01-01 00:00:00.000][1][critical][wasm] [source/extensions/common/wasm/wasm.cc:101] Wasm VM failed to configure plugin add_header'],
  ['vm-start-failed', '[2021-01-01 00:00:00.000][1][error][wasm] Wasm VM failed to start: on_vm_start failed'],
  ['module-load-failed', '[2021-01-01 00:00:00.000][1][error][wasm] Failed to load Wasm module due to a missing import: env.proxy_foo'],
  ['filter-crashed', '[2023-05-04 10:00:00.000][20][error][wasm] [source/extensions/common/wasm/wasm_vm.cc:38] Function: proxy_on_request_headers failed: Uncaught RuntimeError: unreachable'],
  ['filter-critical', '[2021-01-01 00:00:00.000][1][critical][wasm] [source/extensions/common/wasm/context.cc:1102] wasm log myfilter: the backend map is empty'],
  ['filter-error', '[2021-01-01 00:00:00.000][1][error][wasm] [source/extensions/common/wasm/context.cc:1102] wasm log myfilter add_header: cannot parse configuration'],
];

describe('proxy findings', () => {
  it('has a test line for every pattern, and each line finds its own kind', () => {
    assert.deepEqual(new Set(CASES.map(([k]) => k)), new Set(PATTERNS.map((p) => p.kind)));
    for (const [kind, line] of CASES) {
      const [f] = findingsInLog(line, { pod: 'p', namespace: 'n', container: 'istio-proxy' });
      assert.equal(f?.kind, kind, line);
      assert.ok(f.advice.length > 20);
    }
  });

  it('names the filter where the line does, and ignores lines about nothing known', () => {
    const [race] = findingsInLog(CASES[0]![1], { pod: 'p', namespace: 'n', container: 'c' });
    assert.equal(race?.filter, `sha256:${'ab'.repeat(32)}`);
    assert.equal(race?.time, '2020-06-02 08:12:41.171');
    const [own] = findingsInLog(CASES.at(-1)![1], { pod: 'p', namespace: 'n', container: 'c' });
    assert.equal(own?.filter, 'myfilter');
    assert.deepEqual(findingsInLog('info all clusters warmed\n\n', { pod: 'p', namespace: 'n', container: 'c' }), []);
  });

  it("points at the filter's source line an abort or a panic names, never at Envoy's own", () => {
    const where = { pod: 'p', namespace: 'n', container: 'c' };
    const [abort] = findingsInLog('[2021-01-01 00:00:00.000][1][critical][wasm] [source/extensions/common/wasm/context.cc:1170] wasm log add_header_root_id: header value missing at: assembly/index.ts(42:7)', where);
    assert.deepEqual(abort?.source, { file: 'assembly/index.ts', line: 42, column: 7 });
    assert.deepEqual(sourceLocationIn("2024-03-01T10:00:00Z\tcritical\tenvoy wasm\twasm log bookinfo.f: panicked at 'index out of bounds', src/lib.rs:88:17"), { file: 'src/lib.rs', line: 88, column: 17 });
    assert.deepEqual(sourceLocationIn('wasm log f: panic: nil map at main.go:33'), { file: 'main.go', line: 33 });
    assert.equal(sourceLocationIn(CASES.at(-1)![1]), undefined, "Envoy's [source/…/context.cc:1102] is not the filter's");
    assert.equal(sourceLocationIn("wasm log f: panicked at /rustc/abc/library/core/src/panicking.rs:10:5"), undefined);
  });
});

describe('deploy rules', () => {
  it('checks ABI names against Istio versions as wasme did, and passes modern ones', () => {
    assert.equal(abiSupportsIstio(['v0-4689a30309abf31aee9ae36e73d34b1bb182685f', 'v0.2.0'], '1.8.1'), true);
    assert.equal(abiSupportsIstio(['v0.2.1'], '1.8.1'), false);
    assert.equal(abiSupportsIstio(['v0-097b7f2e4cc1fb490cc1943d0d633655ac3c522f'], '1.5.0'), true);
    assert.equal(abiSupportsIstio(['v0.2.1'], '1.31.0'), true, 'a version newer than the table is modern');
    assert.equal(abiSupportsIstio([], '1.8.1'), true, 'no ABI declared: nothing to check');
  });

  it('annotations round-trip: backups restored, other filters keep the volume', () => {
    const start = { keep: 'me', 'sidecar.istio.io/userVolume': 'mine' };
    const one = annotateForCache(start, 'a');
    const two = annotateForCache(one, 'b');
    assert.equal(two['wasme-backup.sidecar.istio.io/userVolume'], 'mine');
    const back = unannotateForCache(unannotateForCache(two, 'a'), 'b');
    assert.deepEqual(back, start);
    assert.ok(unannotateForCache(two, 'a')['sidecar.istio.io/userVolumeMount'], 'b still needs the cache');
  });

  it('gives WasmPlugin a Struct: JSON objects as they are, strings as {value}', () => {
    assert.deepEqual(pluginConfigOf('{"header":"x"}'), { header: 'x' });
    assert.deepEqual(pluginConfigOf('world'), { value: 'world' });
    assert.equal(pluginConfigOf(''), undefined);
  });
});
