// Time from a save to the updated WasmPlugin in the cluster, along the extension's build-and-deploy-on-save
// pipeline (warm in-process build → push to a loopback docker-registry → deploy to the Kubernetes API
// double), with the time of each step. VS Code's own save event and the 300 ms debounce are not included.
// Usage: npm run bench:deploy-on-save [-- --runs N]
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { buildProject } from '../src/core/build/build';
import { Cluster } from '../src/core/deploy/cluster';
import { deployFilter } from '../src/core/deploy/deploy';
import { imageForDeploy } from '../src/core/deploy/deployImage';
import { clientFactory } from '../src/core/registry/access';
import { pushImage } from '../src/core/registry/transfer';
import { scaffoldProject } from '../src/core/scaffold/scaffold';
import { LocalStore } from '../src/core/store/localStore';
import { KubeApiDouble, seedBookinfo } from '../test/helpers/kubeApi';
import { startRegistry } from '../test/helpers/registry';

const runsArg = process.argv.indexOf('--runs');
const RUNS = runsArg > 0 ? Number(process.argv[runsArg + 1]) : 5;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const now = () => Number(process.hrtime.bigint()) / 1e6;

async function main() {
  const root = await fs.mkdtemp(path.join(os.tmpdir(), 'wfs-bench-dos-'));
  const registry = await startRegistry();
  const kube = await new KubeApiDouble().start();
  try {
    seedBookinfo(kube, { istioVersion: '1.28.0', wasmPlugin: true });
    const cluster = await Cluster.open({ kubeconfig: kube.writeKubeconfig(path.join(root, 'kubeconfig')) });
    const dir = path.join(root, 'add-header');
    await scaffoldProject({ dir, language: 'assemblyscript', sdk: 'modern', platform: 'istio', platformVersion: '1.28.x', rootId: 'add_header', name: 'add-header', install: true });
    const store = await LocalStore.open(path.join(root, 'store'));
    const clients = clientFactory({ credentials: { description: 'none', get: async () => undefined } });
    await buildProject(dir, { store }); // warm: the extension keeps its compiler worker loaded
    const source = path.join(dir, 'assembly', 'index.ts');
    const original = await fs.readFile(source, 'utf8');
    const steps = { build: [] as number[], push: [] as number[], deploy: [] as number[], total: [] as number[] };
    for (let i = 0; i < RUNS; i++) {
      const t0 = now();
      await fs.writeFile(source, `${original}\n// save ${i}\n`);
      const built = await buildProject(dir, { store });
      const t1 = now();
      const target = `${registry.host}/dev/add-header:dev`;
      await pushImage(store, 'add-header:latest', { clients, target });
      const t2 = now();
      const facts = await imageForDeploy(store, target, clients);
      await deployFilter(cluster, { id: 'add-header', namespace: 'bookinfo', image: facts.image, manifestDigest: facts.manifestDigest, wasmDigest: facts.wasmDigest, rootId: 'add_header', labels: { app: 'reviews' }, workloadKind: 'deployment', patchContext: 'inbound' }, { mode: 'auto' });
      const t3 = now();
      const plugin = kube.get('extensions.istio.io/v1alpha1', 'WasmPlugin', 'bookinfo', 'add-header');
      if (plugin?.spec.sha256 !== built.manifestDigest.slice(7)) throw new Error('the WasmPlugin does not pin the new build');
      steps.build.push(t1 - t0);
      steps.push.push(t2 - t1);
      steps.deploy.push(t3 - t2);
      steps.total.push(t3 - t0);
    }
    await fs.writeFile(source, original);
    console.log(`# ${new Date().toISOString()} · node ${process.version} · ${os.cpus().length} × ${os.cpus()[0]?.model.trim()} · ${RUNS} saves, medians`);
    console.log('| save → updated WasmPlugin | warm build | push to dev registry | deploy |');
    console.log('|---|---|---|---|');
    console.log(`| **${median(steps.total).toFixed(0)} ms** | ${median(steps.build).toFixed(0)} ms | ${median(steps.push).toFixed(0)} ms | ${median(steps.deploy).toFixed(0)} ms |`);
  } finally {
    await kube.stop();
    await registry.stop();
    await fs.rm(root, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
