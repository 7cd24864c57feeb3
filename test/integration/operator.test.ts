// The FilterDeployment operator against the Kubernetes API double (watch, finalizers, ownerReferences,
// the status subresource, Leases) and a real registry, through the real client library.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as yaml from 'js-yaml';
import { Cluster } from '../../src/core';
import { filterDeploymentCrd } from '../../src/core/operator/filterDeployment';
import { FilterDeploymentOperator, type OperatorOptions } from '../../src/core/operator/operator';
import { CLI, REPO_ROOT, runCli, tempDir, until } from '../helpers/env';
import { freePort, startRegistry, type StartedRegistry } from '../helpers/registry';
import { KubeApiDouble, seedBookinfo, type KubeObject } from '../helpers/kubeApi';
import { filterWat, wat } from '../helpers/wasm';

const WORKLOADS = ['details-v1', 'productpage-v1', 'ratings-v1', 'reviews-v1', 'reviews-v2', 'reviews-v3'];
const FD = 'wasme.io/v1';

/** The wasme tutorial's FilterDeployment, its config a typed StringValue. */
function tutorialFd(image: string, extra: { name?: string; config?: unknown; istio?: object; filter?: object } = {}): KubeObject {
  return {
    apiVersion: FD,
    kind: 'FilterDeployment',
    metadata: { name: extra.name ?? 'bookinfo-custom-filter', namespace: 'bookinfo' },
    spec: {
      filter: { config: extra.config ?? { '@type': 'type.googleapis.com/google.protobuf.StringValue', value: 'world' }, image, ...extra.filter },
      deployment: { istio: { kind: 'Deployment', ...extra.istio } },
    },
  };
}

function envoyFilterValue(ef: KubeObject): string {
  return ef.spec.configPatches[0].patch.value.typedConfig.value.config.configuration.value;
}

describe('FilterDeployment operator', () => {
  let api: KubeApiDouble;
  let registry: StartedRegistry;
  let kubeconfig: string;
  let image: string;
  let wasmHex: string;
  const running: FilterDeploymentOperator[] = [];

  before(async () => {
    api = await new KubeApiDouble().start();
    seedBookinfo(api, { istioVersion: '1.8.1' });
    api.put(filterDeploymentCrd() as KubeObject);
    registry = await startRegistry();
    const home = tempDir('wfs-operator-');
    const file = path.join(home, 'filter.wasm');
    await fs.writeFile(file, await wat(filterWat({ abi: 'proxy_abi_version_0_2_0' })));
    image = `${registry.host}/bookinfo/custom-filter:v1`;
    const built = await runCli(['build', 'precompiled', file, '-t', image, '--root-id', 'add_header', '--json'], { home });
    assert.equal(built.code, 0, built.stderr);
    wasmHex = JSON.parse(built.stdout).wasmDigest.slice(7);
    assert.equal((await runCli(['push', image], { home })).code, 0);
    kubeconfig = api.writeKubeconfig(path.join(home, 'kubeconfig'));
  });

  after(async () => {
    for (const op of running) await op.stop();
    await api?.stop();
    await registry?.stop();
  });

  async function startOperator(extra: Partial<OperatorOptions> = {}): Promise<{ op: FilterDeploymentOperator; logs: Record<string, unknown>[] }> {
    const logs: Record<string, unknown>[] = [];
    const op = new FilterDeploymentOperator(await Cluster.open({ kubeconfig }), {
      lease: { namespace: 'istio-system', name: 'wasm-filter-operator', durationMs: 1500, retryMs: 150 },
      workers: 2,
      backoff: { baseMs: 100, maxMs: 1600 },
      settleMs: 150,
      resyncMs: 60_000,
      tagTtlMs: 30_000,
      log: (level, msg, fields) => logs.push({ level, msg, ...fields }),
      ...extra,
    });
    running.push(op);
    await op.start();
    return { op, logs };
  }

  async function stopOperator(op: FilterDeploymentOperator): Promise<void> {
    await op.stop();
    running.splice(running.indexOf(op), 1);
  }

  const fdStatus = (name = 'bookinfo-custom-filter') => api.get(FD, 'FilterDeployment', 'bookinfo', name)?.status;
  const ready = (name?: string) => fdStatus(name)?.conditions?.find((c: { type: string }) => c.type === 'Ready');
  // The digest column: the image's manifest digest, from the objects the operator made.
  const digestColumn = () => '[0-9a-f]{12}';
  const specs = () => JSON.stringify(api.list('apps/v1', 'Deployment', 'bookinfo').map((d) => [d.metadata.name, d.spec]));

  it("makes the tutorial's EnvoyFilters, updates them when the config changes, and restores every workload on delete", async () => {
    const original = specs();
    const { op } = await startOperator();
    api.put(tutorialFd(image));
    const id = 'bookinfo-custom-filter.bookinfo';
    const settled = await until('every workload Succeeded', () => {
      const s = fdStatus();
      return s?.observedGeneration === 1 && Object.values(s.workloads ?? {}).filter((w: any) => w.state === 'Succeeded').length === 6 ? s : undefined;
    });
    assert.deepEqual(Object.keys(settled.workloads).sort(), WORKLOADS);
    assert.equal(ready()?.status, 'True');
    const filters = api.list('networking.istio.io/v1alpha3', 'EnvoyFilter', 'bookinfo');
    assert.deepEqual(filters.map((f) => f.metadata.name).sort(), WORKLOADS.map((w) => `${w}-${id}`));
    const fd = api.get(FD, 'FilterDeployment', 'bookinfo', 'bookinfo-custom-filter')!;
    for (const f of filters) {
      assert.equal(envoyFilterValue(f), 'world');
      assert.equal(f.spec.configPatches[0].patch.value.typedConfig.value.config.vmConfig.code.local.filename, `/var/local/lib/wasme-cache/${wasmHex}`);
      assert.deepEqual(f.metadata.ownerReferences, [{ apiVersion: FD, kind: 'FilterDeployment', name: 'bookinfo-custom-filter', uid: fd.metadata.uid, controller: true, blockOwnerDeletion: true }]);
    }
    assert.deepEqual(fd.metadata.finalizers, ['wasm-filter-studio.dev/restore-workloads']);
    assert.match(api.get('apps/v1', 'Deployment', 'bookinfo', 'reviews-v1')!.spec.template.metadata.annotations['sidecar.istio.io/userVolume'], /wasme-cache/);
    const listed = await runCli(['deployments', '-n', 'bookinfo', '--kubeconfig', kubeconfig], { home: tempDir() });
    assert.match(listed.stdout, new RegExp(`bookinfo\\s+${id.replace('.', '\\.')}\\s+filterdeployment\\s+${image.replace(/[.:/]/g, '\\$&')}\\s+${digestColumn()}\\s+${WORKLOADS.join(',')}\\s+Ready`), listed.stdout);

    const events = () => api.list('v1', 'Event', 'bookinfo').filter((e) => e.involvedObject?.name === 'bookinfo-custom-filter').map((e) => `${e.type} ${e.reason}`);
    assert.deepEqual(events(), ['Normal Applied'], 'one Event for the deploy, none for the settling that followed');
    // Updated to "goodbye": a new generation, the EnvoyFilters carry the new value.
    api.put({ ...fd, spec: { ...fd.spec, filter: { ...fd.spec.filter, config: { '@type': 'type.googleapis.com/google.protobuf.StringValue', value: 'goodbye' } } } });
    await until('the EnvoyFilters to say goodbye', () => api.list('networking.istio.io/v1alpha3', 'EnvoyFilter', 'bookinfo').every((f) => envoyFilterValue(f) === 'goodbye') && fdStatus()?.observedGeneration === 2);
    await until('an Event for the new generation', () => events().length === 2);
    assert.deepEqual(events(), ['Normal Applied', 'Normal Applied']);

    // Deleted: the finalizer holds it until the workloads are restored, then it goes with what it owned.
    api.remove(FD, 'FilterDeployment', 'bookinfo', 'bookinfo-custom-filter');
    await until('the FilterDeployment to go', () => !api.get(FD, 'FilterDeployment', 'bookinfo', 'bookinfo-custom-filter'));
    assert.deepEqual(api.list('networking.istio.io/v1alpha3', 'EnvoyFilter', 'bookinfo'), []);
    assert.equal(specs(), original, 'every Deployment as it was, byte for byte');
    await stopOperator(op);
  });

  it('a new workload matching the labels gets the filter; an owned EnvoyFilter deleted by someone is made again', async () => {
    const v2Annotations = JSON.stringify(api.get('apps/v1', 'Deployment', 'bookinfo', 'reviews-v2')!.spec.template.metadata.annotations);
    const { op } = await startOperator();
    api.put(tutorialFd(image, { name: 'reviews-filter', istio: { labels: { app: 'reviews' } } }));
    const id = 'reviews-filter.bookinfo';
    await until('three EnvoyFilters', () => api.list('networking.istio.io/v1alpha3', 'EnvoyFilter', 'bookinfo').length === 3);
    const template = api.get('apps/v1', 'Deployment', 'bookinfo', 'reviews-v3')!;
    api.put({ ...structuredClone(template), metadata: { name: 'reviews-v4', namespace: 'bookinfo', labels: { app: 'reviews', version: 'v4' } } });
    await until('the new workload to get its EnvoyFilter', () => api.get('networking.istio.io/v1alpha3', 'EnvoyFilter', 'bookinfo', `reviews-v4-${id}`));
    api.remove('networking.istio.io/v1alpha3', 'EnvoyFilter', 'bookinfo', `reviews-v1-${id}`);
    await until('the deleted EnvoyFilter to be back', () => api.get('networking.istio.io/v1alpha3', 'EnvoyFilter', 'bookinfo', `reviews-v1-${id}`));
    // The workload goes: its EnvoyFilter goes too, and the status no longer lists it.
    api.remove('apps/v1', 'Deployment', 'bookinfo', 'reviews-v4');
    await until('the gone workload to leave the status', () => !api.get('networking.istio.io/v1alpha3', 'EnvoyFilter', 'bookinfo', `reviews-v4-${id}`) && fdStatus('reviews-filter') && !('reviews-v4' in (fdStatus('reviews-filter').workloads ?? {})));
    // A workload relabelled out of the selection: its EnvoyFilter goes and its annotations are restored.
    const v2 = api.get('apps/v1', 'Deployment', 'bookinfo', 'reviews-v2')!;
    api.put({ ...v2, metadata: { ...v2.metadata, labels: { app: 'reviews-legacy', version: 'v2' } } });
    await until('reviews-v2 let go', () => !api.get('networking.istio.io/v1alpha3', 'EnvoyFilter', 'bookinfo', `reviews-v2-${id}`) && !api.get('apps/v1', 'Deployment', 'bookinfo', 'reviews-v2')!.spec.template.metadata.annotations['wasm-filter-studio.dev/filters']);
    assert.equal(JSON.stringify(api.get('apps/v1', 'Deployment', 'bookinfo', 'reviews-v2')!.spec.template.metadata.annotations), v2Annotations, 'annotations as before the filter');
    api.put({ ...api.get('apps/v1', 'Deployment', 'bookinfo', 'reviews-v2')!, metadata: { ...v2.metadata } });
    api.remove(FD, 'FilterDeployment', 'bookinfo', 'reviews-filter');
    await until('the FilterDeployment to go', () => !api.get(FD, 'FilterDeployment', 'bookinfo', 'reviews-filter'));
    await stopOperator(op);
  });

  it('an invalid image is Failed and not retried; an unreachable registry is Failed, retried with backoff, and recovers', async () => {
    const { op, logs } = await startOperator();
    api.put(tutorialFd('not a reference', { name: 'bad-image' }));
    await until('InvalidSpec', () => ready('bad-image')?.reason === 'InvalidSpec');
    assert.match(fdStatus('bad-image').reason, /spec\.filter\.image: .*white space/);
    // (Its own finalizer and status writes come back as watch events once; after that, quiet.)
    await new Promise((r) => setTimeout(r, 300));
    const reconciles = op.stats.reconciles;
    await new Promise((r) => setTimeout(r, 600));
    assert.equal(op.stats.reconciles, reconciles, 'an invalid spec waits for a change, not a timer');
    assert.ok(!logs.some((l) => l.filterDeployment === 'bookinfo/bad-image' && l.msg === 'reconcile failed; retrying'));

    // A registry nobody listens on (yet).
    const port = await freePort();
    api.put(tutorialFd(`127.0.0.1:${port}/bookinfo/custom-filter:v1`, { name: 'far-image' }));
    await until('RegistryUnreachable', () => ready('far-image')?.reason === 'RegistryUnreachable');
    assert.match(fdStatus('far-image').reason, /127\.0\.0\.1:\d+/);
    const delays = await until('four retries', () => {
      const d = logs.filter((l) => l.filterDeployment === 'bookinfo/far-image' && l.msg === 'reconcile failed; retrying').map((l) => l.retryInMs as number);
      return d.length >= 4 ? d : undefined;
    });
    assert.deepEqual(delays.slice(0, 4), [100, 200, 400, 800], 'exponential backoff');
    assert.equal(api.list('networking.istio.io/v1alpha3', 'EnvoyFilter', 'bookinfo').length, 0, 'nothing half-made');
    const warnings = api.list('v1', 'Event', 'bookinfo').filter((e) => e.involvedObject?.name === 'far-image').map((e) => `${e.type} ${e.reason}`);
    assert.deepEqual(warnings, ['Warning RegistryUnreachable'], 'one Warning, not one per retry');

    // The registry comes up on that port: the next retry deploys.
    const forward = net.createServer((socket) => socket.pipe(net.connect(Number(registry.host.split(':')[1]), '127.0.0.1')).pipe(socket));
    await new Promise<void>((resolve) => forward.listen(port, '127.0.0.1', resolve));
    try {
      await until('Ready after the registry came back', () => ready('far-image')?.status === 'True', 10_000);
    } finally {
      forward.close();
    }
    for (const name of ['bad-image', 'far-image']) api.remove(FD, 'FilterDeployment', 'bookinfo', name);
    await until('both gone', () => !api.get(FD, 'FilterDeployment', 'bookinfo', 'far-image') && !api.get(FD, 'FilterDeployment', 'bookinfo', 'bad-image'));
    await stopOperator(op);
  });

  it('a restarted operator resumes without a write; of two replicas only the leader reconciles', async () => {
    const first = await startOperator();
    api.put(tutorialFd(image, { name: 'steady', istio: { labels: { app: 'ratings' } } }));
    await until('steady settled', () => fdStatus('steady')?.workloads?.['ratings-v1']?.state === 'Succeeded');
    await stopOperator(first.op);
    const mark = api.requests.length;
    const notLease = () => api.writesSince(mark).filter((r) => !r.path.includes('/leases'));

    // Two replicas: one takes the lease, the other stands by.
    const a = await startOperator({ identity: 'replica-a' });
    const b = await startOperator({ identity: 'replica-b' });
    await until('a leader', () => a.op.isLeader || b.op.isLeader);
    await until('the leader resynced', () => (a.op.isLeader ? a : b).op.stats.reconciles >= 1);
    await new Promise((r) => setTimeout(r, 500));
    assert.deepEqual(notLease().map((r) => `${r.method} ${r.path}`), [], 'a restart writes nothing when all is as wanted');
    const [leader, standby] = a.op.isLeader ? [a, b] : [b, a];
    assert.equal(standby.op.isLeader, false);
    assert.equal(standby.op.stats.reconciles, 0, 'the standby reconciles nothing');

    // The leader stops (giving the lease up); the standby takes over, and never were both leading.
    let both = false;
    const watch = setInterval(() => (both ||= a.op.isLeader && b.op.isLeader), 10);
    await stopOperator(leader.op);
    await until('the standby to lead', () => standby.op.isLeader, 5000);
    api.put({ ...api.get(FD, 'FilterDeployment', 'bookinfo', 'steady')!, spec: { ...api.get(FD, 'FilterDeployment', 'bookinfo', 'steady')!.spec, filter: { ...api.get(FD, 'FilterDeployment', 'bookinfo', 'steady')!.spec.filter, config: 'plain' } } });
    await until('the new leader applies a change', () => envoyFilterValue(api.get('networking.istio.io/v1alpha3', 'EnvoyFilter', 'bookinfo', 'ratings-v1-steady.bookinfo')!) === 'plain');
    clearInterval(watch);
    assert.equal(both, false, 'never two leaders');
    api.remove(FD, 'FilterDeployment', 'bookinfo', 'steady');
    await until('steady gone', () => !api.get(FD, 'FilterDeployment', 'bookinfo', 'steady'));
    await stopOperator(standby.op);
  });

  it('surfaces what istio-proxy reports in the status', async () => {
    const { op } = await startOperator({ resyncMs: 300 });
    api.put(tutorialFd(image, { name: 'watched', istio: { labels: { app: 'details' } } }));
    await until('watched settled', () => fdStatus('watched')?.workloads?.['details-v1']?.state === 'Succeeded');
    const pod = api.list('v1', 'Pod', 'bookinfo').find((p) => p.metadata.name.startsWith('details-v1'))!;
    api.addLog('bookinfo', pod.metadata.name, 'istio-proxy', `[2026-11-25 10:00:00.000][21][warning][config] gRPC config for type.googleapis.com/envoy.config.listener.v3.Listener rejected: Error adding/updating listener(s) virtualInbound: Invalid path: /var/local/lib/wasme-cache/${wasmHex}`);
    const w = await until('the finding in the status', () => (fdStatus('watched')?.workloads?.['details-v1']?.state === 'Failed' ? fdStatus('watched') : undefined));
    assert.match(w.workloads['details-v1'].reason, /^cache-race: .*rollout restart/);
    assert.equal(w.conditions.find((c: { type: string }) => c.type === 'ProxiesHealthy').status, 'False');
    api.remove(FD, 'FilterDeployment', 'bookinfo', 'watched');
    await until('watched gone', () => !api.get(FD, 'FilterDeployment', 'bookinfo', 'watched'));
    await stopOperator(op);
  });

  it('needs no more than deploy/rbac.yaml grants: both modes, a pull secret, the cache installed, a delete', async () => {
    const docs = yaml.loadAll(await fs.readFile(path.join(REPO_ROOT, 'deploy', 'rbac.yaml'), 'utf8')) as KubeObject[];
    const clusterRole = docs.find((d) => d.kind === 'ClusterRole')!;
    const leaseRole = docs.find((d) => d.kind === 'Role')!;
    api.put({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'wasm-filter-system' } });
    // No wasme cache yet, so the operator installs it; and a current Istio's WasmPlugin CRD.
    for (const [v, kind, name] of [['v1', 'ConfigMap', 'wasme-cache'], ['apps/v1', 'DaemonSet', 'wasme-cache'], ['v1', 'ServiceAccount', 'wasme-cache'], ['rbac.authorization.k8s.io/v1', 'Role', 'wasme-cache'], ['rbac.authorization.k8s.io/v1', 'RoleBinding', 'wasme-cache']] as const) {
      api.remove(v, kind, 'wasme', name);
    }
    api.remove('v1', 'Namespace', undefined, 'wasme');
    const crd = (plural: string, group: string, kind: string, version: string) =>
      api.put({ apiVersion: 'apiextensions.k8s.io/v1', kind: 'CustomResourceDefinition', metadata: { name: `${plural}.${group}` }, spec: { group, scope: 'Namespaced', names: { plural, kind }, versions: [{ name: version, served: true, storage: true }] } });
    crd('wasmplugins', 'extensions.istio.io', 'WasmPlugin', 'v1alpha1');
    api.put({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'hub-login', namespace: 'bookinfo' }, type: 'kubernetes.io/dockerconfigjson', data: { '.dockerconfigjson': Buffer.from(JSON.stringify({ auths: {} })).toString('base64') } });
    api.rbac = { cluster: clusterRole.rules, namespaced: { 'wasm-filter-system': leaseRole.rules } };
    try {
      const { op } = await startOperator({ lease: { namespace: 'wasm-filter-system', name: 'wasm-filter-operator', durationMs: 1500, retryMs: 150 } });
      api.put(tutorialFd(image, { name: 'by-envoyfilter', istio: { labels: { app: 'productpage' }, mode: 'envoyfilter' } }));
      api.put(tutorialFd(image, { name: 'by-wasmplugin', istio: { labels: { app: 'ratings' }, mode: 'wasmplugin' }, filter: { imagePullOptions: { pullSecret: 'hub-login' } }, config: { greeting: 'hi' } }));
      await until(() => `both settled (refused: ${api.denied.join('; ')}; status: ${JSON.stringify([fdStatus('by-envoyfilter'), fdStatus('by-wasmplugin')])})`, () => fdStatus('by-envoyfilter')?.workloads?.['productpage-v1']?.state === 'Succeeded' && fdStatus('by-wasmplugin')?.workloads?.['ratings-v1']?.state === 'Succeeded');
      assert.ok(api.get('apps/v1', 'DaemonSet', 'wasme', 'wasme-cache'), "the operator installed wasme's cache");
      const plugin = api.get('extensions.istio.io/v1alpha1', 'WasmPlugin', 'bookinfo', 'by-wasmplugin.bookinfo')!;
      assert.equal(plugin.spec.imagePullSecret, 'hub-login');
      assert.deepEqual(plugin.spec.pluginConfig, { greeting: 'hi' }, 'a JSON config reaches WasmPlugin as JSON');
      assert.equal(plugin.metadata.ownerReferences[0].name, 'by-wasmplugin');
      for (const name of ['by-envoyfilter', 'by-wasmplugin']) api.remove(FD, 'FilterDeployment', 'bookinfo', name);
      await until('both gone', () => !api.get(FD, 'FilterDeployment', 'bookinfo', 'by-envoyfilter') && !api.get(FD, 'FilterDeployment', 'bookinfo', 'by-wasmplugin'));
      assert.deepEqual(api.denied, [], 'nothing was refused');
      await stopOperator(op);
    } finally {
      api.rbac = undefined;
    }
  });

  it('runs as `wasm-filter operator`: JSON logs, /healthz and /metrics, a clean stop on SIGTERM; `operator crd` is deploy/crd.yaml', async () => {
    const crd = await runCli(['operator', 'crd'], { home: tempDir() });
    assert.equal(crd.code, 0, crd.stderr);
    assert.deepEqual(yaml.load(crd.stdout), filterDeploymentCrd());
    assert.deepEqual(yaml.load(await fs.readFile(path.join(REPO_ROOT, 'deploy', 'crd.yaml'), 'utf8')), filterDeploymentCrd(), 'deploy/crd.yaml is the CRD the code serves');

    const port = await freePort();
    const child = spawn(process.execPath, [CLI, 'operator', '--kubeconfig', kubeconfig, '--lease-namespace', 'istio-system', '--lease-name', 'cli-lease', '--listen', `127.0.0.1:${port}`], {
      env: { ...process.env, WASM_FILTER_HOME: tempDir() },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
    try {
      await until('the controllers to start', () => stdout.includes('"controllers started"'), 20_000);
      const lines = stdout.trim().split('\n').map((l) => JSON.parse(l));
      assert.ok(lines.every((l) => l.time && l.level && l.msg), 'every line a structured record');
      assert.equal(await (await fetch(`http://127.0.0.1:${port}/healthz`)).text(), 'ok\n');
      const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      assert.match(metrics, /^wasm_filter_operator_leader 1$/m);
      assert.match(metrics, /^# TYPE wasm_filter_operator_reconcile_duration_seconds histogram$/m);
      assert.match(metrics, /^wasm_filter_operator_process_resident_memory_bytes \d+/m);
    } finally {
      child.kill('SIGTERM');
    }
    assert.equal(await exited, 0, stdout);
    assert.equal(api.get('coordination.k8s.io/v1', 'Lease', 'istio-system', 'cli-lease')?.spec.holderIdentity, '', 'the lease was given up');
  });
});
