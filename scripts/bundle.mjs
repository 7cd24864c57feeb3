// Bundles the extension and the CLI with esbuild: one file each, dependencies included, so the VSIX
// ships without node_modules (vsce --no-dependencies) and the CLI starts without resolving packages.
import { build } from 'esbuild';
import { readFileSync, chmodSync } from 'node:fs';

const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
const production = process.argv.includes('--production');
const common = {
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  sourcemap: production ? false : 'linked',
  minify: production,
  logLevel: 'warning',
  define: { PACKAGE_VERSION: JSON.stringify(pkg.version) },
};

// The extension ships without node_modules, so the Kubernetes client is bundled — into a file of its own,
// dist/k8s.js, that the extension imports only when it first talks to a cluster (activation stays fast).
const k8sBeside = {
  name: 'k8s-beside',
  setup(b) {
    b.onResolve({ filter: /^@kubernetes\/client-node$/ }, () => ({ path: './k8s.js', external: true }));
  },
};

await Promise.all([
  build({ ...common, entryPoints: ['src/extension/extension.ts'], outfile: 'dist/extension.js', external: ['vscode'], plugins: [k8sBeside] }),
  build({ ...common, entryPoints: ['node_modules/@kubernetes/client-node/dist/index.js'], outfile: 'dist/k8s.js' }),
  // The Kubernetes client (an ES module, ~15 MB bundled) stays a runtime dependency, loaded by import() only
  // when a command talks to a cluster, so that every other command starts fast.
  build({ ...common, entryPoints: ['src/cli/index.ts'], outfile: 'dist/cli.js', banner: { js: '#!/usr/bin/env node' }, external: ['@kubernetes/client-node'] }),
  // The AssemblyScript compiler runs in worker threads (one realm per compiler install).
  build({ ...common, entryPoints: ['src/core/build/ascWorker.ts'], outfile: 'dist/ascWorker.js' }),
  // Each proxy-wasm VM runs in a worker thread, so a runaway filter can be stopped.
  build({ ...common, entryPoints: ['src/core/host/vmWorker.ts'], outfile: 'dist/vmWorker.js' }),
]);
chmodSync('dist/cli.js', 0o755);
