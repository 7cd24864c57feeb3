import * as path from 'node:path';
import * as vscode from 'vscode';
import { UserError } from '../core/errors';
import { FilterRuntime } from '../core/host/filterRuntime';
import { resolveFilterSource } from '../core/host/filterSource';
import { startEchoUpstream, startProxy, type RunningProxy } from '../core/host/proxyServer';
import type { FilterLog } from '../core/host/vm';
import { loadProject } from '../core/project/projectManifest';
import type { StoreService } from './storeService';

interface Session {
  project: string;
  name: string;
  proxy: RunningProxy;
  echo?: { close(): Promise<void> };
  stopWatching: () => void;
}

export interface TestResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/**
 * "Run Filter Locally": the open project's module in the local proxy, its logs in an output channel, a
 * status bar item with the address, and a restart whenever the module is rebuilt.
 */
export class LocalRunner implements vscode.Disposable {
  private session: Session | undefined;
  private readonly channel = vscode.window.createOutputChannel('Wasm Filter: Local Run', { log: true });
  private readonly status = vscode.window.createStatusBarItem(vscode.StatusBarAlignment.Left, 50);

  constructor(private readonly store: StoreService) {
    this.status.command = 'wasmFilter.sendTestRequest';
  }

  get url(): string | undefined {
    return this.session?.proxy.url;
  }

  private filterLog = (l: FilterLog) => {
    const text = l.contextId !== undefined ? `[ctx ${l.contextId}] ${l.message}` : l.message;
    if (l.level === 'error' || l.level === 'critical') this.channel.error(text);
    else if (l.level === 'warn') this.channel.warn(text);
    else if (l.level === 'debug') this.channel.debug(text);
    else if (l.level === 'trace') this.channel.trace(text);
    else this.channel.info(text);
  };

  async start(projectDir: string, options: { configuration?: string; port?: number } = {}): Promise<string> {
    await this.stop();
    const project = await loadProject(projectDir);
    const source = await vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: `Starting ${project.manifest.name}` }, () =>
      resolveFilterSource(project.dir, { store: () => this.store.open(), onLog: (l) => this.channel.info(l) }),
    );
    const configuration = options.configuration ?? vscode.workspace.getConfiguration('wasmFilter').get<string>('run.configuration', '');
    const start = (wasm: Uint8Array) =>
      FilterRuntime.start(wasm, { rootId: project.manifest.rootId, pluginConfiguration: configuration, logLevel: 'debug', onLog: this.filterLog });
    let runtime: FilterRuntime;
    try {
      runtime = await start(source.wasm);
    } catch (err) {
      throw new UserError(`${project.manifest.name} cannot run: ${(err as Error).message}.`, 'See the "Wasm Filter: Local Run" output for the filter\'s own log lines.');
    }
    const upstreamSetting = vscode.workspace.getConfiguration('wasmFilter').get<string>('run.upstream', '').trim();
    const echo = upstreamSetting ? undefined : await startEchoUpstream();
    const proxy = await startProxy(runtime, {
      port: options.port ?? vscode.workspace.getConfiguration('wasmFilter').get<number>('run.port', 0),
      upstream: upstreamSetting || echo!.url,
      onEvent: (e) => this.channel.warn(e),
    });
    const stopWatching = source.watch((wasm) => {
      start(wasm).then(
        (next) => {
          proxy.setRuntime(next);
          this.channel.info(`reloaded ${project.manifest.name} after a rebuild (ABI ${next.abi})`);
        },
        (err) => this.channel.error(`the rebuilt module cannot run, keeping the previous one: ${(err as Error).message}`),
      );
    });
    this.session = { project: project.dir, name: project.manifest.name, proxy, ...(echo ? { echo } : {}), stopWatching };
    this.channel.info(`running ${source.description} (ABI ${runtime.abi}) at ${proxy.url} → ${upstreamSetting || 'the built-in echo upstream'}`);
    this.status.text = `$(radio-tower) ${project.manifest.name} ${proxy.url.replace('http://', '')}`;
    this.status.tooltip = `Wasm filter running locally at ${proxy.url}. Click to send a test request.`;
    this.status.show();
    await vscode.commands.executeCommand('setContext', 'wasmFilter.localRunActive', true);
    this.channel.show(true);
    return proxy.url;
  }

  async stop(): Promise<boolean> {
    const s = this.session;
    if (!s) return false;
    this.session = undefined;
    s.stopWatching();
    await s.proxy.close();
    await s.echo?.close();
    this.status.hide();
    this.channel.info(`stopped ${s.name}`);
    await vscode.commands.executeCommand('setContext', 'wasmFilter.localRunActive', false);
    return true;
  }

  /** Sends a request to the running filter and shows the response beside the editor. */
  async sendTestRequest(request: { method?: string; path?: string; body?: string; show?: boolean } = {}): Promise<TestResponse> {
    const url = this.session?.proxy.url;
    if (!url) throw new UserError('No filter is running locally.', 'Run "Wasm Filter: Run Filter Locally" first.');
    let requestPath = request.path;
    if (requestPath === undefined) {
      requestPath = await vscode.window.showInputBox({ title: 'Send Test Request', prompt: 'METHOD path, e.g. GET / or POST /orders', value: 'GET /' });
      if (requestPath === undefined) throw new UserError('No request given.', undefined, 'E_CANCELLED');
    }
    const m = /^\s*([A-Z]+)\s+(\S+)\s*$/.exec(requestPath);
    const method = request.method ?? m?.[1] ?? 'GET';
    const target = m?.[2] ?? (requestPath.startsWith('/') ? requestPath : `/${requestPath}`);
    const response = await fetch(new URL(target, url), { method, ...(request.body !== undefined && method !== 'GET' ? { body: request.body } : {}) });
    const body = await response.text();
    const headers: Record<string, string> = {};
    response.headers.forEach((v, k) => (headers[k] = v));
    if (request.show !== false) {
      const text = [`${method} ${target} → HTTP ${response.status} ${response.statusText}`, ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`), '', body].join('\n');
      const doc = await vscode.workspace.openTextDocument({ content: text, language: /json/.test(headers['content-type'] ?? '') ? 'http' : 'plaintext' });
      await vscode.window.showTextDocument(doc, { viewColumn: vscode.ViewColumn.Beside, preview: true, preserveFocus: true });
    }
    return { status: response.status, headers, body };
  }

  describe(): string | undefined {
    return this.session ? `${this.session.name} at ${this.session.proxy.url} (${path.basename(this.session.project)})` : undefined;
  }

  dispose(): void {
    void this.stop();
    this.channel.dispose();
    this.status.dispose();
  }
}
