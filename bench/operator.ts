// The FilterDeployment operator against the Kubernetes API double and a real registry: reconcile latency
// and API requests for 1, 100 and 1,000 FilterDeployments (WasmPlugin mode, one workload each), as ratios
// to a direct `deployFilter` of one filter in the same process; and the memory of a `wasm-filter operator`
// process holding 1,000 FilterDeployments, as a ratio to the same process idle.
// Usage: npm run bench:operator
import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Cluster } from '../src/core/deploy/cluster';
import { deployFilter } from '../src/core/deploy/deploy';
import { filterDeploymentCrd } from '../src/core/operator/filterDeployment';
import { FilterDeploymentOperator } from '../src/core/operator/operator';
import { CLI, runCli, tempDir, until } from '../test/helpers/env';
import { KubeApiDouble, seedBookinfo, type KubeObject } from '../test/helpers/kubeApi';
import { freePort, startRegistry } from '../test/helpers/registry';
import { filterWat, wat } from '../test/helpers/wasm';

const FD = 'wasme.io/v1';

async function pushImage(host: string): Promise<string> {
  const home = tempDir('wfs-bench-op-');
  const file = path.join(home, 'filter.wasm');
  await fs.writeFile(file, await wat(filterWat({ abi: 'proxy_abi_version_0_2_1' })));
  const image = `${host}/bench/filter:v1`;
  for (const args of [['build', 'precompiled', file, '-t', image, '--root-id', 'add_header'], ['push', image]]) {
    const r = await runCli(args, { home });
    if (r.code !== 0) throw new Error(r.stderr);
  }
  return image;
}

async function seeded(n: number, image: string): Promise<KubeApiDouble> {
  const api = await new KubeApiDouble().start();
  seedBookinfo(api, { istioVersion: '1.28.0', wasmPlugin: true });
  api.put(filterDeploymentCrd() as KubeObject);
  for (const ns of ['bench', 'wasm-filter-system']) api.put({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } });
  for (let i = 0; i < n; i++) {
    const labels = { app: `w${i}` };
    api.put({ apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: `w${i}`, namespace: 'bench', labels }, spec: { selector: { matchLabels: labels }, template: { metadata: { labels }, spec: { containers: [{ name: 'app', image: 'nginx' }] } } } });
    api.put({ apiVersion: FD, kind: 'FilterDeployment', metadata: { name: `f${i}`, namespace: 'bench' }, spec: { filter: { image, config: 'world' }, deployment: { istio: { kind: 'Deployment', labels, mode: 'wasmplugin' } } } });
  }
  return api;
}

const readyCount = (api: KubeApiDouble) => api.list(FD, 'FilterDeployment', 'bench').filter((f) => f.status?.conditions?.some((c: { type: string; status: string }) => c.type === 'Ready' && c.status === 'True')).length;

/** A direct deploy of one filter (what the CLI does), for the baseline. */
async function baseline(image: string, registryDigest: string): Promise<{ ms: number; requests: number }> {
  const api = await seeded(1, image);
  try {
    const cluster = await Cluster.open({ kubeconfig: api.writeKubeconfig(path.join(tempDir(), 'kubeconfig')) });
    const mark = api.requests.length;
    const t = process.hrtime.bigint();
    await deployFilter(cluster, { id: 'direct', namespace: 'bench', image, manifestDigest: registryDigest, wasmDigest: registryDigest, rootId: 'add_header', config: 'world', labels: { app: 'w0' }, workloadKind: 'deployment', patchContext: 'inbound' }, { mode: 'wasmplugin' });
    return { ms: Number(process.hrtime.bigint() - t) / 1e6, requests: api.requests.length - mark };
  } finally {
    await api.stop();
  }
}

async function operatorRun(n: number, image: string) {
  const api = await seeded(n, image);
  const cluster = await Cluster.open({ kubeconfig: api.writeKubeconfig(path.join(tempDir(), 'kubeconfig')) });
  const op = new FilterDeploymentOperator(cluster, {
    lease: { namespace: 'wasm-filter-system', name: 'bench', durationMs: 15_000, retryMs: 2_000 },
    workers: 4,
    backoff: { baseMs: 1000, maxMs: 300_000 },
    settleMs: 3_600_000,
    resyncMs: 3_600_000,
    tagTtlMs: 3_600_000,
    log: () => undefined,
  });
  try {
    const mark = api.requests.length;
    const t = process.hrtime.bigint();
    await op.start();
    await until('every FilterDeployment Ready', () => readyCount(api) === n, 600_000, 5);
    const allMs = Number(process.hrtime.bigint() - t) / 1e6;
    const requests = api.requests.length - mark;
    const writes = api.writesSince(mark).filter((r) => !r.path.includes('/leases')).length;
    // One change once all is steady: edit → watch event → reconcile → updated WasmPlugin.
    await new Promise((r) => setTimeout(r, 200));
    const fd = api.get(FD, 'FilterDeployment', 'bench', 'f0')!;
    const m2 = api.requests.length;
    const t2 = process.hrtime.bigint();
    api.put({ ...fd, spec: { ...fd.spec, filter: { ...fd.spec.filter, config: 'changed' } } });
    await until('the changed WasmPlugin', () => api.get('extensions.istio.io/v1alpha1', 'WasmPlugin', 'bench', 'f0.bench')?.spec.pluginConfig?.value === 'changed', 60_000, 5);
    const changeMs = Number(process.hrtime.bigint() - t2) / 1e6;
    await new Promise((r) => setTimeout(r, 300));
    return { allMs, requests, writes, changeMs, changeRequests: api.requests.length - m2, lookups: op.images.lookups };
  } finally {
    await op.stop();
    await api.stop();
  }
}

/** RSS and heap of a `wasm-filter operator` process once it holds `n` FilterDeployments (all Ready). */
async function operatorMemory(n: number, image: string): Promise<{ rss: number; heap: number }> {
  const api = await seeded(n, image);
  const kubeconfig = api.writeKubeconfig(path.join(tempDir(), 'kubeconfig'));
  const port = await freePort();
  const child = spawn(process.execPath, [CLI, 'operator', '--kubeconfig', kubeconfig, '--lease-namespace', 'wasm-filter-system', '--listen', `127.0.0.1:${port}`, '--settle', '1h', '--resync', '1h'], { stdio: process.env.BENCH_DEBUG ? 'inherit' : 'ignore', env: { ...process.env, WASM_FILTER_HOME: tempDir() } });
  try {
    await until('every FilterDeployment Ready', () => readyCount(api) === n && api.requests.length > 0, 600_000, 5);
    await new Promise((r) => setTimeout(r, 2000));
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    const metric = (name: string) => Number(new RegExp(`^${name} (\\S+)`, 'm').exec(text)?.[1] ?? NaN);
    return { rss: metric('wasm_filter_operator_process_resident_memory_bytes'), heap: metric('wasm_filter_operator_nodejs_heap_size_used_bytes') };
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
    await api.stop();
  }
}

async function main() {
  const registry = await startRegistry();
  try {
    const image = await pushImage(registry.host);
    const digest = `sha256:${'a'.repeat(64)}`;
    console.log(`# ${new Date().toISOString()} · node ${process.version} · ${os.cpus().length} × ${os.cpus()[0]?.model.trim()}`);
    const base = await baseline(image, digest);
    console.log(`baseline: one direct deployFilter (WasmPlugin mode): ${base.ms.toFixed(1)} ms, ${base.requests} requests`);
    console.log('| FilterDeployments | all Ready | per FD | API requests per FD (× direct) | writes per FD | one change → WasmPlugin (× direct) | requests for it | registry lookups |');
    console.log('|---|---|---|---|---|---|---|---|');
    for (const n of process.env.BENCH_MEMORY_ONLY ? [] : [1, 100, 1000]) {
      const r = await operatorRun(n, image);
      console.log(
        `| ${n} | ${r.allMs.toFixed(0)} ms | ${(r.allMs / n).toFixed(1)} ms | ${(r.requests / n).toFixed(1)} (${(r.requests / n / base.requests).toFixed(2)}×) | ${(r.writes / n).toFixed(1)} | ${r.changeMs.toFixed(1)} ms (${(r.changeMs / base.ms).toFixed(2)}×) | ${r.changeRequests} | ${r.lookups} |`,
      );
    }
    const idle = await operatorMemory(0, image);
    const full = await operatorMemory(1000, image);
    console.log(`memory of \`wasm-filter operator\`: idle RSS ${(idle.rss / 2 ** 20).toFixed(1)} MiB, heap ${(idle.heap / 2 ** 20).toFixed(1)} MiB; with 1,000 FilterDeployments RSS ${(full.rss / 2 ** 20).toFixed(1)} MiB (${(full.rss / idle.rss).toFixed(2)}×), heap ${(full.heap / 2 ** 20).toFixed(1)} MiB (${(full.heap / idle.heap).toFixed(2)}×)`);
  } finally {
    await registry.stop();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
