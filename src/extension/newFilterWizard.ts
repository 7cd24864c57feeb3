import * as os from 'node:os';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { CancelledError } from '../core/errors';
import { PLATFORMS, defaultPlatformVersion, findPlatformVersion, type PlatformName } from '../core/platforms';
import type { AssemblyScriptSdk, Language } from '../core/project/projectManifest';
import { scaffoldProject, validateFilterName, validateRootId, type ScaffoldChoices } from '../core/scaffold/scaffold';
import { TEMPLATES } from '../core/scaffold/templates';

export interface NewFilterArgs extends Partial<ScaffoldChoices> {
  /** The folder the project folder is created in. */
  parentFolder?: string;
  install?: boolean;
  /** What to do with the new project; asked when not given. */
  open?: 'none' | 'window' | 'newWindow' | 'addToWorkspace' | 'editor';
}

type Step = (state: NewFilterArgs) => Promise<'next' | 'back'>;

const BACK = vscode.QuickInputButtons.Back;

/** One quick pick step of the wizard, with a Back button after the first step. */
function pick<T>(title: string, step: number, total: number, items: (vscode.QuickPickItem & { value: T })[], apply: (v: T) => void): Promise<'next' | 'back'> {
  return new Promise((resolve, reject) => {
    const qp = vscode.window.createQuickPick<vscode.QuickPickItem & { value: T }>();
    qp.title = title;
    qp.step = step;
    qp.totalSteps = total;
    qp.items = items;
    qp.ignoreFocusOut = true;
    qp.buttons = step > 1 ? [BACK] : [];
    let settled = false;
    qp.onDidTriggerButton(() => {
      settled = true;
      qp.hide();
      resolve('back');
    });
    qp.onDidAccept(() => {
      const chosen = qp.selectedItems[0];
      if (!chosen) return;
      settled = true;
      apply(chosen.value);
      qp.hide();
      resolve('next');
    });
    qp.onDidHide(() => {
      qp.dispose();
      if (!settled) reject(new CancelledError('New Filter'));
    });
    qp.show();
  });
}

function ask(title: string, step: number, total: number, value: string, validate: (v: string) => string | undefined, apply: (v: string) => void): Promise<'next' | 'back'> {
  return new Promise((resolve, reject) => {
    const box = vscode.window.createInputBox();
    box.title = title;
    box.step = step;
    box.totalSteps = total;
    box.value = value;
    box.ignoreFocusOut = true;
    box.buttons = [BACK];
    let settled = false;
    box.onDidChangeValue((v) => (box.validationMessage = validate(v)));
    box.onDidTriggerButton(() => {
      settled = true;
      box.hide();
      resolve('back');
    });
    box.onDidAccept(() => {
      const problem = validate(box.value);
      if (problem) {
        box.validationMessage = problem;
        return;
      }
      settled = true;
      apply(box.value);
      box.hide();
      resolve('next');
    });
    box.onDidHide(() => {
      box.dispose();
      if (!settled) reject(new CancelledError('New Filter'));
    });
    box.show();
  });
}

/** The steps the flags (or a caller's arguments) leave open, in wasme's order. */
function steps(given: NewFilterArgs): Step[] {
  const total = 6;
  const title = 'New Filter';
  const list: Step[] = [];
  if (!given.language) {
    list.push((s) =>
      pick<Language>(`${title}: language`, 1, total, TEMPLATES.filter((t) => t.sdk !== 'wasme').map((t) => ({ label: t.language, description: t.title, value: t.language })), (v) => (s.language = v)),
    );
  }
  if (!given.sdk) {
    list.push(async (s) => {
      if (s.language !== 'assemblyscript') return 'next';
      return pick<AssemblyScriptSdk>(
        `${title}: AssemblyScript SDK`,
        2,
        total,
        TEMPLATES.filter((t) => t.language === 'assemblyscript').map((t) => ({ label: t.sdk!, description: t.title, value: t.sdk! })),
        (v) => (s.sdk = v),
      );
    });
  }
  if (!given.platform || !given.platformVersion) {
    list.push((s) => {
      const items = (Object.keys(PLATFORMS) as PlatformName[]).flatMap((p) =>
        PLATFORMS[p].map((v) => ({
          label: `${p} ${v.version}`,
          description: [v.note, `ABI ${v.abis.join('/')}`].filter(Boolean).join(' · '),
          value: { platform: p, version: v.version },
        })),
      );
      // Offer only what the chosen template's ABI can run on, so the wizard cannot produce a filter that would not load.
      const abi = TEMPLATES.find((t) => t.language === s.language && (s.language !== 'assemblyscript' || t.sdk === (s.sdk ?? 'modern')))?.abi;
      const fitting = items.filter((i) => !abi || findPlatformVersion(i.value.platform, i.value.version).abis.includes(abi));
      return pick(`${title}: platform`, 3, total, fitting, (v) => {
        s.platform = v.platform;
        s.platformVersion = v.version;
      });
    });
  }
  if (!given.name) {
    list.push((s) => ask(`${title}: filter name`, 4, total, s.name ?? 'my-filter', validateFilterName, (v) => (s.name = v)));
  }
  if (!given.rootId) {
    list.push((s) => ask(`${title}: root id`, 5, total, s.rootId ?? 'add_header', validateRootId, (v) => (s.rootId = v)));
  }
  if (!given.parentFolder) {
    list.push(async (s) => {
      const folders = (vscode.workspace.workspaceFolders ?? []).map((f) => ({ label: `$(folder) ${f.name}`, description: f.uri.fsPath, value: f.uri.fsPath }));
      const items = [
        ...folders,
        { label: '$(home) Home folder', description: os.homedir(), value: os.homedir() },
        { label: '$(folder-opened) Browse…', description: 'choose another folder', value: '' },
      ];
      let chosen: string | undefined;
      const move = await pick(`${title}: create ${s.name} in…`, 6, total, items, (v) => (chosen = v));
      if (move === 'back') return move;
      if (!chosen) {
        const picked = await vscode.window.showOpenDialog({ canSelectFolders: true, canSelectFiles: false, openLabel: 'Create Here' });
        if (!picked?.[0]) throw new CancelledError('New Filter');
        chosen = picked[0].fsPath;
      }
      s.parentFolder = chosen;
      return 'next';
    });
  }
  return list;
}

/** "New Filter…": asks what the arguments leave open, scaffolds with progress, then opens the project. */
export async function newFilter(args: NewFilterArgs = {}): Promise<string> {
  const state: NewFilterArgs = { ...args };
  const list = steps(args);
  for (let i = 0; i < list.length; ) {
    const move = await list[i]!(state);
    i = move === 'back' ? Math.max(0, i - 1) : i + 1;
  }
  const language = state.language ?? 'assemblyscript';
  const platform = state.platform ?? 'istio';
  const dir = path.join(state.parentFolder!, state.name!);
  const result = await vscode.window.withProgress(
    { location: vscode.ProgressLocation.Notification, title: `Creating ${state.name}`, cancellable: true },
    (progress, token) => {
      const abort = new AbortController();
      token.onCancellationRequested(() => abort.abort());
      return scaffoldProject({
        dir,
        language,
        ...(language === 'assemblyscript' ? { sdk: state.sdk ?? 'modern' } : {}),
        platform,
        platformVersion: state.platformVersion ?? defaultPlatformVersion(platform),
        name: state.name!,
        rootId: state.rootId ?? 'add_header',
        install: state.install !== false,
        onProgress: (message) => progress.report({ message }),
        signal: abort.signal,
      });
    },
  );
  const uri = vscode.Uri.file(result.dir);
  const entry = vscode.Uri.file(path.join(result.dir, language === 'assemblyscript' ? 'assembly/index.ts' : 'wasm-filter.json'));
  const insideWorkspace = !!vscode.workspace.getWorkspaceFolder(uri);
  let open = args.open;
  if (!open && insideWorkspace) {
    // Already visible in the Explorer: open its source instead of asking where to open it.
    open = 'editor';
    void vscode.window.showInformationMessage(`Created ${state.name} (${result.template.title}).`);
  }
  if (!open) {
    const choice = await vscode.window.showInformationMessage(
      `Created ${state.name} (${result.template.title}).`,
      'Open',
      'Open in New Window',
      'Add to Workspace',
    );
    open = choice === 'Open' ? 'window' : choice === 'Open in New Window' ? 'newWindow' : choice === 'Add to Workspace' ? 'addToWorkspace' : 'none';
  }
  if (open === 'window' || open === 'newWindow') {
    await vscode.commands.executeCommand('vscode.openFolder', uri, { forceNewWindow: open === 'newWindow' });
  } else if (open === 'addToWorkspace' || open === 'editor') {
    if (open === 'addToWorkspace') vscode.workspace.updateWorkspaceFolders(vscode.workspace.workspaceFolders?.length ?? 0, 0, { uri });
    await vscode.window.showTextDocument(entry, { preview: false }).then(undefined, () => undefined);
  }
  return result.dir;
}
