import { spawn } from 'node:child_process';
import { mkdtempSync, promises as fs, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { findOnPath } from '../../src/core/process';

export const REPO_ROOT = path.resolve(__dirname, '..', '..', '..');
export const CLI = path.join(REPO_ROOT, 'dist', 'cli.js');

/** A temporary folder removed when the process exits (kept with KEEP_TEST_FILES=1 for debugging). */
export function tempDir(prefix = 'wfs-'): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  if (!process.env.KEEP_TEST_FILES) process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the bundled `wasm-filter` CLI as a user would, with its own home folder. */
export function runCli(args: string[], options: { home: string; cwd?: string; env?: NodeJS.ProcessEnv; input?: string }): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      cwd: options.cwd ?? options.home,
      env: { ...process.env, WASM_FILTER_HOME: options.home, NO_COLOR: '1', ...options.env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
    child.stdin.end(options.input ?? '');
  });
}

/** Polls `probe` until it gives a value (not undefined or false); the message may be built at the timeout. */
export async function until<T>(what: string | (() => string), probe: () => T | undefined | false, ms = 15_000, everyMs = 20): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = probe();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${typeof what === 'function' ? what() : what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** Every file below a folder with its content, to prove that a failed command changed nothing. */
export async function snapshotTree(dir: string): Promise<Map<string, string>> {
  const result = new Map<string, string>();
  async function walk(d: string) {
    for (const entry of await fs.readdir(d, { withFileTypes: true }).catch(() => [])) {
      const p = path.join(d, entry.name);
      if (entry.isDirectory()) await walk(p);
      else result.set(path.relative(dir, p), (await fs.readFile(p)).toString('base64'));
    }
  }
  await walk(dir);
  return result;
}

/** Whether an outside tool is installed; in CI a missing one is a failure, elsewhere the test is skipped. */
export async function requireTool(command: string): Promise<string | false> {
  const found = await findOnPath(command);
  if (found) return found;
  if (process.env.CI) throw new Error(`${command} is not installed; .ci/run installs it (apt-get install)`);
  return false;
}

/** Starts `wasm-filter run …` and waits until it says where it listens; `stop()` interrupts it as Ctrl-C does. */
export async function startRun(args: string[], options: { home: string; cwd?: string }): Promise<{ url: string; output: () => string; stop(): Promise<{ code: number; output: string }> }> {
  const child = spawn(process.execPath, [CLI, 'run', ...args, '--port', '0'], {
    cwd: options.cwd ?? options.home,
    env: { ...process.env, WASM_FILTER_HOME: options.home, NO_COLOR: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (d) => (output += d));
  child.stderr.on('data', (d) => (output += d));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`wasm-filter run did not start:\n${output}`)), 60_000);
    const check = () => {
      const m = /at (http:\/\/127\.0\.0\.1:\d+)/.exec(output);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    };
    child.stdout.on('data', check);
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`wasm-filter run exited (${code}):\n${output}`));
    });
  });
  return {
    url,
    output: () => output,
    stop: () =>
      new Promise((resolve) => {
        child.removeAllListeners('exit');
        child.on('exit', (code) => resolve({ code: code ?? -1, output }));
        child.kill('SIGINT');
      }),
  };
}
