import * as path from 'node:path';
import * as vscode from 'vscode';
import { buildProject, BuildFailedError, type BuildResult } from '../core/build/build';
import { formatDiagnostic } from '../core/build/diagnostics';
import { describeError } from '../core/errors';
import { formatSize } from '../core/format';
import type { ImageVariant } from '../core/image/wasmImage';
import { PROJECT_FILE } from '../core/project/projectManifest';
import { formatReference } from '../core/reference';
import type { StoreService } from './storeService';

export const TASK_TYPE = 'wasm-filter';
export const PROBLEM_MATCHER = '$wasm-filter-asc';

export interface BuildTaskDefinition extends vscode.TaskDefinition {
  project: string;
  tag?: string;
  variant?: ImageVariant;
}

export interface BuildOutcome {
  project: string;
  result?: BuildResult;
  error?: unknown;
}

/**
 * Runs builds as VS Code tasks: the core build runs in this process (the compiler stays warm between
 * builds), its output goes to the task terminal, and the problem matcher turns the one-line
 * diagnostics into Problems entries.
 */
export class BuildTasks implements vscode.TaskProvider, vscode.Disposable {
  private readonly finished = new vscode.EventEmitter<BuildOutcome>();
  readonly onDidFinishBuild = this.finished.event;

  constructor(
    private readonly store: StoreService,
    private readonly log: vscode.LogOutputChannel,
  ) {}

  async provideTasks(): Promise<vscode.Task[]> {
    const manifests = await vscode.workspace.findFiles(`**/${PROJECT_FILE}`, '**/node_modules/**', 50);
    return manifests.map((uri) => {
      const folder = vscode.workspace.getWorkspaceFolder(uri);
      const dir = path.dirname(uri.fsPath);
      const project = folder ? path.relative(folder.uri.fsPath, dir) || '.' : dir;
      return this.createTask({ type: TASK_TYPE, project }, folder);
    });
  }

  resolveTask(task: vscode.Task): vscode.Task | undefined {
    const definition = task.definition as BuildTaskDefinition;
    if (definition.type !== TASK_TYPE || typeof definition.project !== 'string') return undefined;
    const scope = task.scope && typeof task.scope === 'object' ? task.scope : undefined;
    return this.createTask(definition, scope, task.name);
  }

  createTask(definition: BuildTaskDefinition, folder?: vscode.WorkspaceFolder, name?: string): vscode.Task {
    const label = name ?? `build ${definition.project === '.' ? (folder?.name ?? 'filter') : path.basename(definition.project)}`;
    const task = new vscode.Task(
      definition,
      folder ?? vscode.TaskScope.Workspace,
      label,
      TASK_TYPE,
      new vscode.CustomExecution(async (resolved) => new BuildTerminal(this.projectDir(resolved as BuildTaskDefinition, folder), resolved as BuildTaskDefinition, this)),
      [PROBLEM_MATCHER],
    );
    task.group = vscode.TaskGroup.Build;
    task.presentationOptions = { reveal: vscode.TaskRevealKind.Silent, clear: true, showReuseMessage: false };
    return task;
  }

  private projectDir(definition: BuildTaskDefinition, folder?: vscode.WorkspaceFolder): string {
    if (path.isAbsolute(definition.project)) return definition.project;
    const base = folder?.uri.fsPath ?? vscode.workspace.workspaceFolders?.[0]?.uri.fsPath ?? process.cwd();
    return path.resolve(base, definition.project);
  }

  /** Runs one build for a terminal; called by BuildTerminal. */
  async run(dir: string, definition: BuildTaskDefinition, write: (line: string) => void, signal: AbortSignal): Promise<number> {
    const started = Date.now();
    this.log.info(`build ${dir}`);
    try {
      const store = await this.store.open();
      const variant = definition.variant ?? vscode.workspace.getConfiguration('wasmFilter').get<ImageVariant>('build.variant') ?? 'oci';
      const result = await buildProject(dir, {
        store,
        variant,
        ...(definition.tag ? { tag: definition.tag } : {}),
        signal,
        onLog: (line) => {
          // Diagnostics were logged relative to the project; the task prints them with absolute paths.
          if (!/ - (error|warning|info) /.test(line.split('\n')[0]!)) write(line);
        },
      });
      for (const d of result.diagnostics) {
        if (!d.file?.startsWith('~lib/')) write(formatDiagnostic(d, { projectDir: dir, absolutePaths: true }));
      }
      write(
        `Built ${formatReference(result.reference)} (${formatSize(result.module.size)}, ABI ${result.module.abiVersion}, root ids ${result.rootIds.join(', ')}) in ${Date.now() - started} ms`,
      );
      this.store.notifyChanged();
      this.finished.fire({ project: dir, result });
      return 0;
    } catch (err) {
      if (err instanceof BuildFailedError) {
        for (const d of err.diagnostics) write(formatDiagnostic(d, { projectDir: dir, absolutePaths: true }));
        if (!err.diagnostics.length && err.output) write(err.output.trimEnd());
      }
      write(`error: ${describeError(err)}`);
      this.log.warn(`build ${dir} failed: ${describeError(err)}`);
      this.finished.fire({ project: dir, error: err });
      return 1;
    }
  }

  dispose(): void {
    this.finished.dispose();
  }
}

class BuildTerminal implements vscode.Pseudoterminal {
  private readonly writeEmitter = new vscode.EventEmitter<string>();
  private readonly closeEmitter = new vscode.EventEmitter<number>();
  readonly onDidWrite = this.writeEmitter.event;
  readonly onDidClose = this.closeEmitter.event;
  private readonly abort = new AbortController();

  constructor(
    private readonly dir: string,
    private readonly definition: BuildTaskDefinition,
    private readonly tasks: BuildTasks,
  ) {}

  open(): void {
    const write = (text: string) => this.writeEmitter.fire(text.replace(/\r?\n/g, '\r\n') + '\r\n');
    void this.tasks.run(this.dir, this.definition, write, this.abort.signal).then((code) => {
      // Output written in the same tick as the close can be dropped before the problem matcher reads it.
      setTimeout(() => this.closeEmitter.fire(code), 250);
    });
  }

  close(): void {
    this.abort.abort();
  }
}
