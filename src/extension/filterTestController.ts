import * as path from 'node:path';
import * as vscode from 'vscode';
import { describeError } from '../core/errors';
import { FILTER_TEST_FILE, loadFilterTests, runFilterTest, type FilterTestResult } from '../core/host/filterTests';
import { resolveFilterSource } from '../core/host/filterSource';
import { ProxyWasmVm } from '../core/host/vm';
import type { StoreService } from './storeService';

/**
 * The projects' `filter.test.yaml` cases in VS Code's Testing view: one item per file, one per case at its
 * line; a run builds the module if needed and runs the cases in the host, failures at the case's line.
 */
export class FilterTestController implements vscode.Disposable {
  readonly controller = vscode.tests.createTestController('wasmFilterTests', 'Wasm Filter Tests');
  private readonly disposables: vscode.Disposable[] = [];

  constructor(
    private readonly store: StoreService,
    private readonly log: vscode.LogOutputChannel,
  ) {
    this.controller.resolveHandler = async (item) => {
      if (!item) await this.discover();
      else await this.loadFile(item);
    };
    this.controller.refreshHandler = () => this.discover();
    this.controller.createRunProfile('Run', vscode.TestRunProfileKind.Run, (request, token) => this.run(request, token), true);
    const watcher = vscode.workspace.createFileSystemWatcher(`**/${FILTER_TEST_FILE}`);
    watcher.onDidCreate((uri) => void this.loadFile(this.fileItem(uri)));
    watcher.onDidChange((uri) => void this.loadFile(this.fileItem(uri)));
    watcher.onDidDelete((uri) => this.controller.items.delete(uri.toString()));
    this.disposables.push(watcher);
  }

  async discover(): Promise<void> {
    const files = await vscode.workspace.findFiles(`**/${FILTER_TEST_FILE}`, '**/node_modules/**', 200);
    for (const uri of files) await this.loadFile(this.fileItem(uri));
  }

  private fileItem(uri: vscode.Uri): vscode.TestItem {
    const existing = this.controller.items.get(uri.toString());
    if (existing) return existing;
    const item = this.controller.createTestItem(uri.toString(), path.basename(path.dirname(uri.fsPath)), uri);
    item.description = FILTER_TEST_FILE;
    item.canResolveChildren = true;
    this.controller.items.add(item);
    return item;
  }

  private async loadFile(item: vscode.TestItem): Promise<void> {
    if (!item.uri) return;
    try {
      const tests = await loadFilterTests(item.uri.fsPath);
      item.error = undefined;
      item.children.replace(
        tests.map((t) => {
          const child = this.controller.createTestItem(`${item.id}#${t.name}`, t.name, item.uri);
          child.range = new vscode.Range(Math.max(0, t.line - 1), 0, Math.max(0, t.line - 1), 0);
          return child;
        }),
      );
    } catch (err) {
      item.error = describeError(err);
      item.children.replace([]);
    }
  }

  /** Runs the cases of one file (all, or those named), as the Testing view and the API do. */
  async runFile(file: vscode.Uri, names?: Set<string>): Promise<FilterTestResult[]> {
    const projectDir = path.dirname(file.fsPath);
    const source = await resolveFilterSource(projectDir, { store: () => this.store.open(), onLog: (l) => this.log.info(l) });
    const module = ProxyWasmVm.compile(source.wasm);
    const tests = (await loadFilterTests(file.fsPath)).filter((t) => !names || names.has(t.name));
    return tests.map((t) => runFilterTest(module, t, source.rootId ? { rootId: source.rootId } : {}));
  }

  private async run(request: vscode.TestRunRequest, token: vscode.CancellationToken): Promise<void> {
    const run = this.controller.createTestRun(request);
    const selected: vscode.TestItem[] = request.include ? [...request.include] : [...iterate(this.controller.items)];
    // Group the chosen cases by file, so each module is built and compiled once.
    const byFile = new Map<string, { file: vscode.TestItem; cases: vscode.TestItem[] | undefined }>();
    for (const item of selected) {
      const fileItem = item.parent ?? item;
      const entry = byFile.get(fileItem.id) ?? { file: fileItem, cases: [] };
      if (item.parent) entry.cases?.push(item);
      else entry.cases = undefined;
      byFile.set(fileItem.id, entry);
    }
    for (const { file, cases } of byFile.values()) {
      if (token.isCancellationRequested) break;
      if (!file.uri) continue;
      if (!file.children.size) await this.loadFile(file);
      const items = cases ?? [...iterate(file.children)];
      for (const i of items) run.started(i);
      try {
        const results = await this.runFile(file.uri, new Set(items.map((i) => String(i.label))));
        for (const item of items) {
          const r = results.find((x) => x.name === item.label);
          if (!r) run.skipped(item);
          else if (r.ok) run.passed(item, r.durationMs);
          else {
            const message = new vscode.TestMessage(r.failures.join('\n'));
            message.location = new vscode.Location(file.uri, new vscode.Position(Math.max(0, r.line - 1), 0));
            run.failed(item, message, r.durationMs);
          }
          for (const l of r?.logs ?? []) run.appendOutput(`[${l.level}] ${l.message}\r\n`, undefined, item);
        }
      } catch (err) {
        const message = new vscode.TestMessage(describeError(err));
        for (const i of items) run.errored(i, message);
      }
    }
    run.end();
  }

  dispose(): void {
    this.controller.dispose();
    for (const d of this.disposables) d.dispose();
  }
}

function* iterate(collection: vscode.TestItemCollection): Generator<vscode.TestItem> {
  const items: vscode.TestItem[] = [];
  collection.forEach((i) => items.push(i));
  yield* items;
}

