import { mapLimited } from '../core/concurrency';
import * as vscode from 'vscode';
import { describeError } from '../core/errors';
import { formatAge, formatSize } from '../core/format';
import { describeTag, defaultSearchApi, searchRepositories, type PublishedImage } from '../core/registry/published';
import { RegistryError } from '../core/registry/registryErrors';
import type { RegistryService, RegistrySetting } from './registryService';

const PAGE_SIZE = 50;

export class RegistryItem extends vscode.TreeItem {
  constructor(
    readonly setting: RegistrySetting,
    loggedIn: boolean,
    search: string | undefined,
  ) {
    super(setting.name ?? setting.registry, vscode.TreeItemCollapsibleState.Collapsed);
    this.id = `registry:${setting.registry}`;
    this.description = [setting.name ? setting.registry : undefined, search ? `matching "${search}"` : undefined].filter(Boolean).join(' · ') || undefined;
    this.contextValue = loggedIn ? 'wasmFilterRegistry.loggedIn' : 'wasmFilterRegistry';
    this.iconPath = new vscode.ThemeIcon('server');
    this.tooltip = `${setting.registry}${setting.plainHttp ? ' (plain HTTP)' : ''}${loggedIn ? ' — logged in' : ''}`;
  }
}

export class RepositoryItem extends vscode.TreeItem {
  constructor(
    readonly registry: string,
    readonly repository: string,
  ) {
    super(repository, vscode.TreeItemCollapsibleState.Collapsed);
    this.id = `repository:${registry}/${repository}`;
    this.contextValue = 'wasmFilterRepository';
    this.iconPath = new vscode.ThemeIcon('repo');
  }
}

export class RemoteTagItem extends vscode.TreeItem {
  readonly reference: string;
  constructor(readonly image: PublishedImage) {
    super(image.tag, vscode.TreeItemCollapsibleState.None);
    this.reference = `${image.registry}/${image.repository}:${image.tag}`;
    this.id = `tag:${this.reference}`;
    const digest = image.layerDigest ?? image.manifestDigest;
    const age = formatAge(image.updated ? new Date(image.updated) : undefined);
    this.description = [image.size !== undefined ? formatSize(image.size) : undefined, digest?.slice(7, 15), image.abi, age].filter(Boolean).join(' · ');
    this.contextValue = 'wasmFilterRemoteImage';
    this.iconPath = new vscode.ThemeIcon('package');
    this.tooltip = new vscode.MarkdownString(
      `**${this.reference}**\n\n| | |\n|---|---|\n| Manifest | \`${image.manifestDigest ?? '-'}\` |\n| Layer | \`${image.layerDigest ?? '-'}\` |\n| Size | ${image.size !== undefined ? formatSize(image.size) : '-'} |\n| ABI | ${image.abi ?? '-'} |\n| Variant | ${image.variant ?? '-'} |`,
    );
  }
}

export class LoadMoreItem extends vscode.TreeItem {
  constructor(readonly registry: string) {
    super('Load more…', vscode.TreeItemCollapsibleState.None);
    this.id = `more:${registry}`;
    this.iconPath = new vscode.ThemeIcon('more');
    this.command = { command: 'wasmFilter.loadMoreRepositories', title: 'Load more', arguments: [this] };
    this.contextValue = 'wasmFilterLoadMore';
  }
}

/** A row that says what is wrong with a registry and offers the action that fixes it. */
export class RegistryStateItem extends vscode.TreeItem {
  constructor(
    readonly registry: string,
    readonly state: 'loginRequired' | 'unreachable' | 'error' | 'empty',
    detail: string,
  ) {
    const labels = { loginRequired: 'Not logged in — click to log in', unreachable: 'Unreachable — click to retry', error: 'Cannot be listed', empty: 'No repositories' };
    super(labels[state], vscode.TreeItemCollapsibleState.None);
    this.id = `state:${registry}:${state}`;
    this.description = detail;
    this.tooltip = detail;
    this.contextValue = `wasmFilterRegistryState.${state}`;
    this.iconPath = new vscode.ThemeIcon(state === 'empty' ? 'info' : state === 'loginRequired' ? 'account' : 'warning');
    if (state === 'loginRequired') this.command = { command: 'wasmFilter.loginRegistry', title: 'Log In', arguments: [registry] };
    if (state === 'unreachable') this.command = { command: 'wasmFilter.refreshRegistries', title: 'Retry', arguments: [] };
  }
}

interface RegistryState {
  repositories: string[];
  next?: string;
  search?: string;
}

/**
 * The Registries view: registries, then repositories (a page at a time, or a search), then tags with their
 * size, digest, ABI and age. Loads when visible; a refresh cancels the requests of the one before.
 */
export class RegistriesTree implements vscode.TreeDataProvider<vscode.TreeItem>, vscode.Disposable {
  private readonly changed = new vscode.EventEmitter<vscode.TreeItem | undefined>();
  readonly onDidChangeTreeData = this.changed.event;
  private readonly states = new Map<string, RegistryState>();
  private readonly searches = new Map<string, string>();
  private abort = new AbortController();
  private timer: NodeJS.Timeout | undefined;
  private readonly disposables: vscode.Disposable[] = [];
  /** The last rows shown per parent, for tests and pickers. */
  readonly shown = new Map<string, vscode.TreeItem[]>();

  constructor(
    private readonly registries: RegistryService,
    private readonly log: vscode.LogOutputChannel,
  ) {
    this.disposables.push(registries.onDidChange(() => this.refresh()));
  }

  attach(view: vscode.TreeView<vscode.TreeItem>): void {
    this.disposables.push(view.onDidChangeVisibility((e) => e.visible && this.scheduleRefresh()));
  }

  scheduleRefresh(delayMs = 200): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.refresh(), delayMs);
  }

  refresh(): void {
    clearTimeout(this.timer);
    this.abort.abort();
    this.abort = new AbortController();
    this.states.clear();
    this.changed.fire(undefined);
  }

  setSearch(registry: string, query: string | undefined): void {
    if (query) this.searches.set(registry, query);
    else this.searches.delete(registry);
    this.states.delete(registry);
    this.changed.fire(undefined);
  }

  getSearch(registry: string): string | undefined {
    return this.searches.get(registry);
  }

  getTreeItem(element: vscode.TreeItem): vscode.TreeItem {
    return element;
  }

  async getChildren(element?: vscode.TreeItem): Promise<vscode.TreeItem[]> {
    const rows = await this.children(element);
    this.shown.set(element?.id ?? '', rows);
    return rows;
  }

  private async children(element?: vscode.TreeItem): Promise<vscode.TreeItem[]> {
    const signal = this.abort.signal;
    if (!element) {
      const list = this.registries.list();
      return Promise.all(list.map(async (s) => new RegistryItem(s, await this.registries.hasLogin(s.registry), this.searches.get(s.registry))));
    }
    if (element instanceof RegistryItem) return this.repositoryRows(element.setting, signal);
    if (element instanceof RepositoryItem) {
      try {
        const client = this.registries.client(element.registry, signal);
        const tags = await client.listTags(element.repository);
        const images = await mapLimited(tags, 6, (tag) => describeTag(client, element.repository, tag).catch(() => ({ registry: element.registry, repository: element.repository, tag })));
        return images.sort((a, b) => b.tag.localeCompare(a.tag)).map((i) => new RemoteTagItem(i));
      } catch (err) {
        return [this.stateRow(element.registry, err)];
      }
    }
    return [];
  }

  private async repositoryRows(setting: RegistrySetting, signal: AbortSignal): Promise<vscode.TreeItem[]> {
    let state = this.states.get(setting.registry);
    try {
      if (!state) {
        state = await this.firstPage(setting, signal);
        this.states.set(setting.registry, state);
      }
    } catch (err) {
      return [this.stateRow(setting.registry, err)];
    }
    if (!state.repositories.length) {
      return [new RegistryStateItem(setting.registry, 'empty', state.search ? `none match "${state.search}"` : 'push an image to see it here')];
    }
    const rows: vscode.TreeItem[] = state.repositories.map((r) => new RepositoryItem(setting.registry, r));
    if (state.next) rows.push(new LoadMoreItem(setting.registry));
    return rows;
  }

  private async firstPage(setting: RegistrySetting, signal: AbortSignal): Promise<RegistryState> {
    const client = this.registries.client(setting.registry, signal);
    const search = this.searches.get(setting.registry);
    const api = setting.searchApi ?? defaultSearchApi(setting.registry);
    if (search || api === 'harbor') {
      return { repositories: await searchRepositories(client, search ?? '', api), ...(search ? { search } : {}) };
    }
    const page = await client.catalogPage({ pageSize: PAGE_SIZE });
    return { repositories: page.repositories, ...(page.next ? { next: page.next } : {}) };
  }

  /** "Load more…": the next catalog page, appended. */
  async loadMore(registry: string): Promise<void> {
    const state = this.states.get(registry);
    if (!state?.next) return;
    const page = await this.registries.client(registry, this.abort.signal).catalogPage({ pageSize: PAGE_SIZE, after: state.next });
    state.repositories.push(...page.repositories);
    if (page.next) state.next = page.next;
    else delete state.next;
    this.changed.fire(undefined);
  }

  private stateRow(registry: string, err: unknown): vscode.TreeItem {
    const text = describeError(err).split('\n')[0]!;
    this.log.warn(`Registries: ${describeError(err)}`);
    if (err instanceof RegistryError) {
      if (err.code === 'E_LOGIN_REQUIRED' || err.code === 'E_CREDENTIALS_REJECTED') return new RegistryStateItem(registry, 'loginRequired', text);
      if (err.code === 'E_REGISTRY_UNREACHABLE') return new RegistryStateItem(registry, 'unreachable', text);
    }
    return new RegistryStateItem(registry, 'error', text);
  }

  dispose(): void {
    clearTimeout(this.timer);
    this.abort.abort();
    this.changed.dispose();
    for (const d of this.disposables) d.dispose();
  }
}

