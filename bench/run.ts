// Benchmarks, reported as ratios against a baseline measured in the same run:
//   1. `wasm-filter build` of the template vs a bare `asc` compile of the same sources and flags
//      (both as a user runs them: one process each); goal ≤ 1.2×.
//   2. a rebuild inside a long-lived process (what the extension does on save) vs the bare `asc` process.
//   3. extension activation (bundle load + activate()) vs loading an empty bundle, against a stub vscode API.
// Usage: npm run bench [-- --runs N]
import { execFileSync, spawnSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import Module from 'node:module';
import * as os from 'node:os';
import * as path from 'node:path';
import { buildProject } from '../src/core/build/build';
import { loadProject } from '../src/core/project/projectManifest';
import { scaffoldProject } from '../src/core/scaffold/scaffold';
import { LocalStore } from '../src/core/store/localStore';

const REPO = path.resolve(__dirname, '..', '..');
const CLI = path.join(REPO, 'dist', 'cli.js');
const runsArg = process.argv.indexOf('--runs');
const RUNS = runsArg > 0 ? Number(process.argv[runsArg + 1]) : 5;

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

function timeProcess(args: string[], cwd: string, env: NodeJS.ProcessEnv): number {
  const started = process.hrtime.bigint();
  const result = spawnSync(process.execPath, args, { cwd, env, stdio: 'pipe' });
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  if (result.status !== 0) throw new Error(`${args.join(' ')} failed:\n${result.stderr}`);
  return ms;
}

async function benchBuild(sdk: 'modern' | 'wasme') {
  const root = await fs.mkdtemp(path.join(os.tmpdir(), 'wfs-bench-'));
  const dir = path.join(root, `bench-${sdk}`);
  await scaffoldProject({ dir, language: 'assemblyscript', sdk, platform: 'istio', platformVersion: sdk === 'wasme' ? '1.9.x' : '1.28.x', rootId: 'add_header', name: `bench-${sdk}`, install: true });
  const project = await loadProject(dir);
  const ascBin = path.join(dir, 'node_modules', 'assemblyscript', 'bin', sdk === 'wasme' ? 'asc' : 'asc.js');
  const env = { ...process.env, WASM_FILTER_HOME: path.join(root, 'home') };
  const asc: number[] = [];
  const cli: number[] = [];
  // Warm the file cache once, then alternate so drift hits both sides alike.
  timeProcess([ascBin, ...project.manifest.build.args!], dir, env);
  for (let i = 0; i < RUNS; i++) {
    asc.push(timeProcess([ascBin, ...project.manifest.build.args!], dir, env));
    cli.push(timeProcess([CLI, 'build', dir, '-t', `bench-${sdk}:v${i}`], dir, env));
  }
  const store = await LocalStore.open(path.join(root, 'in-process-store'));
  await buildProject(dir, { store, tag: 'warmup:v1' });
  const warm: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const started = process.hrtime.bigint();
    await buildProject(dir, { store, tag: `warm:v${i}` });
    warm.push(Number(process.hrtime.bigint() - started) / 1e6);
  }
  await fs.rm(root, { recursive: true, force: true });
  return { sdk, asc: median(asc), cli: median(cli), warm: median(warm) };
}

/** Loads a bundle against a stub `vscode` module and times require + activate(). */
async function benchActivation() {
  const stubDir = await fs.mkdtemp(path.join(os.tmpdir(), 'wfs-bench-vscode-'));
  const empty = path.join(stubDir, 'empty-extension.js');
  await fs.writeFile(empty, 'exports.activate = () => ({}); exports.deactivate = () => {};');
  const disposable = { dispose() {} };
  const event = () => disposable;
  const emitterClass = class {
    event = event;
    fire() {}
    dispose() {}
  };
  const proxy: any = new Proxy(function () {}, {
    get: (_t, key) => (key === 'then' ? undefined : key === Symbol.toPrimitive ? () => '' : proxy),
    apply: () => proxy,
    construct: () => proxy,
  });
  const vscodeStub = {
    EventEmitter: emitterClass,
    window: { createOutputChannel: () => ({ info() {}, warn() {}, error() {}, show() {}, dispose() {} }), createTreeView: () => ({ onDidChangeVisibility: event, dispose() {}, visible: true }) },
    workspace: {
      onDidChangeConfiguration: event,
      onDidSaveTextDocument: event,
      getConfiguration: () => ({ get: () => undefined }),
      createFileSystemWatcher: () => ({ onDidChange: event, onDidCreate: event, onDidDelete: event, dispose() {} }),
      registerTextDocumentContentProvider: () => disposable,
    },
    tasks: { registerTaskProvider: () => disposable },
    commands: { registerCommand: () => disposable, executeCommand: async () => undefined },
    RelativePattern: class {},
    Uri: { file: (p: string) => ({ fsPath: p }) },
    TreeItem: class {},
    ThemeIcon: class {},
    QuickInputButtons: { Back: {} },
  };
  const load = (Module as any)._load;
  (Module as any)._load = function (request: string, ...rest: unknown[]) {
    return request === 'vscode' ? { ...proxy, ...vscodeStub } : load.call(this, request, ...rest);
  };
  const time = (file: string) => {
    delete require.cache[require.resolve(file)];
    const started = process.hrtime.bigint();
    const ext = require(file);
    ext.activate({ subscriptions: [] });
    return Number(process.hrtime.bigint() - started) / 1e6;
  };
  const ours: number[] = [];
  const baseline: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    baseline.push(time(empty));
    ours.push(time(path.join(REPO, 'dist', 'extension.js')));
  }
  (Module as any)._load = load;
  await fs.rm(stubDir, { recursive: true, force: true });
  return { baseline: median(baseline), ours: median(ours), first: ours[0]! };
}

async function main() {
  const lines: string[] = [];
  const say = (s: string) => {
    lines.push(s);
    console.log(s);
  };
  say(`# ${new Date().toISOString()} · node ${process.version} · ${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'} · ${RUNS} runs, medians`);
  for (const sdk of ['modern', 'wasme'] as const) {
    const r = await benchBuild(sdk);
    say(`build ${sdk}: bare asc ${r.asc.toFixed(0)} ms · wasm-filter build ${r.cli.toFixed(0)} ms · ratio ${(r.cli / r.asc).toFixed(2)}× (goal ≤ 1.20×)`);
    say(`build ${sdk}: warm in-process rebuild ${r.warm.toFixed(0)} ms · ratio to bare asc ${(r.warm / r.asc).toFixed(2)}×`);
  }
  const a = await benchActivation();
  say(`activation: empty bundle ${a.baseline.toFixed(2)} ms · wasm-filter-studio ${a.ours.toFixed(2)} ms (first load ${a.first.toFixed(1)} ms) · difference ${(a.ours - a.baseline).toFixed(2)} ms`);
  const git = (() => {
    try {
      return execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: REPO, encoding: 'utf8' }).trim();
    } catch {
      return 'unknown';
    }
  })();
  console.log(`(commit ${git})`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
