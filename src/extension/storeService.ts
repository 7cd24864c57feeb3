import * as path from 'node:path';
import * as vscode from 'vscode';
import { LocalStore, resolveStoreRoot } from '../core/store/localStore';

/** The local store the CLI also uses; announces changes made by anyone (CLI, tasks, other windows). */
export class StoreService implements vscode.Disposable {
  private readonly changed = new vscode.EventEmitter<void>();
  readonly onDidChange = this.changed.event;
  private watcher: vscode.FileSystemWatcher | undefined;
  private storePromise: Promise<LocalStore> | undefined;
  private readonly disposables: vscode.Disposable[] = [];

  constructor() {
    this.disposables.push(
      vscode.workspace.onDidChangeConfiguration((e) => {
        if (e.affectsConfiguration('wasmFilter.storePath')) {
          this.storePromise = undefined;
          this.watch();
          this.changed.fire();
        }
      }),
    );
    this.watch();
  }

  get root(): string {
    const configured = vscode.workspace.getConfiguration('wasmFilter').get<string>('storePath')?.trim();
    return resolveStoreRoot(configured ? { store: configured } : {});
  }

  open(): Promise<LocalStore> {
    this.storePromise ??= LocalStore.open(this.root);
    this.storePromise.catch(() => (this.storePromise = undefined));
    return this.storePromise;
  }

  /** Tells listeners the store changed (the file watcher also does, for changes from outside). */
  notifyChanged(): void {
    this.changed.fire();
  }

  private watch(): void {
    this.watcher?.dispose();
    // index.json is replaced by rename on every change, which watchers report as create or change.
    this.watcher = vscode.workspace.createFileSystemWatcher(new vscode.RelativePattern(vscode.Uri.file(this.root), 'index.json'));
    const fire = () => this.changed.fire();
    this.watcher.onDidChange(fire);
    this.watcher.onDidCreate(fire);
    this.watcher.onDidDelete(fire);
  }

  describe(): string {
    return path.join(this.root);
  }

  dispose(): void {
    this.watcher?.dispose();
    this.changed.dispose();
    for (const d of this.disposables) d.dispose();
  }
}
