// Deploys against the Kubernetes API double, reached through a kubeconfig by the real client library.
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Cluster, waitForCache } from '../../src/core';
import { runCli, tempDir } from '../helpers/env';
import { startRegistry, USERS } from '../helpers/registry';
import { KubeApiDouble, seedBookinfo, type KubeObject } from '../helpers/kubeApi';
import { filterWat, wat } from '../helpers/wasm';

const IMAGE = 'webassemblyhub.io/ilackarms/add-header:v0.1';
const WORKLOADS = ['details-v1', 'productpage-v1', 'ratings-v1', 'reviews-v1', 'reviews-v2', 'reviews-v3'];

async function homeWith(abi: string): Promise<{ home: string; wasmHex: string; manifestHex: string }> {
  const home = tempDir();
  const file = path.join(home, 'filter.wasm');
  await fs.writeFile(file, await wat(filterWat({ abi })));
  const built = await runCli(['build', 'precompiled', file, '-t', IMAGE, '--root-id', 'add_header', '--json'], { home });
  assert.equal(built.code, 0, built.stderr);
  const r = JSON.parse(built.stdout);
  return { home, wasmHex: r.wasmDigest.slice(7), manifestHex: r.manifestDigest.slice(7) };
}

function specs(api: KubeApiDouble): string {
  return JSON.stringify(api.list('apps/v1', 'Deployment', 'bookinfo').map((d) => [d.metadata.name, d.spec]));
}

describe('deploy istio (EnvoyFilter mode, the wasme tutorial on Istio 1.8.1)', () => {
  let api: KubeApiDouble;
  let kubeconfig: string;
  let home: string;
  let wasmHex: string;
  before(async () => {
    api = await new KubeApiDouble().start();
    seedBookinfo(api, { istioVersion: '1.8.1' });
    ({ home, wasmHex } = await homeWith('proxy_abi_version_0_2_0'));
    kubeconfig = api.writeKubeconfig(path.join(home, 'kubeconfig'));
  });
  after(async () => api?.stop());

  const deploy = (...extra: string[]) => runCli(['deploy', 'istio', IMAGE, '--id', 'myfilter', '-n', 'bookinfo', '--config', 'world', '--kubeconfig', kubeconfig, ...extra], { home });

  it('creates six EnvoyFilters of the exact wasme shape, annotates the six Deployments, and undeploy restores them byte for byte', async () => {
    const original = specs(api);
    const r = await deploy();
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /Deployed myfilter .* as envoyfilter to 6 workload\(s\) in bookinfo .* Istio 1\.8\.1; 18 write\(s\)/);
    // wasme's cache, as wasme installed it, with the image in its list.
    assert.equal(api.get('v1', 'ConfigMap', 'wasme', 'wasme-cache')?.data.images, IMAGE);
    const cache = api.get('apps/v1', 'DaemonSet', 'wasme', 'wasme-cache')!;
    assert.deepEqual(cache.spec.template.spec.containers[0].args, ['cache', '--directory', '/var/local/lib/wasme-cache', '--ref-file', '/etc/wasme-cache/images.txt', '--cache-ns', 'wasme']);
    const filters = api.list('networking.istio.io/v1alpha3', 'EnvoyFilter', 'bookinfo');
    assert.deepEqual(filters.map((f) => f.metadata.name).sort(), WORKLOADS.map((w) => `${w}-myfilter`));
    const reviews = filters.find((f) => f.metadata.name === 'reviews-v2-myfilter')!;
    assert.deepEqual(reviews.spec, {
      workloadSelector: { labels: { app: 'reviews', version: 'v2' } },
      configPatches: [
        {
          applyTo: 'HTTP_FILTER',
          match: { context: 'SIDECAR_INBOUND', listener: { filterChain: { filter: { name: 'envoy.http_connection_manager', subFilter: { name: 'envoy.router' } } } } },
          patch: {
            operation: 'INSERT_BEFORE',
            value: {
              name: 'envoy.filters.http.wasm',
              typedConfig: {
                '@type': 'type.googleapis.com/udpa.type.v1.TypedStruct',
                typeUrl: 'type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm',
                value: {
                  config: {
                    name: 'myfilter',
                    rootId: 'add_header',
                    configuration: { '@type': 'type.googleapis.com/google.protobuf.StringValue', value: 'world' },
                    vmConfig: { vmId: 'myfilter', runtime: 'envoy.wasm.runtime.v8', code: { local: { filename: `/var/local/lib/wasme-cache/${wasmHex}` } } },
                  },
                },
              },
            },
          },
        },
      ],
    });
    for (const d of api.list('apps/v1', 'Deployment', 'bookinfo')) {
      const a = d.spec.template.metadata.annotations;
      assert.equal(a['sidecar.istio.io/userVolumeMount'], '[{"mountPath":"/var/local/lib/wasme-cache","name":"cache-dir"}]', d.metadata.name);
      assert.equal(a['sidecar.istio.io/userVolume'], '[{"name":"cache-dir","hostPath":{"path":"/var/local/lib/wasme-cache"}}]');
    }
    const v3 = api.get('apps/v1', 'Deployment', 'bookinfo', 'reviews-v3')!.spec.template.metadata.annotations;
    assert.equal(v3['wasme-backup.sidecar.istio.io/userVolume'], '[{"name":"extra","emptyDir":{}}]', 'the value it replaced is backed up');

    const mark = api.requests.length;
    const again = await deploy();
    assert.equal(again.code, 0, again.stderr);
    assert.deepEqual(api.writesSince(mark), [], 'an identical deploy writes nothing');
    assert.match(again.stderr, /Already deployed .*; 0 write\(s\)/);

    const listed = await runCli(['deployments', '-n', 'bookinfo', '--kubeconfig', kubeconfig], { home });
    assert.match(listed.stdout, /bookinfo\s+myfilter\s+envoyfilter\s+webassemblyhub\.io\/ilackarms\/add-header:v0\.1/);

    const undeploy = await runCli(['undeploy', 'istio', '--id', 'myfilter', '-n', 'bookinfo', '--kubeconfig', kubeconfig], { home });
    assert.equal(undeploy.code, 0, undeploy.stderr);
    assert.equal(api.list('networking.istio.io/v1alpha3', 'EnvoyFilter', 'bookinfo').length, 0);
    assert.equal(specs(api), original, 'the Deployments are exactly as before');
  });

  it('a dry run prints the objects and changes nothing', async () => {
    const mark = api.requests.length;
    const r = await deploy('--dry-run', '-o', 'yaml');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /# create EnvoyFilter bookinfo\/details-v1-myfilter\napiVersion: networking\.istio\.io\/v1alpha3\nkind: EnvoyFilter/);
    assert.deepEqual(api.writesSince(mark), []);
  });

  it('RBAC 403, a conflict, a missing CRD and an ABI mismatch are explained, and the cluster is left as it was', async () => {
    const original = specs(api);
    api.forbidden.add('create envoyfilters');
    const forbidden = await deploy();
    api.forbidden.clear();
    assert.equal(forbidden.code, 1);
    assert.match(forbidden.stderr, /RBAC forbids you to create envoyfilters in namespace bookinfo on context "double"/);
    assert.match(forbidden.stderr, /taken back; the cluster is as it was/);
    assert.equal(specs(api), original);
    assert.equal(api.list('networking.istio.io/v1alpha3', 'EnvoyFilter', 'bookinfo').length, 0);

    api.injected.set('create envoyfilters', { code: 409, reason: 'Conflict', times: 1 });
    const conflict = await deploy();
    assert.equal(conflict.code, 1);
    assert.match(conflict.stderr, /conflicted with another change[\s\S]*run the command again/);
    assert.equal(specs(api), original);

    const missing = await deploy('--mode', 'wasmplugin');
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /has no wasmplugins\.extensions\.istio\.io CRD/);

    const modern = await homeWith('proxy_abi_version_0_2_1');
    const mismatch = await runCli(['deploy', 'istio', IMAGE, '--id', 'myfilter', '-n', 'bookinfo', '--kubeconfig', kubeconfig], { home: modern.home });
    assert.equal(mismatch.code, 1);
    assert.match(mismatch.stderr, /is not supported by Istio 1\.8\.1/);
    assert.equal(specs(api), original);
  });

  it('an unreachable server and a malformed kubeconfig are clear errors', async () => {
    const dead = path.join(home, 'dead-kubeconfig');
    await fs.writeFile(dead, (await fs.readFile(kubeconfig, 'utf8')).replace(/server: .*/, 'server: http://127.0.0.1:9'));
    const unreachable = await runCli(['deployments', '--kubeconfig', dead], { home });
    assert.equal(unreachable.code, 1);
    assert.match(unreachable.stderr, /The cluster at context "double" \(http:\/\/127\.0\.0\.1:9\) is unreachable/);
    const bad = path.join(home, 'bad-kubeconfig');
    await fs.writeFile(bad, 'clusters: [ this is : not yaml');
    const malformed = await runCli(['deployments', '--kubeconfig', bad], { home });
    assert.equal(malformed.code, 1);
    assert.match(malformed.stderr, /The kubeconfig .*bad-kubeconfig cannot be read/);
  });

  it("doctor turns istio-proxy's Invalid path line into a finding with what to do", async () => {
    const pod = api.list('v1', 'Pod', 'bookinfo').find((p) => p.metadata.name.startsWith('reviews-v1'))!;
    api.addLog('bookinfo', pod.metadata.name, 'istio-proxy', '2026-11-25T10:00:00.000Z info envoy config all good');
    api.addLog(
      'bookinfo',
      pod.metadata.name,
      'istio-proxy',
      `[2026-11-25 10:00:01.123][19][warning][config] [external/envoy/source/common/config/grpc_subscription_impl.cc:101] gRPC config for type.googleapis.com/envoy.config.listener.v3.Listener rejected: Error adding/updating listener(s) virtualInbound: Invalid path: /var/local/lib/wasme-cache/${wasmHex}`,
    );
    const r = await runCli(['doctor', '-n', 'bookinfo', '--kubeconfig', kubeconfig], { home });
    assert.equal(r.code, 1);
    assert.match(r.stdout, new RegExp(`error cache-race bookinfo/${pod.metadata.name} \\(istio-proxy\\) at 2026-11-25 10:00:01\\.123 filter sha256:${wasmHex}`));
    assert.match(r.stdout, /→ The sidecar loaded the EnvoyFilter before wasme's cache/);
  });
});

describe("waiting for wasme's cache", () => {
  it('counts one report per cache pod, so two nodes do not wait forever as they did with wasme', async () => {
    const api = await new KubeApiDouble().start();
    try {
      seedBookinfo(api);
      const home = tempDir();
      const cluster = await Cluster.open({ kubeconfig: api.writeKubeconfig(path.join(home, 'kubeconfig')) });
      api.put({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'wasme' } });
      api.put({ apiVersion: 'apps/v1', kind: 'DaemonSet', metadata: { name: 'wasme-cache', namespace: 'wasme' }, spec: {}, status: { numberReady: 2 } });
      const report = (pod: string) =>
        api.put({
          apiVersion: 'v1',
          kind: 'Event',
          metadata: { name: `${pod}.1`, namespace: 'wasme', labels: { 'cache.wasme.io/cache_event': 'true' } },
          involvedObject: { kind: 'Pod', name: pod, namespace: 'wasme' },
          reason: 'ImageAdded',
          message: `added image ${IMAGE}`,
        });
      report('wasme-cache-node-a');
      await assert.rejects(waitForCache(cluster, IMAGE, 1500), /has the image on 1 of 2 nodes/);
      report('wasme-cache-node-b');
      assert.deepEqual(await waitForCache(cluster, IMAGE, 1500), { ready: 2, reported: 2 });
    } finally {
      await api.stop();
    }
  });
});

describe('deploy istio (WasmPlugin mode, a current Istio)', () => {
  let api: KubeApiDouble;
  let kubeconfig: string;
  let home: string;
  let manifestHex: string;
  before(async () => {
    api = await new KubeApiDouble().start();
    seedBookinfo(api, { istioVersion: '1.28.0', wasmPlugin: true });
    ({ home, manifestHex } = await homeWith('proxy_abi_version_0_2_1'));
    kubeconfig = api.writeKubeconfig(path.join(home, 'kubeconfig'));
  });
  after(async () => api?.stop());

  it('creates one WasmPlugin pinned by the manifest digest, with a handful of requests, and a second deploy writes nothing', async () => {
    const mark = api.requests.length;
    const r = await runCli(['deploy', 'istio', IMAGE, '--id', 'add-header', '-n', 'bookinfo', '-l', 'app=reviews', '--config', 'world', '--kubeconfig', kubeconfig], { home });
    assert.equal(r.code, 0, r.stderr);
    const plugins = api.list('extensions.istio.io/v1alpha1', 'WasmPlugin', 'bookinfo') as KubeObject[];
    assert.equal(plugins.length, 1);
    assert.deepEqual(plugins[0]!.spec, {
      selector: { matchLabels: { app: 'reviews' } },
      url: `oci://${IMAGE}`,
      sha256: manifestHex,
      pluginName: 'add_header',
      pluginConfig: { value: 'world' },
      imagePullPolicy: 'IfNotPresent',
    });
    assert.equal(api.writesSince(mark).length, 1, 'one write: the WasmPlugin; no workload is touched');
    // The deploy itself is O(1); the pod and event reads after it are the post-deploy check of istio-proxy.
    const deployRequests = api.requests.slice(mark).filter((q) => !/\/(pods|events)/.test(q.path));
    assert.ok(deployRequests.length <= 8, `requests: ${deployRequests.length}`);
    const m2 = api.requests.length;
    assert.equal((await runCli(['deploy', 'istio', IMAGE, '--id', 'add-header', '-n', 'bookinfo', '-l', 'app=reviews', '--config', 'world', '--kubeconfig', kubeconfig], { home })).code, 0);
    assert.deepEqual(api.writesSince(m2), []);
    const undeploy = await runCli(['undeploy', 'istio', '--id', 'add-header', '-n', 'bookinfo', '--kubeconfig', kubeconfig], { home });
    assert.equal(undeploy.code, 0, undeploy.stderr);
    assert.equal(api.list('extensions.istio.io/v1alpha1', 'WasmPlugin', 'bookinfo').length, 0);
  });

  it('after a deploy, says what istio-proxy already reports', async () => {
    const pod = api.list('v1', 'Pod', 'bookinfo').find((p) => p.metadata.name.startsWith('ratings-v1'))!;
    // Stamped a little later than now: the line a proxy prints once it sees the new WasmPlugin.
    const later = new Date(Date.now() + 30_000);
    api.addLog('bookinfo', pod.metadata.name, 'istio-proxy', `${later.toISOString()}\terror\twasm\tcannot fetch Wasm module oci://${IMAGE}: UNAUTHORIZED: authentication required`, later);
    const r = await runCli(['deploy', 'istio', IMAGE, '--id', 'watched', '-n', 'bookinfo', '-l', 'app=ratings', '--kubeconfig', kubeconfig], { home });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, new RegExp(`warning: istio-proxy in bookinfo/${pod.metadata.name}: image-pull-unauthorized — .*imagePullSecret`));
    assert.equal((await runCli(['undeploy', 'istio', '--id', 'watched', '-n', 'bookinfo', '--kubeconfig', kubeconfig], { home })).code, 0);
  });

  it('gives a private image a pull secret from the login, never printing it, and undeploy removes it', async () => {
    const reg = await startRegistry({ auth: 'htpasswd' });
    try {
      const ref = `${reg.host}/alice/private:v1`;
      const file = path.join(home, 'private.wasm');
      await fs.writeFile(file, await wat(filterWat({ abi: 'proxy_abi_version_0_2_1' })));
      assert.equal((await runCli(['build', 'precompiled', file, '-t', ref, '--root-id', 'add_header'], { home })).code, 0);
      assert.equal((await runCli(['login', reg.host, '-u', 'alice', '--password-stdin'], { home, input: USERS.alice })).code, 0);
      assert.equal((await runCli(['push', ref], { home })).code, 0);
      const args = ['deploy', 'istio', ref, '--id', 'private', '-n', 'bookinfo', '-l', 'app=ratings', '--kubeconfig', kubeconfig];
      const dry = await runCli([...args, '--dry-run', '-o', 'yaml'], { home });
      assert.equal(dry.code, 0, dry.stderr);
      assert.match(dry.stdout, /# create Secret bookinfo\/wasm-filter-pull-127-0-0-1-\d+[\s\S]*\.dockerconfigjson: <redacted>/);
      const out = await runCli(args, { home });
      assert.equal(out.code, 0, out.stderr);
      for (const text of [dry.stdout, dry.stderr, out.stdout, out.stderr]) {
        assert.ok(!text.includes(USERS.alice!) && !text.includes(Buffer.from(`alice:${USERS.alice}`).toString('base64')), 'no secret in any output');
      }
      const secret = api.list('v1', 'Secret', 'bookinfo')[0]!;
      assert.equal(secret.type, 'kubernetes.io/dockerconfigjson');
      const config = JSON.parse(Buffer.from(secret.data['.dockerconfigjson'], 'base64').toString());
      assert.equal(Buffer.from(config.auths[reg.host].auth, 'base64').toString(), `alice:${USERS.alice}`);
      const plugin = api.get('extensions.istio.io/v1alpha1', 'WasmPlugin', 'bookinfo', 'private')!;
      assert.equal(plugin.spec.imagePullSecret, secret.metadata.name);
      assert.equal((await runCli(['undeploy', 'istio', '--id', 'private', '-n', 'bookinfo', '--kubeconfig', kubeconfig], { home })).code, 0);
      assert.deepEqual(api.list('v1', 'Secret', 'bookinfo'), []);
    } finally {
      await reg.stop();
    }
  });
});
