import * as path from 'node:path';
import * as vscode from 'vscode';
import * as yaml from 'js-yaml';
import { describeError, UserError } from '../core/errors';
import { Cluster } from '../core/deploy/cluster';
import { deployFilter, detectCapabilities, listDeployments, undeployFilter, type Change, type DeployedFilter } from '../core/deploy/deploy';
import { imageForDeploy } from '../core/deploy/deployImage';
import type { DeployMode } from '../core/deploy/istioObjects';
import { collectFindings, type Finding } from '../core/deploy/proxyFindings';
import { PROJECT_FILE } from '../core/project/projectManifest';
import { pushImage } from '../core/registry/transfer';
import type { RegistryService } from './registryService';
import type { StoreService } from './storeService';

/** The cluster the extension works with: the kubeconfig's current context, or the one chosen in settings. */
export class ClusterService implements vscode.Disposable {
  private readonly changed = new vscode.EventEmitter<void>();
  readonly onDidChange = this.changed.event;
  readonly status = vscode.window.createStatusBarItem(vscode.StatusBarAlignment.Left, 40);
  private readonly disposables: vscode.Disposable[] = [];

  constructor() {
    this.status.command = 'wasmFilter.chooseContext';
    this.disposables.push(
      vscode.workspace.onDidChangeConfiguration((e) => {
        if (e.affectsConfiguration('wasmFilter.kubernetes')) {
          this.changed.fire();
          void this.showContext();
        }
      }),
    );
  }

  private settings() {
    const c = vscode.workspace.getConfiguration('wasmFilter.kubernetes');
    const kubeconfig = c.get<string>('kubeconfig', '').trim();
    const context = c.get<string>('context', '').trim();
    return { ...(kubeconfig ? { kubeconfig } : {}), ...(context ? { context } : {}) };
  }

  open(): Promise<Cluster> {
    return Cluster.open(this.settings());
  }

  async showContext(): Promise<void> {
    try {
      const cluster = await this.open();
      this.status.text = `$(cloud) ${cluster.context}`;
      this.status.tooltip = `Wasm filters deploy to ${cluster.describe()}. Click to choose another context.`;
      this.status.show();
    } catch {
      this.status.hide();
    }
  }

  async chooseContext(name?: string): Promise<string | undefined> {
    const cluster = await this.open();
    const contexts = cluster.config.getContexts().map((c) => c.name);
    const picked = name ?? (await vscode.window.showQuickPick(contexts, { title: 'Deploy wasm filters to which kube-context?', placeHolder: cluster.context }));
    if (!picked) return undefined;
    if (!contexts.includes(picked)) throw new UserError(`The kubeconfig has no context "${picked}".`, `Its contexts: ${contexts.join(', ')}.`);
    await vscode.workspace.getConfiguration('wasmFilter.kubernetes').update('context', picked, vscode.ConfigurationTarget.Global);
    return picked;
  }

  dispose(): void {
    this.changed.dispose();
    this.status.dispose();
    for (const d of this.disposables) d.dispose();
  }
}

class NamespaceItem extends vscode.TreeItem {
  constructor(
    readonly namespace: string,
    readonly filters: DeployedFilter[],
  ) {
    super(namespace, vscode.TreeItemCollapsibleState.Expanded);
    this.id = `ns:${namespace}`;
    this.iconPath = new vscode.ThemeIcon('symbol-namespace');
    this.contextValue = 'wasmFilterNamespace';
  }
}

export class DeployedFilterItem extends vscode.TreeItem {
  constructor(
    readonly filter: DeployedFilter,
    readonly findings: Finding[],
  ) {
    super(filter.id, vscode.TreeItemCollapsibleState.Collapsed);
    this.id = `filter:${filter.namespace}/${filter.id}`;
    const problems = findings.filter((f) => f.severity === 'error').length;
    // A FilterDeployment shows what its operator says (Ready, or why not).
    const ready = filter.status ? (filter.status.ready === 'True' ? 'Ready' : filter.status.ready === 'False' ? `not ready: ${filter.status.conditions.find((c) => c.type === 'Ready')?.reason ?? ''}` : 'pending') : undefined;
    this.description = [filter.mode, filter.image.split('/').slice(-1)[0], ready, problems ? `${problems} problem(s)` : undefined].filter(Boolean).join(' · ');
    this.iconPath = new vscode.ThemeIcon(problems || filter.status?.ready === 'False' ? 'error' : filter.status && filter.status.ready !== 'True' ? 'sync' : 'pass');
    this.contextValue = 'wasmFilterDeployed';
    const conditions = filter.status?.conditions.map((c) => `${c.type}: ${c.status}${c.reason ? ` (${c.reason})` : ''}${c.message ? ` — ${c.message}` : ''}`) ?? [];
    this.tooltip = [filter.image, filter.digest, ...filter.objects, ...(filter.status?.reason ? [filter.status.reason] : []), ...conditions].filter(Boolean).join('\n');
  }
}

class WorkloadItem extends vscode.TreeItem {
  constructor(name: string, state: string, detail?: string) {
    super(name, vscode.TreeItemCollapsibleState.None);
    this.description = state;
    this.iconPath = new vscode.ThemeIcon(state === 'deployed' || state === 'Succeeded' ? 'server-process' : state === 'Pending' ? 'sync' : 'warning');
    if (detail) this.tooltip = detail;
  }
}

class ConditionItem extends vscode.TreeItem {
  constructor(c: { type: string; status: string; reason?: string; message?: string }) {
    super(`${c.type}: ${c.status}`, vscode.TreeItemCollapsibleState.None);
    this.description = c.reason ?? '';
    this.tooltip = c.message ?? '';
    this.iconPath = new vscode.ThemeIcon(c.status === 'True' ? 'check' : c.status === 'False' ? 'close' : 'question');
    this.contextValue = 'wasmFilterCondition';
  }
}

class StateItem extends vscode.TreeItem {
  constructor(label: string, detail: string) {
    super(label, vscode.TreeItemCollapsibleState.None);
    this.description = detail;
    this.tooltip = detail;
    this.iconPath = new vscode.ThemeIcon('warning');
  }
}

/** The Deployments view: namespaces → filters → workloads, for the current context; findings as Problems. */
export class DeploymentsTree implements vscode.TreeDataProvider<vscode.TreeItem>, vscode.Disposable {
  private readonly changed = new vscode.EventEmitter<vscode.TreeItem | undefined>();
  readonly onDidChangeTreeData = this.changed.event;
  readonly diagnostics = vscode.languages.createDiagnosticCollection('wasm-filter-proxy');
  private findings: Finding[] = [];
  private followUps: NodeJS.Timeout[] = [];

  constructor(
    private readonly clusters: ClusterService,
    private readonly log: vscode.LogOutputChannel,
  ) {}

  refresh(): void {
    this.changed.fire(undefined);
  }

  getTreeItem(e: vscode.TreeItem): vscode.TreeItem {
    return e;
  }

  async getChildren(element?: vscode.TreeItem): Promise<vscode.TreeItem[]> {
    if (element instanceof NamespaceItem) return element.filters.map((f) => new DeployedFilterItem(f, this.findings.filter((x) => x.namespace === f.namespace && (!x.filter || x.filter === f.id || f.digest.startsWith(x.filter ?? '-')))));
    if (element instanceof DeployedFilterItem) {
      const status = element.filter.status;
      const workloads = element.filter.workloads.length ? element.filter.workloads : ['(selected by labels)'];
      const rows: vscode.TreeItem[] = workloads.map((w) => {
        const problem = element.findings.find((f) => f.pod.startsWith(w));
        const reported = status?.workloadStates[w];
        return new WorkloadItem(w, problem ? problem.kind : reported ? reported.state : 'deployed', problem?.advice ?? reported?.reason);
      });
      // A FilterDeployment's conditions, as its operator wrote them.
      for (const c of status?.conditions ?? []) rows.push(new ConditionItem(c));
      return rows;
    }
    if (element) return [];
    try {
      const deployed = await this.checkProxies();
      const byNamespace = new Map<string, DeployedFilter[]>();
      for (const d of deployed) byNamespace.set(d.namespace, [...(byNamespace.get(d.namespace) ?? []), d]);
      return [...byNamespace].map(([ns, filters]) => new NamespaceItem(ns, filters));
    } catch (err) {
      this.log.warn(`Deployments: ${describeError(err)}`);
      return [new StateItem('Cannot list deployments', describeError(err).split('\n')[0]!)];
    }
  }

  /**
   * Reads what istio-proxy said in the last hour about the deployed filters and publishes it as Problems
   * (replacing the last set, so findings the proxies stopped reporting go away). Runs when the view
   * refreshes and, after a deploy, a few times while the proxies pick the filter up.
   */
  async checkProxies(): Promise<DeployedFilter[]> {
    const cluster = await this.clusters.open();
    const deployed = await listDeployments(cluster);
    const findings: Finding[] = [];
    for (const ns of new Set(deployed.map((d) => d.namespace))) {
      findings.push(...(await collectFindings(cluster, { namespace: ns, since: new Date(Date.now() - 3600_000) }).catch(() => [])));
    }
    this.findings = findings;
    await this.publish(deployed);
    return deployed;
  }

  /** After a deploy: look again at 5, 15, 30 and 60 seconds, when the proxies have loaded (or failed to load) it. */
  watchAfterDeploy(): void {
    for (const t of this.followUps) clearTimeout(t);
    this.followUps = [5, 15, 30, 60].map((s) =>
      setTimeout(() => {
        this.refresh();
        this.checkProxies().catch((err) => this.log.warn(`istio-proxy check: ${describeError(err)}`));
      }, s * 1000),
    );
    this.refresh();
  }

  /**
   * Findings become diagnostics on the project whose image is deployed: on the source line a filter's
   * abort or panic names when that file exists in the project, else on its wasm-filter.json; the pod and
   * the original line go in the related information.
   */
  private async publish(deployed: DeployedFilter[]): Promise<void> {
    const byUri = new Map<string, vscode.Diagnostic[]>();
    const manifests = this.findings.length ? await vscode.workspace.findFiles(`**/${PROJECT_FILE}`, '**/node_modules/**', 50) : [];
    for (const f of this.findings) {
      const filter = deployed.find((d) => d.namespace === f.namespace && (f.filter === d.id || (f.filter && d.digest.startsWith(f.filter)) || !f.filter));
      const manifest = manifests.find((m) => filter && filter.image.includes(`/${path.basename(path.dirname(m.fsPath))}:`)) ?? manifests[0];
      if (!manifest) continue;
      let target = manifest;
      let range = new vscode.Range(0, 0, 0, 1);
      if (f.source) {
        const file = vscode.Uri.joinPath(manifest, '..', f.source.file);
        const exists = await vscode.workspace.fs.stat(file).then(() => true, () => false);
        if (exists) {
          target = file;
          const line = Math.max(0, f.source.line - 1);
          range = new vscode.Range(line, Math.max(0, (f.source.column ?? 1) - 1), line, Number.MAX_SAFE_INTEGER);
        }
      }
      const d = new vscode.Diagnostic(range, `istio-proxy (${f.pod}): ${f.kind} — ${f.advice}`, f.severity === 'error' ? vscode.DiagnosticSeverity.Error : vscode.DiagnosticSeverity.Warning);
      d.source = 'istio-proxy';
      d.code = f.kind;
      d.relatedInformation = [new vscode.DiagnosticRelatedInformation(new vscode.Location(target, range.start), `${f.namespace}/${f.pod} ${f.container}: ${f.line.slice(0, 300)}`)];
      byUri.set(target.toString(), [...(byUri.get(target.toString()) ?? []), d]);
    }
    this.diagnostics.clear();
    for (const [uri, list] of byUri) this.diagnostics.set(vscode.Uri.parse(uri), list);
  }

  dispose(): void {
    for (const t of this.followUps) clearTimeout(t);
    this.changed.dispose();
    this.diagnostics.dispose();
  }
}

export interface DeployArgs {
  image: string;
  id: string;
  namespace: string;
  labels?: Record<string, string>;
  mode?: DeployMode | 'auto';
  config?: string;
  /** Skip the dry-run preview and confirmation (for tests and scripts). */
  confirmed?: boolean;
}

function describeChanges(changes: Change[]): string {
  return changes
    .filter((c) => c.action !== 'unchanged')
    .map((c) => `# ${c.action} ${c.kind} ${c.namespace ? `${c.namespace}/` : ''}${c.name}\n${yaml.dump(c.object ?? {}, { lineWidth: 120 })}`)
    .join('---\n');
}

/** "Deploy Filter…": asks what the command line takes, shows the dry run, and applies on confirmation. */
export async function deployCommand(deps: { clusters: ClusterService; store: StoreService; registries: RegistryService; tree: DeploymentsTree }, given?: Partial<DeployArgs>): Promise<{ writes: number; mode: string; workloads: string[] } | undefined> {
  const cluster = await deps.clusters.open();
  const local = await deps.store.open();
  let image = given?.image;
  if (!image) {
    const images = await local.list();
    const picked = await vscode.window.showQuickPick(images.map((i) => ({ label: i.refName })), { title: `Deploy to ${cluster.context}: which image?` });
    if (!picked) return undefined;
    image = picked.label;
  }
  const caps = await detectCapabilities(cluster);
  const namespace =
    given?.namespace ??
    (await vscode.window.showInputBox({ title: 'Namespace', value: 'default', prompt: `Namespace of the workloads on ${cluster.describe()}` }));
  if (!namespace) return undefined;
  const labelsText = given?.labels || given?.confirmed ? undefined : await vscode.window.showInputBox({ title: 'Workloads', prompt: 'Select workloads by labels, e.g. app=reviews (empty: every workload in the namespace)', value: '' });
  const labels = given?.labels ?? Object.fromEntries((labelsText ?? '').split(',').filter((p) => p.includes('=')).map((p) => p.split('=').map((x) => x.trim()) as [string, string]));
  const modes = [caps.wasmPluginCrd && 'wasmplugin', caps.envoyFilterCrd && 'envoyfilter', caps.filterDeploymentCrd && 'filterdeployment'].filter(Boolean) as DeployMode[];
  const labelOf: Record<DeployMode, string> = {
    wasmplugin: 'as a WasmPlugin',
    envoyfilter: 'as EnvoyFilters (wasme-compatible)',
    filterdeployment: 'as a FilterDeployment (the operator applies it)',
  };
  const mode =
    given?.mode ??
    (await vscode.window.showQuickPick(
      modes.map((m) => ({ label: labelOf[m], mode: m })),
      { title: `How to deploy (Istio ${caps.istioVersion ?? 'unknown'})` },
    ))?.mode;
  if (!mode) return undefined;
  // A confirmed (scripted) deploy asks nothing: what it was not given is left empty.
  const config = given?.config ?? (given?.confirmed ? '' : await vscode.window.showInputBox({ title: 'Configuration', prompt: 'The filter configuration (a string or JSON); empty for none', value: '' })) ?? '';
  const id = given?.id ?? (await vscode.window.showInputBox({ title: 'Deployment id', value: path.basename(image.split(':')[0]!).replace(/[^a-z0-9-]/g, '-') }));
  if (!id) return undefined;
  const facts = await imageForDeploy(local, image, deps.registries.factory());
  const filter = {
    id,
    namespace,
    image: facts.image,
    manifestDigest: facts.manifestDigest,
    wasmDigest: facts.wasmDigest,
    rootId: facts.rootIds[0] ?? 'add_header',
    ...(config ? { config } : {}),
    labels,
    workloadKind: 'deployment' as const,
    patchContext: 'inbound' as const,
  };
  // A private image gets a pull secret from the login, as the CLI does (never for the wasme modes: the cache pulls).
  const pullCredential = mode === 'envoyfilter' || mode === 'filterdeployment' ? undefined : await deps.registries.pullCredential(facts.image);
  const options = { mode, abiVersions: facts.abiVersions, ...(pullCredential ? { pullCredential } : {}) };
  if (!given?.confirmed) {
    const plan = await deployFilter(cluster, filter, { ...options, dryRun: true });
    const doc = await vscode.workspace.openTextDocument({ language: 'yaml', content: describeChanges(plan.changes) || '# nothing to change: already deployed\n' });
    await vscode.window.showTextDocument(doc, { preview: true, viewColumn: vscode.ViewColumn.Beside });
    const answer = await vscode.window.showInformationMessage(`Apply ${plan.changes.filter((c) => c.action !== 'unchanged').length} change(s) to ${cluster.describe()}?`, { modal: true }, 'Deploy');
    if (answer !== 'Deploy') return undefined;
  }
  const result = await vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: `Deploying ${id} to ${cluster.context}` }, () => deployFilter(cluster, filter, options));
  if (result.writes) deps.tree.watchAfterDeploy();
  else deps.tree.refresh();
  vscode.window.setStatusBarMessage(`Deployed ${id} (${result.mode}, ${result.workloads.length} workload(s), ${result.writes} write(s))`, 5000);
  return { writes: result.writes, mode: result.mode, workloads: result.workloads };
}

export async function undeployCommand(deps: { clusters: ClusterService; tree: DeploymentsTree }, arg?: unknown): Promise<number> {
  const target = arg instanceof DeployedFilterItem ? { id: arg.filter.id, namespace: arg.filter.namespace } : (arg as { id?: string; namespace?: string } | undefined);
  if (!target?.id || !target.namespace) throw new UserError('Choose a filter in the Deployments view to undeploy.', undefined, 'E_USAGE');
  const cluster = await deps.clusters.open();
  const result = await undeployFilter(cluster, { id: target.id, namespace: target.namespace });
  deps.tree.refresh();
  return result.changes.length;
}

/**
 * Build-and-deploy on save (off by default): after a good build, push the image to the dev registry and
 * deploy it without asking. A newer save cancels the run of an older one; progress shows in the status bar.
 */
export class DeployOnSave implements vscode.Disposable {
  private current: AbortController | undefined;
  /** The last run's outcome, for the API (and so tests can say why nothing was deployed). */
  state: { state: 'idle' | 'running' | 'deployed' | 'failed'; message?: string } = { state: 'idle' };
  private readonly status = vscode.window.createStatusBarItem(vscode.StatusBarAlignment.Left, 39);

  constructor(
    private readonly deps: { clusters: ClusterService; store: StoreService; registries: RegistryService; tree: DeploymentsTree; log: vscode.LogOutputChannel },
  ) {}

  static enabled(): boolean {
    return vscode.workspace.getConfiguration('wasmFilter.deploy').get<boolean>('onSave', false);
  }

  async run(imageRef: string, projectName: string): Promise<{ writes: number } | undefined> {
    this.current?.abort();
    const abort = new AbortController();
    this.current = abort;
    const c = vscode.workspace.getConfiguration('wasmFilter.deploy');
    const registry = c.get<string>('registry', '').trim().replace(/\/+$/, '');
    const namespace = c.get<string>('namespace', 'default');
    const labels = c.get<Record<string, string>>('labels', {});
    if (!registry) {
      throw new UserError('Deploy on save needs a dev registry.', 'Set wasmFilter.deploy.registry (e.g. localhost:5000/dev), or turn wasmFilter.deploy.onSave off.');
    }
    const target = `${registry}/${projectName}:dev`;
    const step = (text: string) => {
      if (abort.signal.aborted) throw new UserError('A newer save took over.', undefined, 'E_CANCELLED');
      this.status.text = `$(sync~spin) ${projectName}: ${text}`;
      this.status.show();
    };
    this.state = { state: 'running', message: `${imageRef} → ${target}` };
    try {
      step(`pushing to ${registry}`);
      await pushImage(await this.deps.store.open(), imageRef, { clients: this.deps.registries.factory(abort.signal), target });
      step(`deploying to ${(await this.deps.clusters.open()).context}`);
      const result = (await deployCommand(this.deps, { image: target, id: c.get<string>('id', '').trim() || projectName, namespace, labels, mode: 'auto', confirmed: true, ...(c.get<string>('configuration') ? { config: c.get<string>('configuration')! } : {}) })) ?? { writes: 0 };
      this.status.text = `$(check) ${projectName} deployed`;
      this.state = { state: 'deployed', message: target };
      setTimeout(() => this.status.hide(), 4000);
      return result;
    } catch (err) {
      if (err instanceof UserError && err.code === 'E_CANCELLED') return undefined;
      this.status.text = `$(error) ${projectName}: deploy failed`;
      this.state = { state: 'failed', message: describeError(err) };
      this.status.tooltip = describeError(err);
      this.deps.log.warn(`deploy on save: ${describeError(err)}`);
      throw err;
    } finally {
      if (this.current === abort) this.current = undefined;
    }
  }

  dispose(): void {
    this.current?.abort();
    this.status.dispose();
  }
}
