import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { UserError } from '../core/errors';
import { summarizeStore, type ImageSummary } from '../core/imageSummary';
import { PROJECT_FILE, loadProject } from '../core/project/projectManifest';
import { formatReference, parseReference } from '../core/reference';
import { BuildTasks, TASK_TYPE, type BuildOutcome, type BuildTaskDefinition } from './buildTask';
import { registerCommand } from './commandRegistry';
import { ImageItem, LocalImagesTree } from './localImagesTree';
import { newFilter, type NewFilterArgs } from './newFilterWizard';
import { ClusterService, DeployOnSave, DeploymentsTree, deployCommand, undeployCommand, type DeployArgs } from './deployments';
import { FilterTestController } from './filterTestController';
import { LocalRunner, type TestResponse } from './localRun';
import { RegistriesTree } from './registriesTree';
import { registerRegistryCommands } from './registryCommands';
import { RegistryService } from './registryService';
import { StoreService } from './storeService';
import { INSPECT_SCHEME, VirtualDocuments, WAT_SCHEME } from './virtualDocuments';

/** What other extensions get from `getExtension(...).exports`; versioned so it can grow without breaking them. */
export interface WasmFilterStudioApi {
  readonly apiVersion: 1;
  storeRoot(): string;
  listImages(): Promise<ImageSummary[]>;
  /** Builds a project folder as the "Build Filter" command does, and resolves when the build ends. */
  build(project: string, options?: { tag?: string; variant?: 'oci' | 'compat' }): Promise<BuildOutcome>;
  readonly onDidChangeImages: vscode.Event<void>;
  /** The Local Images view's current rows (label and description), for tests and tooling. */
  localImageRows(): Promise<{ label: string; description: string }[]>;
  /** The Registries view's rows below a path of labels (registry name, then repository), for tests and tooling. */
  registryRows(path?: string[]): Promise<{ label: string; description: string }[]>;
  /** Runs a project in the local proxy (as "Run Filter Locally"); resolves with its address. */
  runLocally(project: string, options?: { configuration?: string }): Promise<string>;
  stopLocalRun(): Promise<boolean>;
  sendTestRequest(request?: { method?: string; path?: string; body?: string; show?: boolean }): Promise<TestResponse>;
  /** The filter test cases the Testing view shows, by file: label and 1-based line. */
  filterTestItems(): Promise<{ file: string; cases: { label: string; line: number }[] }[]>;
  /** Runs a filter test file as the Testing view does. */
  runFilterTests(file: string): Promise<{ name: string; ok: boolean; failures: string[]; line: number }[]>;
  /** How the last build-and-deploy on save went. */
  deployOnSaveState(): { state: string; message?: string };
  /** The Deployments view's rows below a path of labels (namespace, then filter id). */
  deploymentRows(path?: string[]): Promise<{ label: string; description: string }[]>;
}

export function activate(context: vscode.ExtensionContext): WasmFilterStudioApi {
  const log = vscode.window.createOutputChannel('Wasm Filter Studio', { log: true });
  const store = new StoreService();
  const tree = new LocalImagesTree(store, log);
  const view = vscode.window.createTreeView('wasmFilter.localImages', { treeDataProvider: tree, showCollapseAll: false });
  tree.attach(view);
  const registries = new RegistryService(context.secrets);
  const registriesTree = new RegistriesTree(registries, log);
  const registriesView = vscode.window.createTreeView('wasmFilter.registries', { treeDataProvider: registriesTree, showCollapseAll: true });
  registriesTree.attach(registriesView);
  const tasks = new BuildTasks(store, log);
  const runner = new LocalRunner(store);
  const clusters = new ClusterService();
  const deploymentsTree = new DeploymentsTree(clusters, log);
  const deploymentsView = vscode.window.createTreeView('wasmFilter.deployments', { treeDataProvider: deploymentsTree, showCollapseAll: true });
  deploymentsView.onDidChangeVisibility((e) => {
    if (e.visible) {
      void clusters.showContext();
      deploymentsTree.refresh();
    }
  });
  clusters.onDidChange(() => deploymentsTree.refresh());
  const filterTests = new FilterTestController(store, log);
  const documents = new VirtualDocuments(store);
  context.subscriptions.push(
    log,
    store,
    tree,
    view,
    tasks,
    registries,
    runner,
    clusters,
    deploymentsTree,
    deploymentsView,
    filterTests,
    registriesTree,
    registriesView,
    vscode.tasks.registerTaskProvider(TASK_TYPE, tasks),
    vscode.workspace.registerTextDocumentContentProvider(WAT_SCHEME, documents),
    vscode.workspace.registerTextDocumentContentProvider(INSPECT_SCHEME, documents),
  );
  log.info(`Wasm Filter Studio activated; store at ${store.root}`);

  const command = (id: string, handler: (...args: any[]) => unknown) => registerCommand(context, log, id, handler);

  /** Runs the build task for a project and waits for its outcome, with a cancellable progress notification. */
  const build = async (dir: string, options: { tag?: string; variant?: 'oci' | 'compat' } = {}): Promise<BuildOutcome> => {
    if (!vscode.workspace.isTrusted) {
      throw new UserError('Building runs the project\'s compiler and toolchain, which needs a trusted workspace.', 'Trust this workspace (Manage Workspace Trust), then build again.');
    }
    const project = await loadProject(dir);
    const folder = vscode.workspace.getWorkspaceFolder(vscode.Uri.file(project.dir));
    const definition: BuildTaskDefinition = { type: TASK_TYPE, project: project.dir, ...options };
    const task = tasks.createTask(definition, folder, `build ${project.manifest.name}`);
    return vscode.window.withProgress(
      { location: vscode.ProgressLocation.Notification, title: `Building ${project.manifest.name}`, cancellable: true },
      async (_progress, token) => {
        // A build of the same project still running is replaced, as a new save makes the old build moot;
        // starting the same task twice would make VS Code ask the user instead.
        for (const running of vscode.tasks.taskExecutions) {
          if (isBuildOf(running.task, project.dir)) {
            const ended = taskEnd(running);
            running.terminate();
            await ended;
          }
        }
        const outcome = new Promise<BuildOutcome>((resolve) => {
          const sub = tasks.onDidFinishBuild((o) => {
            if (path.resolve(o.project) === project.dir) {
              sub.dispose();
              resolve(o);
            }
          });
        });
        const execution = await vscode.tasks.executeTask(task);
        const ended = taskEnd(execution);
        token.onCancellationRequested(() => execution.terminate());
        const result = await outcome;
        // The command returns once the task has ended too, so the next build never meets it still active.
        await ended;
        return result;
      },
    );
  };

  const isBuildOf = (task: vscode.Task, dir: string) =>
    task.definition.type === TASK_TYPE && typeof task.definition.project === 'string' && path.resolve(task.definition.project) === dir;

  /** Resolves when a task execution has ended (or after 10 s, should VS Code never say so). */
  const taskEnd = (execution: vscode.TaskExecution) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(done, 10_000);
      const sub = vscode.tasks.onDidEndTask((e) => {
        if (e.execution === execution || (isBuildOf(e.execution.task, String(execution.task.definition.project)) && e.execution.task.name === execution.task.name)) done();
      });
      function done() {
        clearTimeout(timer);
        sub.dispose();
        resolve();
      }
    });

  /** The project for a command: the argument, the active editor's project, or a pick among the workspace's. */
  const chooseProject = async (arg: unknown): Promise<string> => {
    if (arg instanceof vscode.Uri) return path.basename(arg.fsPath) === PROJECT_FILE ? path.dirname(arg.fsPath) : arg.fsPath;
    if (typeof arg === 'string') return arg;
    if (arg && typeof arg === 'object' && typeof (arg as { project?: unknown }).project === 'string') return (arg as { project: string }).project;
    const active = vscode.window.activeTextEditor?.document.uri;
    if (active?.scheme === 'file') {
      const found = await findProjectAbove(active.fsPath);
      if (found) return found;
    }
    const manifests = await vscode.workspace.findFiles(`**/${PROJECT_FILE}`, '**/node_modules/**', 50);
    if (manifests.length === 1) return path.dirname(manifests[0]!.fsPath);
    if (manifests.length === 0) {
      throw new UserError('No filter project is open (no wasm-filter.json in the workspace).', 'Create one with "Wasm Filter: New Filter…", or open a project folder.');
    }
    const picked = await vscode.window.showQuickPick(
      manifests.map((m) => ({ label: path.basename(path.dirname(m.fsPath)), description: vscode.workspace.asRelativePath(path.dirname(m.fsPath)), dir: path.dirname(m.fsPath) })),
      { title: 'Build which filter?' },
    );
    if (!picked) throw new UserError('No project chosen.', undefined, 'E_CANCELLED');
    return picked.dir;
  };

  const chooseImage = async (arg: unknown): Promise<string> => {
    if (arg instanceof ImageItem) return arg.image.reference;
    if (typeof arg === 'string') return arg;
    const images = await summarizeStore(await store.open());
    if (!images.length) throw new UserError('The local store has no images.', 'Build a filter first ("Wasm Filter: Build Filter").');
    const picked = await vscode.window.showQuickPick(
      images.map((i) => ({ label: i.familiar, description: `ABI ${i.abi ?? '?'} · ${i.variant}`, ref: i.reference })),
      { title: 'Which image?' },
    );
    if (!picked) throw new UserError('No image chosen.', undefined, 'E_CANCELLED');
    return picked.ref;
  };

  command('wasmFilter.newFilter', (args?: NewFilterArgs) => newFilter(args && typeof args === 'object' ? args : {}));
  command('wasmFilter.build', async (arg?: unknown) => {
    const dir = await chooseProject(arg);
    const options = arg && typeof arg === 'object' && !(arg instanceof vscode.Uri) ? (arg as { tag?: string; variant?: 'oci' | 'compat' }) : {};
    const outcome = await build(dir, { ...(options.tag ? { tag: options.tag } : {}), ...(options.variant ? { variant: options.variant } : {}) });
    if (outcome.error) throw outcome.error;
    return outcome;
  });
  command('wasmFilter.refresh', () => tree.refresh());
  command('wasmFilter.showLog', () => log.show());
  command('wasmFilter.copyReference', async (item: unknown) => {
    const ref = await chooseImage(item);
    await vscode.env.clipboard.writeText(ref);
    vscode.window.setStatusBarMessage(`Copied ${ref}`, 3000);
    return ref;
  });
  command('wasmFilter.inspectImage', async (item: unknown) => {
    const ref = await chooseImage(item);
    const doc = await vscode.workspace.openTextDocument(VirtualDocuments.inspectUri(ref));
    await vscode.languages.setTextDocumentLanguage(doc, 'json');
    await vscode.window.showTextDocument(doc, { preview: true });
    return doc.uri.toString();
  });
  command('wasmFilter.tagImage', async (item: unknown, target?: string) => {
    const ref = await chooseImage(item);
    const value =
      target ??
      (await vscode.window.showInputBox({
        title: `Tag ${ref}`,
        prompt: 'NAME:TAG, e.g. webassemblyhub.io/alice/add-header:v2',
        value: ref,
        validateInput: (v) => {
          try {
            parseReference(v);
            return undefined;
          } catch (err) {
            return (err as Error).message;
          }
        },
      }));
    if (!value) return undefined;
    const image = await (await store.open()).tag(ref, value);
    store.notifyChanged();
    return image.refName;
  });
  command('wasmFilter.removeImage', async (item: unknown, confirmed?: boolean) => {
    const ref = await chooseImage(item);
    if (!confirmed) {
      const answer = await vscode.window.showWarningMessage(`Remove ${ref} from the local store?`, { modal: true, detail: 'Blobs no other image uses are deleted.' }, 'Remove');
      if (answer !== 'Remove') return undefined;
    }
    const result = await (await store.open()).remove([ref]);
    store.notifyChanged();
    return result;
  });
  command('wasmFilter.showModuleAsText', async (arg?: unknown) => {
    const uri =
      arg instanceof vscode.Uri && arg.fsPath.endsWith('.wasm')
        ? VirtualDocuments.watUri({ file: arg.fsPath })
        : VirtualDocuments.watUri({ ref: await chooseImage(arg) });
    const doc = await vscode.workspace.openTextDocument(uri);
    await vscode.languages.setTextDocumentLanguage(doc, 'wat');
    await vscode.window.showTextDocument(doc, { preview: false });
    return doc.uri.toString();
  });

  /** The image of a project (the one of `uri`, else of the active editor), when it has been built. */
  const chooseProjectImage = async (uri?: vscode.Uri): Promise<string | undefined> => {
    const target = uri ?? vscode.window.activeTextEditor?.document.uri;
    const dir = target?.scheme === 'file' ? await findProjectAbove(target.fsPath) : undefined;
    if (!dir) return undefined;
    const project = await loadProject(dir);
    const ref = formatReference(parseReference(project.manifest.name));
    const found = await (await store.open()).resolve(ref).then(() => true, () => false);
    if (found) return ref;
    if (uri) throw new UserError(`${project.manifest.name} has no image in the local store yet.`, 'Build it first ("Wasm Filter: Build Filter"), then push.', 'E_IMAGE_NOT_FOUND');
    return undefined;
  };
  command('wasmFilter.runLocally', async (arg?: unknown) => {
    const options = arg && typeof arg === 'object' && !(arg instanceof vscode.Uri) ? (arg as { project?: string; configuration?: string }) : {};
    const dir = await chooseProject(options.project ?? arg);
    if (!vscode.workspace.isTrusted) throw new UserError('Running a filter needs a trusted workspace.', 'Trust this workspace (Manage Workspace Trust), then run again.');
    return runner.start(dir, options.configuration !== undefined ? { configuration: options.configuration } : {});
  });
  command('wasmFilter.stopLocalRun', () => runner.stop());
  command('wasmFilter.sendTestRequest', (request?: { method?: string; path?: string; body?: string; show?: boolean }) =>
    runner.sendTestRequest(request && typeof request === 'object' ? request : {}),
  );

  command('wasmFilter.deployFilter', (args?: unknown) =>
    deployCommand(
      { clusters, store, registries, tree: deploymentsTree },
      args instanceof ImageItem ? { image: args.image.reference } : args && typeof args === 'object' && !(args instanceof vscode.Uri) ? (args as Partial<DeployArgs>) : undefined,
    ),
  );
  command('wasmFilter.undeployFilter', (arg?: unknown) => undeployCommand({ clusters, tree: deploymentsTree }, arg));
  command('wasmFilter.refreshDeployments', () => deploymentsTree.refresh());
  command('wasmFilter.chooseContext', (name?: string) => clusters.chooseContext(typeof name === 'string' ? name : undefined));

  registerRegistryCommands(command, { registries, tree: registriesTree, store, chooseImage, chooseProjectImage });

  const deployOnSave = new DeployOnSave({ clusters, store, registries, tree: deploymentsTree, log });
  context.subscriptions.push(deployOnSave, registerBuildOnSave(build, log, deployOnSave));

  return {
    apiVersion: 1,
    storeRoot: () => store.root,
    listImages: async () => summarizeStore(await store.open()),
    build,
    onDidChangeImages: store.onDidChange,
    localImageRows: async () =>
      (await tree.getChildren()).map((i) => ({ label: String(typeof i.label === 'object' ? i.label.label : (i.label ?? '')), description: String(i.description ?? '') })),
    runLocally: (project, options = {}) => vscode.commands.executeCommand('wasmFilter.runLocally', { project, ...options }) as Promise<string>,
    stopLocalRun: () => runner.stop(),
    sendTestRequest: (request = {}) => runner.sendTestRequest(request),
    filterTestItems: async () => {
      await filterTests.discover();
      const files: { file: string; cases: { label: string; line: number }[] }[] = [];
      filterTests.controller.items.forEach((item) => {
        const cases: { label: string; line: number }[] = [];
        item.children.forEach((c) => cases.push({ label: c.label, line: (c.range?.start.line ?? -1) + 1 }));
        files.push({ file: item.uri?.fsPath ?? item.id, cases });
      });
      return files;
    },
    runFilterTests: async (file) => (await filterTests.runFile(vscode.Uri.file(file))).map((r) => ({ name: r.name, ok: r.ok, failures: r.failures, line: r.line })),
    deployOnSaveState: () => deployOnSave.state,
    deploymentRows: (labels: string[] = []) => treeRows(deploymentsTree, labels),
    registryRows: (labels: string[] = []) => treeRows(registriesTree, labels),
  };
}

async function findProjectAbove(file: string): Promise<string | undefined> {
  let dir = path.dirname(file);
  for (;;) {
    if (await fs.access(path.join(dir, PROJECT_FILE)).then(() => true, () => false)) return dir;
    const parent = path.dirname(dir);
    if (parent === dir) return undefined;
    dir = parent;
  }
}

/** Save → build, for AssemblyScript projects, debounced so "Save All" builds once per project. */
function registerBuildOnSave(build: (dir: string) => Promise<BuildOutcome>, log: vscode.LogOutputChannel, deployOnSave: DeployOnSave): vscode.Disposable {
  const timers = new Map<string, NodeJS.Timeout>();
  return vscode.workspace.onDidSaveTextDocument(async (doc) => {
    if (doc.uri.scheme !== 'file' || !vscode.workspace.isTrusted) return;
    if (!vscode.workspace.getConfiguration('wasmFilter').get<boolean>('build.onSave', true)) return;
    if (!/\.(ts|json)$/.test(doc.uri.fsPath) || doc.uri.fsPath.includes(`${path.sep}node_modules${path.sep}`)) return;
    const dir = await findProjectAbove(doc.uri.fsPath);
    if (!dir) return;
    try {
      if ((await loadProject(dir)).manifest.language !== 'assemblyscript') return;
    } catch {
      return;
    }
    clearTimeout(timers.get(dir));
    timers.set(
      dir,
      // A newer save replaces an older build still running (build() terminates it), and DeployOnSave cancels
      // the older deploy: the latest save is the one that lands.
      setTimeout(() => {
        build(dir)
          .then(async (outcome) => {
            if (!outcome.result) return;
            const ref = formatReference(outcome.result.reference);
            // Opt-in: a good build goes to the dev registry and the cluster…
            if (DeployOnSave.enabled()) {
              await deployOnSave.run(ref, (await loadProject(dir)).manifest.name);
              return;
            }
            // …or just to its registry, as it would in CI.
            if (vscode.workspace.getConfiguration('wasmFilter').get<boolean>('build.pushOnSave', false)) await vscode.commands.executeCommand('wasmFilter.pushImage', ref, ref);
          })
          .catch((err) => log.warn(`build on save: ${(err as Error).message}`));
      }, 300),
    );
  });
}

export function deactivate(): void {
  // Everything is disposed through context.subscriptions.
}

/** The rows of a tree below the path of labels (empty when the path leads nowhere), as the API reports them. */
async function treeRows(tree: { getChildren(element?: vscode.TreeItem): vscode.ProviderResult<vscode.TreeItem[]> }, labels: string[]): Promise<{ label: string; description: string }[]> {
  const labelOf = (i: vscode.TreeItem) => String(typeof i.label === 'object' ? i.label.label : (i.label ?? ''));
  let rows = (await tree.getChildren()) ?? [];
  for (const label of labels) {
    const parent = rows.find((r) => labelOf(r) === label);
    if (!parent) return [];
    rows = (await tree.getChildren(parent)) ?? [];
  }
  return rows.map((i) => ({ label: labelOf(i), description: String(i.description ?? '') }));
}
