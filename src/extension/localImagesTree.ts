import * as vscode from 'vscode';
import { describeError } from '../core/errors';
import { formatAge, formatSize } from '../core/format';
import { summarizeStore, type ImageSummary } from '../core/imageSummary';
import type { StoreService } from './storeService';

export class ImageItem extends vscode.TreeItem {
  constructor(readonly image: ImageSummary) {
    super(image.familiar, vscode.TreeItemCollapsibleState.None);
    const age = formatAge(image.updated ? new Date(image.updated) : undefined);
    this.description = [formatSize(image.wasmSize), age].filter(Boolean).join(' · ');
    this.contextValue = 'wasmFilterImage';
    this.iconPath = new vscode.ThemeIcon('package');
    this.id = image.reference;
    const tooltip = new vscode.MarkdownString(undefined, true);
    tooltip.appendMarkdown(`**${image.reference}**\n\n`);
    tooltip.appendMarkdown(`| | |\n|---|---|\n`);
    tooltip.appendMarkdown(`| Size | ${formatSize(image.wasmSize)} |\n| ABI | ${image.abi ?? 'unknown'} |\n`);
    tooltip.appendMarkdown(`| Root ids | ${image.rootIds.join(', ') || '-'} |\n| Variant | ${image.variant} |\n`);
    tooltip.appendMarkdown(`| Manifest | \`${image.manifestDigest.slice(0, 19)}…\` |\n| Wasm | \`${image.wasmDigest.slice(0, 19)}…\` |\n`);
    if (age) tooltip.appendMarkdown(`| Stored | ${age} |\n`);
    this.tooltip = tooltip;
  }
}

class MessageItem extends vscode.TreeItem {
  constructor(label: string, detail: string, icon: string) {
    super(label, vscode.TreeItemCollapsibleState.None);
    this.description = detail;
    this.iconPath = new vscode.ThemeIcon(icon);
    this.contextValue = 'wasmFilterMessage';
    this.tooltip = detail;
  }
}

/**
 * The Local Images view. It reloads only while visible; changes while hidden mark it stale and it
 * reloads when shown. Bursts of changes (a build writes several files) are debounced into one reload.
 */
export class LocalImagesTree implements vscode.TreeDataProvider<vscode.TreeItem>, vscode.Disposable {
  private readonly changed = new vscode.EventEmitter<vscode.TreeItem | undefined>();
  readonly onDidChangeTreeData = this.changed.event;
  private view: vscode.TreeView<vscode.TreeItem> | undefined;
  private stale = true;
  private timer: NodeJS.Timeout | undefined;
  private items: ImageSummary[] = [];
  private readonly disposables: vscode.Disposable[] = [];

  constructor(
    private readonly store: StoreService,
    private readonly log: vscode.LogOutputChannel,
  ) {
    this.disposables.push(store.onDidChange(() => this.scheduleRefresh()));
  }

  attach(view: vscode.TreeView<vscode.TreeItem>): void {
    this.view = view;
    this.disposables.push(
      view.onDidChangeVisibility((e) => {
        if (e.visible && this.stale) this.refresh();
      }),
    );
  }

  scheduleRefresh(delayMs = 150): void {
    this.stale = true;
    if (this.view && !this.view.visible) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.refresh(), delayMs);
  }

  refresh(): void {
    clearTimeout(this.timer);
    this.stale = true;
    this.changed.fire(undefined);
  }

  /** The images last shown (for tests and other commands' pickers). */
  get images(): readonly ImageSummary[] {
    return this.items;
  }

  getTreeItem(element: vscode.TreeItem): vscode.TreeItem {
    return element;
  }

  async getChildren(element?: vscode.TreeItem): Promise<vscode.TreeItem[]> {
    if (element) return [];
    this.stale = false;
    try {
      const store = await this.store.open();
      this.items = await summarizeStore(store);
      await vscode.commands.executeCommand('setContext', 'wasmFilter.storeEmpty', this.items.length === 0);
      if (this.view) this.view.description = this.items.length ? `${this.items.length}` : undefined;
      return this.items.map((i) => new ImageItem(i));
    } catch (err) {
      this.log.warn(`Local Images: ${describeError(err)}`);
      await vscode.commands.executeCommand('setContext', 'wasmFilter.storeEmpty', false);
      return [new MessageItem('The local store cannot be read', describeError(err).split('\n')[0]!, 'warning')];
    }
  }

  dispose(): void {
    clearTimeout(this.timer);
    this.changed.dispose();
    for (const d of this.disposables) d.dispose();
  }
}
