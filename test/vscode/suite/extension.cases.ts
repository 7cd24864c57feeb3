import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { WasmFilterStudioApi } from '../../../src/extension/extension';

const EXTENSION_ID = 'wasm-filter-studio.wasm-filter-studio';

async function api(): Promise<WasmFilterStudioApi> {
  const ext = vscode.extensions.getExtension<WasmFilterStudioApi>(EXTENSION_ID);
  assert.ok(ext, `${EXTENSION_ID} is installed`);
  return ext.isActive ? ext.exports : ext.activate();
}

function workspaceDir(): string {
  const folder = vscode.workspace.workspaceFolders?.[0];
  assert.ok(folder, 'the test workspace is open');
  return folder.uri.fsPath;
}

async function until<T>(what: string, probe: () => T | undefined | Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

const PROJECT = 'studio-filter';

export const cases: { name: string; fn: () => Promise<void> }[] = [
  {
    name: 'activates, exports API v1 and contributes its commands',
    fn: async () => {
      const exports = await api();
      assert.equal(exports.apiVersion, 1);
      const commands = await vscode.commands.getCommands(true);
      for (const id of ['wasmFilter.newFilter', 'wasmFilter.build', 'wasmFilter.refresh', 'wasmFilter.showModuleAsText', 'wasmFilter.tagImage', 'wasmFilter.removeImage']) {
        assert.ok(commands.includes(id), `${id} is registered`);
      }
      assert.equal(exports.storeRoot(), path.join(process.env.WASM_FILTER_HOME!, 'store'));
    },
  },
  {
    name: 'New Filter scaffolds and installs an AssemblyScript project',
    fn: async () => {
      const dir = await vscode.commands.executeCommand<string>('wasmFilter.newFilter', {
        language: 'assemblyscript',
        sdk: 'modern',
        platform: 'istio',
        platformVersion: '1.28.x',
        name: PROJECT,
        rootId: 'add_header',
        parentFolder: workspaceDir(),
        open: 'none',
      });
      assert.equal(dir, path.join(workspaceDir(), PROJECT));
      await fs.access(path.join(dir, 'node_modules', 'assemblyscript', 'package.json'));
      await fs.access(path.join(dir, 'wasm-filter.json'));
    },
  },
  {
    name: 'the task provider offers a build task for the project',
    fn: async () => {
      const tasks = await vscode.tasks.fetchTasks({ type: 'wasm-filter' });
      assert.ok(tasks.some((t) => t.definition.project === PROJECT), JSON.stringify(tasks.map((t) => t.definition)));
    },
  },
  {
    name: 'Build Filter builds the project and the Local Images tree shows the image',
    fn: async () => {
      const exports = await api();
      const outcome = await vscode.commands.executeCommand<{ result?: { reference: { repository: string; tag: string } } }>('wasmFilter.build', {
        project: path.join(workspaceDir(), PROJECT),
      });
      assert.equal(outcome.result?.reference.repository, PROJECT);
      const rows = await until('the image in Local Images', async () => {
        const r = await exports.localImageRows();
        return r.some((row) => row.label === `${PROJECT}:latest`) ? r : undefined;
      });
      const row = rows.find((r) => r.label === `${PROJECT}:latest`)!;
      assert.match(row.description, /^\d+(\.\d+)? kB · /);
    },
  },
  {
    name: 'a broken filter puts the compiler error in the Problems panel at its line and column',
    fn: async () => {
      const file = path.join(workspaceDir(), PROJECT, 'assembly', 'index.ts');
      const original = await fs.readFile(file, 'utf8');
      const broken = original.replace('if (value == "") value = "world!";', 'if (value == "") value = undefinedThing;');
      const lines = broken.split('\n');
      const line = lines.findIndex((l) => l.includes('undefinedThing'));
      const column = lines[line]!.indexOf('undefinedThing');
      await fs.writeFile(file, broken);
      try {
        await assert.rejects(Promise.resolve(vscode.commands.executeCommand('wasmFilter.build', { project: path.join(workspaceDir(), PROJECT) })), /failed: 1 error/);
        const uri = vscode.Uri.file(file);
        const diagnostic = await until('the diagnostic', () =>
          vscode.languages.getDiagnostics(uri).find((d) => String(typeof d.code === 'object' ? d.code.value : d.code) === 'TS2304'),
        );
        assert.equal(diagnostic.severity, vscode.DiagnosticSeverity.Error);
        assert.equal(diagnostic.message, "Cannot find name 'undefinedThing'.");
        assert.equal(diagnostic.range.start.line, line);
        assert.equal(diagnostic.range.start.character, column);
      } finally {
        await fs.writeFile(file, original);
      }
      // Fixing the code and building again clears the problem.
      await vscode.commands.executeCommand('wasmFilter.build', { project: path.join(workspaceDir(), PROJECT) });
      await until('the problem to clear', () => (vscode.languages.getDiagnostics(vscode.Uri.file(file)).length === 0 ? true : undefined));
    },
  },
  {
    name: 'wasm-filter.json is validated against the schema',
    fn: async () => {
      // Outside the workspace, so no later case sees a second project.
      const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'invalid-project-'));
      const file = path.join(dir, 'wasm-filter.json');
      try {
        await fs.writeFile(file, JSON.stringify({ name: 'Bad Name', language: 'cobol', platform: { name: 'istio', version: '1.28.x' }, rootId: 'add_header', build: { output: 'x.wasm' } }, null, 2));
        const doc = await vscode.workspace.openTextDocument(file);
        await vscode.window.showTextDocument(doc);
        // The JSON language server starts on first use, which can take a while on a busy machine.
        const problems = await until(
          'schema diagnostics',
          () => {
            const d = vscode.languages.getDiagnostics(doc.uri);
            return d.length >= 2 ? d : undefined;
          },
          60_000,
        );
        const text = problems.map((p) => `${p.range.start.line}: ${p.message}`).join('\n');
        assert.match(text, /^1: .*(pattern|match)/im, 'the name breaks the pattern');
        assert.match(text, /^2: .*(assemblyscript|enum|Value is not accepted)/im, 'the language is not one of the four');
      } finally {
        await vscode.commands.executeCommand('workbench.action.closeAllEditors');
        await fs.rm(dir, { recursive: true, force: true });
      }
    },
  },
  {
    name: 'Show Module as Text opens the module disassembled, as WebAssembly text',
    fn: async () => {
      await vscode.commands.executeCommand('wasmFilter.showModuleAsText', `webassemblyhub.io/${PROJECT}:latest`);
      const editor = await until('the editor', () => (vscode.window.activeTextEditor?.document.uri.scheme === 'wasm-filter-wat' ? vscode.window.activeTextEditor : undefined));
      assert.equal(editor.document.languageId, 'wat');
      assert.match(editor.document.getText(), /^\(module/);
      assert.match(editor.document.getText(), /\(export "proxy_abi_version_0_2_1"/);
    },
  },
  {
    name: 'tag and remove update the store and the tree',
    fn: async () => {
      const exports = await api();
      await vscode.commands.executeCommand('wasmFilter.tagImage', `webassemblyhub.io/${PROJECT}:latest`, `alice/${PROJECT}:v2`);
      await until('the tagged image', async () => ((await exports.localImageRows()).some((r) => r.label === `alice/${PROJECT}:v2`) ? true : undefined));
      await vscode.commands.executeCommand('wasmFilter.removeImage', `webassemblyhub.io/alice/${PROJECT}:v2`, true);
      const images = await exports.listImages();
      assert.deepEqual(images.map((i) => i.familiar), [`${PROJECT}:latest`]);
    },
  },
  {
    name: 'Registries view: add a registry, log in, push, browse with sizes, search, pull and delete',
    fn: async () => {
      const exports = await api();
      const registry = process.env.WASM_FILTER_TEST_REGISTRY;
      const user = process.env.WASM_FILTER_TEST_REGISTRY_USER;
      const password = process.env.WASM_FILTER_TEST_REGISTRY_PASSWORD;
      assert.ok(registry && user && password, 'the launcher started a registry for this test');
      const name = 'Test Registry';
      await vscode.commands.executeCommand('wasmFilter.addRegistry', { registry, name });
      await until('the registry asks for a login', async () => {
        const rows = await exports.registryRows([name]);
        return rows.some((r) => r.label.startsWith('Not logged in')) ? rows : undefined;
      });
      await assert.rejects(Promise.resolve(vscode.commands.executeCommand('wasmFilter.loginRegistry', registry, { username: user, secret: 'wrong-password' })), /rejected the credentials/);
      assert.equal(await vscode.commands.executeCommand('wasmFilter.loginRegistry', registry, { username: user, secret: password }), true);
      const settings = JSON.stringify(vscode.workspace.getConfiguration('wasmFilter').get('registries'));
      assert.ok(settings.includes(registry) && !settings.includes(password), 'the registry is in settings, its password is not');

      const remote = `${registry}/${user}/${PROJECT}:v1`;
      await vscode.commands.executeCommand('wasmFilter.tagImage', `webassemblyhub.io/${PROJECT}:latest`, remote);
      const pushed = (await vscode.commands.executeCommand('wasmFilter.pushImage', remote, remote)) as { manifestDigest: string; bytesTransferred: number };
      assert.match(pushed.manifestDigest, /^sha256:[0-9a-f]{64}$/);
      assert.ok(pushed.bytesTransferred > 1000);

      const repos = await until('the pushed repository', async () => {
        const rows = await exports.registryRows([name]);
        return rows.some((r) => r.label === `${user}/${PROJECT}`) ? rows : undefined;
      });
      assert.ok(repos.length >= 1);
      const [tag] = await exports.registryRows([name, `${user}/${PROJECT}`]);
      assert.equal(tag?.label, 'v1');
      assert.match(tag!.description, /^\d+(\.\d+)? kB · [0-9a-f]{8} · /, 'size and digest are shown');

      await vscode.commands.executeCommand('wasmFilter.searchRegistry', registry, 'no-such-filter');
      assert.deepEqual((await exports.registryRows([name])).map((r) => r.label), ['No repositories']);
      await vscode.commands.executeCommand('wasmFilter.searchRegistry', registry, PROJECT);
      assert.deepEqual((await exports.registryRows([name])).map((r) => r.label), [`${user}/${PROJECT}`]);
      await vscode.commands.executeCommand('wasmFilter.clearRegistrySearch', registry);

      await vscode.commands.executeCommand('wasmFilter.removeImage', remote, true);
      assert.equal(await vscode.commands.executeCommand('wasmFilter.pullImage', remote), remote);
      await until('the pulled image in Local Images', async () => ((await exports.localImageRows()).some((r) => r.label === remote) ? true : undefined));

      assert.equal(await vscode.commands.executeCommand('wasmFilter.deleteRemoteImage', remote, true), true);
      await until('the tag to be gone', async () => ((await exports.registryRows([name, `${user}/${PROJECT}`])).some((r) => r.label === 'v1') ? undefined : true));
    },
  },
  {
    name: 'Run Filter Locally answers a test request beside the editor; the Testing view lists and runs the filter tests',
    fn: async () => {
      const exports = await api();
      const project = path.join(workspaceDir(), PROJECT);
      const url = await exports.runLocally(project);
      assert.match(url, /^http:\/\/127\.0\.0\.1:\d+$/);
      const response = await exports.sendTestRequest({ path: 'GET /hi' });
      assert.equal(response.status, 200);
      assert.equal(response.headers.hello, 'world!');
      assert.equal(JSON.parse(response.body).path, '/hi', 'the built-in echo upstream answered');
      await until('the response beside the editor', () => vscode.window.visibleTextEditors.find((e) => e.document.getText().includes('hello: world!')));
      assert.equal(await exports.stopLocalRun(), true);
      await exports.runLocally(project, { configuration: 'tanjunchen20' });
      assert.equal((await exports.sendTestRequest({ path: 'GET /x', show: false })).headers.hello, 'tanjunchen20');
      await exports.stopLocalRun();
      await vscode.commands.executeCommand('workbench.action.closeAllEditors');

      const file = path.join(project, 'filter.test.yaml');
      const items = await exports.filterTestItems();
      assert.deepEqual(
        items.find((f) => f.file === file)?.cases.map((c) => c.line),
        [5, 20, 29, 36],
        'one item per case, at its line',
      );
      assert.ok((await exports.runFilterTests(file)).every((r) => r.ok));
      const original = await fs.readFile(file, 'utf8');
      try {
        await fs.writeFile(file, original + '\n  - name: a wrong expectation\n    expect:\n      status: 404\n');
        const results = await exports.runFilterTests(file);
        const wrong = results.find((r) => r.name === 'a wrong expectation');
        assert.equal(wrong?.ok, false);
        assert.deepEqual(wrong?.failures, ['status is 200, expected 404']);
        assert.equal(wrong?.line, original.split('\n').length + 1);
      } finally {
        await fs.writeFile(file, original);
      }
    },
  },
  {
    name: 'Deploy Filter creates a WasmPlugin; the Deployments view shows it; istio-proxy findings become Problems; Undeploy removes it',
    fn: async () => {
      const exports = await api();
      assert.ok(process.env.KUBECONFIG, 'the launcher gave a kubeconfig');
      const result = (await vscode.commands.executeCommand('wasmFilter.deployFilter', {
        image: `webassemblyhub.io/${PROJECT}:latest`,
        id: 'studio',
        namespace: 'bookinfo',
        labels: { app: 'reviews' },
        mode: 'wasmplugin',
        config: 'world',
        confirmed: true,
      })) as { writes: number; mode: string; workloads: string[] };
      assert.equal(result.mode, 'wasmplugin');
      assert.equal(result.writes, 1);
      assert.deepEqual(result.workloads, ['reviews-v1', 'reviews-v2', 'reviews-v3']);
      assert.deepEqual((await exports.deploymentRows()).map((r) => r.label), ['bookinfo', 'shop']);
      const [filter] = await exports.deploymentRows(['bookinfo']);
      assert.equal(filter?.label, 'studio');
      assert.match(filter!.description, /^wasmplugin · studio-filter:latest · 2 problem\(s\)$/);
      const problems = await until('the istio-proxy findings in the Problems panel', () => {
        const found = vscode.languages.getDiagnostics().flatMap(([uri, ds]) => ds.filter((d) => d.source === 'istio-proxy').map((d) => ({ uri, d })));
        return found.length >= 3 ? found : undefined;
      });
      const race = problems.find((p) => String(p.d.code) === 'cache-race');
      assert.ok(race, 'the Invalid path line is a Problem');
      assert.match(race.d.message, /cache raced the sidecar/);
      assert.match(race.d.relatedInformation?.[0]?.message ?? '', /^bookinfo\/reviews-v3-\S+ istio-proxy: .*Invalid path: \/var\/local\/lib\/wasme-cache\//);
      const pull = problems.find((p) => String(p.d.code) === 'image-pull-unauthorized');
      assert.ok(pull, 'the pull failure is a Problem');
      assert.match(pull.uri.path, new RegExp(`/${PROJECT}/wasm-filter\\.json$`), 'it lands on the project manifest');
      assert.match(pull.d.message, /imagePullSecret/);
      assert.match(pull.d.relatedInformation?.[0]?.message ?? '', /^bookinfo\/reviews-v1-\S+ istio-proxy: .*UNAUTHORIZED/);
      const abort = problems.find((p) => String(p.d.code) === 'filter-critical');
      assert.ok(abort, "the filter's abort is a Problem");
      assert.match(abort.uri.path, new RegExp(`/${PROJECT}/assembly/index\\.ts$`), 'on the source file the abort names');
      assert.equal(abort.d.range.start.line, 2, 'on the line it names (3, one-based)');
      assert.equal(abort.d.range.start.character, 4);
      assert.match(abort.d.relatedInformation?.[0]?.message ?? '', /^bookinfo\/reviews-v2-\S+ istio-proxy: .*header missing/);
      assert.equal(await vscode.commands.executeCommand('wasmFilter.undeployFilter', { id: 'studio', namespace: 'bookinfo' }), 1);
      assert.deepEqual((await exports.deploymentRows()).map((r) => r.label), ['shop']);
    },
  },
  {
    name: 'the Deployments view shows a FilterDeployment with the state and conditions its operator reports',
    fn: async () => {
      const exports = await api();
      const [fd] = await exports.deploymentRows(['shop']);
      assert.equal(fd?.label, 'cart-filter.shop');
      assert.equal(fd?.description, 'filterdeployment · cart-filter:v1 · not ready: ImageNotFound');
      const rows = await exports.deploymentRows(['shop', 'cart-filter.shop']);
      assert.deepEqual(rows, [
        { label: 'cart-v1', description: 'Failed' },
        { label: 'Ready: False', description: 'ImageNotFound' },
        { label: 'ProxiesHealthy: Unknown', description: 'NotDeployed' },
      ]);
    },
  },
  {
    name: 'build-and-deploy on save pushes to the dev registry and deploys the new build',
    fn: async () => {
      const exports = await api();
      const registry = process.env.WASM_FILTER_TEST_REGISTRY!;
      const config = vscode.workspace.getConfiguration('wasmFilter.deploy');
      const target = vscode.ConfigurationTarget.Global;
      await config.update('registry', `${registry}/alice`, target);
      await config.update('namespace', 'bookinfo', target);
      await config.update('labels', { app: 'ratings' }, target);
      await config.update('onSave', true, target);
      const file = path.join(workspaceDir(), PROJECT, 'assembly', 'index.ts');
      try {
        const doc = await vscode.workspace.openTextDocument(file);
        const editor = await vscode.window.showTextDocument(doc);
        // Earlier cases changed the file on disk behind the editor: take the disk's version, so the save is not a conflict.
        await vscode.commands.executeCommand('workbench.action.files.revert');
        assert.ok(await editor.edit((e) => e.insert(doc.lineAt(doc.lineCount - 1).range.end, '\n// saved to deploy\n')), 'the edit applied');
        assert.ok(await doc.save(), 'the save went through');
        const rowsOrState = until(
          'the deployment of the saved build',
          async () => {
            const state = exports.deployOnSaveState();
            if (state.state === 'failed') throw new Error(`deploy on save failed: ${state.message}`);
            const rows = await exports.deploymentRows(['bookinfo']);
            return rows.some((r) => r.label === PROJECT) ? rows.filter((r) => r.label === PROJECT) : undefined;
          },
          80_000,
        ).catch((err: Error) => {
          throw new Error(`${err.message}; deploy on save: ${JSON.stringify(exports.deployOnSaveState())}`);
        });
        const [row] = await rowsOrState;
        assert.match(row!.description, new RegExp(`^wasmplugin · ${PROJECT}:dev`));
      } finally {
        await config.update('onSave', undefined, target);
        const original = (await fs.readFile(file, 'utf8')).replace('\n// saved to deploy\n', '');
        await fs.writeFile(file, original);
        await vscode.commands.executeCommand('workbench.action.closeAllEditors');
      }
      // The dev registry needs a login, so the deploy made a pull Secret from it; undeploy removes both.
      assert.equal(await vscode.commands.executeCommand('wasmFilter.undeployFilter', { id: PROJECT, namespace: 'bookinfo' }), 2, 'the WasmPlugin and its pull Secret');
    },
  },
];
