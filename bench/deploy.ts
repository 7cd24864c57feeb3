// API requests and wall time of a deploy to 1, 10 and 100 workloads in each mode, against the Kubernetes API
// double through the real client library (goal: O(1) requests for WasmPlugin mode).
// Usage: npm run bench:deploy
import * as os from 'node:os';
import * as path from 'node:path';
import { mkdtempSync, rmSync } from 'node:fs';
import { Cluster } from '../src/core/deploy/cluster';
import { deployFilter } from '../src/core/deploy/deploy';
import type { FilterToDeploy } from '../src/core/deploy/istioObjects';
import { KubeApiDouble, seedBookinfo } from '../test/helpers/kubeApi';

async function run(mode: 'wasmplugin' | 'envoyfilter', workloads: number) {
  const api = await new KubeApiDouble().start();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'wfs-bench-deploy-'));
  try {
    seedBookinfo(api, { istioVersion: mode === 'wasmplugin' ? '1.28.0' : '1.8.1', wasmPlugin: mode === 'wasmplugin' });
    api.put({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'bench' } });
    for (let i = 0; i < workloads; i++) {
      const labels = { app: 'bench', instance: `w${i}` };
      api.put({ apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: `w${i}`, namespace: 'bench', labels }, spec: { selector: { matchLabels: labels }, template: { metadata: { labels }, spec: { containers: [{ name: 'app', image: 'nginx' }] } } } });
    }
    const cluster = await Cluster.open({ kubeconfig: api.writeKubeconfig(path.join(dir, 'kubeconfig')) });
    const f: FilterToDeploy = { id: 'bench', namespace: 'bench', image: 'webassemblyhub.io/bench/f:v1', manifestDigest: `sha256:${'a'.repeat(64)}`, wasmDigest: `sha256:${'b'.repeat(64)}`, rootId: 'add_header', config: 'world', labels: { app: 'bench' }, workloadKind: 'deployment', patchContext: 'inbound' };
    const before = api.requests.length;
    const started = process.hrtime.bigint();
    await deployFilter(cluster, f, { mode });
    const ms = Number(process.hrtime.bigint() - started) / 1e6;
    const requests = api.requests.length - before;
    const writes = api.writesSince(before).length;
    const again = api.requests.length;
    const started2 = process.hrtime.bigint();
    await deployFilter(cluster, f, { mode });
    const ms2 = Number(process.hrtime.bigint() - started2) / 1e6;
    return { requests, writes, ms, requests2: api.requests.length - again, writes2: api.writesSince(again).length, ms2 };
  } finally {
    await api.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main() {
  console.log(`# ${new Date().toISOString()} · node ${process.version} · ${os.cpus().length} × ${os.cpus()[0]?.model.trim()}`);
  console.log('| mode | workloads | requests | writes | wall time | second deploy: requests / writes / time |');
  console.log('|---|---|---|---|---|---|');
  for (const mode of ['wasmplugin', 'envoyfilter'] as const) {
    for (const n of [1, 10, 100]) {
      const r = await run(mode, n);
      console.log(`| ${mode} | ${n} | ${r.requests} | ${r.writes} | ${r.ms.toFixed(0)} ms | ${r.requests2} / ${r.writes2} / ${r.ms2.toFixed(0)} ms |`);
    }
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
