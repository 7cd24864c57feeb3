import { existsSync, promises as fs } from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { CancelledError, UserError, throwIfCancelled } from '../errors';
import type { AscJob, AscJobResult, AscWorkerData } from './ascWorker';
import { parseAscOutput, type BuildDiagnostic } from './diagnostics';

export interface CompileOutput {
  /** Files the compiler wrote, by path relative to the project folder. */
  files: Map<string, Uint8Array>;
  diagnostics: BuildDiagnostic[];
  output: string;
  compilerVersion: string;
  ok: boolean;
}

/**
 * One worker thread per compiler install (keyed by its package.json and version): no process start,
 * the compiler stays loaded between builds, and each generation keeps its globals to itself.
 */
class CompilerWorker {
  private worker: Worker | undefined;
  private nextId = 1;
  private readonly pending = new Map<number, (r: AscJobResult) => void>();
  private queue: Promise<unknown> = Promise.resolve();

  constructor(private readonly data: AscWorkerData) {}

  private start(): Worker {
    if (this.worker) return this.worker;
    const worker = new Worker(workerScript(), { workerData: this.data });
    worker.on('message', (result: AscJobResult) => {
      this.pending.get(result.id)?.(result);
      this.pending.delete(result.id);
      if (this.pending.size === 0) worker.unref();
    });
    const fail = (message: string) => {
      // A worker ended by a cancel may report its exit after a new one took its place.
      if (this.worker !== worker) return;
      for (const [id, resolve] of this.pending) resolve({ id, files: [], output: '', error: message });
      this.pending.clear();
      this.worker = undefined;
    };
    worker.on('error', (err) => fail(`the compiler crashed: ${err.message}`));
    worker.on('exit', (code) => fail(`the compiler stopped (exit ${code})`));
    worker.unref();
    this.worker = worker;
    return worker;
  }

  compile(projectDir: string, args: string[], signal?: AbortSignal): Promise<AscJobResult> {
    const run = this.queue.catch(() => undefined).then(
      () =>
        new Promise<AscJobResult>((resolve, reject) => {
          throwIfCancelled(signal, 'The build');
          const worker = this.start();
          const job: AscJob = { id: this.nextId++, projectDir, args };
          const onAbort = () => {
            // Ending the worker stops the compiler mid-way; the next build starts a fresh one.
            this.pending.delete(job.id);
            if (this.worker === worker) this.worker = undefined;
            void worker.terminate();
            reject(new CancelledError('The build'));
          };
          signal?.addEventListener('abort', onAbort, { once: true });
          this.pending.set(job.id, (result) => {
            signal?.removeEventListener('abort', onAbort);
            resolve(result);
          });
          worker.ref();
          worker.postMessage(job);
        }),
    );
    this.queue = run;
    return run;
  }
}

const workers = new Map<string, CompilerWorker>();

/** The worker script sits beside this module: dist/ascWorker.js in the bundle, ascWorker.js under out/. */
function workerScript(): string {
  const candidates = [path.join(__dirname, 'ascWorker.js'), path.join(__dirname, 'build', 'ascWorker.js')];
  const found = candidates.find((c) => existsSync(c));
  if (!found) throw new Error(`internal: the compiler worker script is missing (looked for ${candidates.join(', ')})`);
  return found;
}

async function compilerFor(projectDir: string): Promise<{ worker: CompilerWorker; version: string }> {
  const requireFromProject = createRequire(path.join(projectDir, 'package.json'));
  let packageJsonPath: string;
  try {
    packageJsonPath = requireFromProject.resolve('assemblyscript/package.json');
  } catch {
    throw new UserError(
      `The AssemblyScript compiler is not installed in ${projectDir}.`,
      `Run \`npm install\` in ${projectDir} (the project pins its own compiler version).`,
      'E_NO_COMPILER',
    );
  }
  const pkg = JSON.parse(await fs.readFile(packageJsonPath, 'utf8')) as { version: string };
  const stat = await fs.stat(packageJsonPath);
  const key = `${packageJsonPath}@${pkg.version}@${stat.mtimeMs}`;
  let worker = workers.get(key);
  if (!worker) {
    worker = new CompilerWorker({ root: path.dirname(packageJsonPath), version: pkg.version, packageJsonPath });
    workers.set(key, worker);
  }
  return { worker, version: pkg.version };
}

/**
 * Compiles an AssemblyScript project with the compiler in its own node_modules, in this process.
 * Output is captured in memory so that the caller decides what reaches the disk.
 */
export async function compileAssemblyScript(projectDir: string, args: string[], signal?: AbortSignal): Promise<CompileOutput> {
  throwIfCancelled(signal, 'The build');
  const { worker, version } = await compilerFor(projectDir);
  const result = await worker.compile(projectDir, args, signal);
  throwIfCancelled(signal, 'The build');
  if (result.error?.startsWith('the compiler')) {
    throw new UserError(`The AssemblyScript compiler (${version}) could not run: ${result.error}`, `Reinstall the project's dependencies (\`npm ci\` in ${projectDir}).`, 'E_COMPILER_CRASH');
  }
  return { files: new Map(result.files), diagnostics: parseAscOutput(result.output), output: result.output, compilerVersion: version, ok: !result.error };
}
