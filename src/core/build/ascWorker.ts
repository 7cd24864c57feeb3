// Runs one AssemblyScript compiler install inside a worker thread. Each compiler generation defines
// globals of its own (0.2x makes some non-configurable, which breaks 0.1x), so every install gets its
// own realm; the worker stays alive between builds so the compiler stays loaded and warm.
import { readFileSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { parentPort, workerData } from 'node:worker_threads';

export interface AscWorkerData {
  root: string;
  version: string;
  packageJsonPath: string;
}

export interface AscJob {
  id: number;
  projectDir: string;
  args: string[];
}

export interface AscJobResult {
  id: number;
  files: [string, Uint8Array][];
  output: string;
  error?: string;
}

type Compile = (args: string[], io: object) => Promise<{ error: Error | null }>;

async function load(data: AscWorkerData): Promise<Compile> {
  const [major, minor] = data.version.split('.').map(Number) as [number, number];
  const requireFromInstall = createRequire(data.packageJsonPath);
  if (major === 0 && minor < 20) {
    // 0.1x: CommonJS, a callback API, usable once binaryen has loaded.
    const asc = requireFromInstall('./cli/asc') as {
      ready: Promise<void>;
      main(argv: string[], options: object, cb: (err: Error | null) => number): number;
    };
    await asc.ready;
    return (args, io) =>
      new Promise((resolve) => {
        asc.main(args, io, (err) => {
          resolve({ error: err });
          return 0;
        });
      });
  }
  // 0.2x: an ES module with an async API.
  const module = (await import(pathToFileURL(path.join(data.root, 'dist', 'asc.js')).href)) as { main?: Compile; default?: { main: Compile } };
  const main = module.main ?? module.default?.main;
  if (!main) throw new Error(`assemblyscript ${data.version} has no compiler API this tool knows`);
  return main;
}

const data = workerData as AscWorkerData;
const compilerReady = load(data);
const sync = data.version.startsWith('0.1');

async function run(job: AscJob): Promise<AscJobResult> {
  let output = '';
  const files = new Map<string, Uint8Array>();
  const stream = { write: (chunk: string | Uint8Array) => void (output += typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8')) };
  const readFile = (name: string, baseDir: string) => {
    try {
      return readFileSync(path.resolve(baseDir, name), 'utf8');
    } catch {
      return null;
    }
  };
  const listFiles = (dir: string, baseDir: string) => {
    try {
      return readdirSync(path.resolve(baseDir, dir)).filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts'));
    } catch {
      return null;
    }
  };
  // Output stays in memory: the caller decides what reaches the disk, and writes it atomically.
  const writeFile = (name: string, contents: Uint8Array | string, baseDir: string) => {
    files.set(path.relative(job.projectDir, path.resolve(baseDir, name)), typeof contents === 'string' ? Buffer.from(contents) : contents);
    return true;
  };
  const io = {
    stdout: stream,
    stderr: stream,
    readFile: sync ? readFile : async (n: string, b: string) => readFile(n, b),
    listFiles: sync ? listFiles : async (d: string, b: string) => listFiles(d, b),
    writeFile,
  };
  try {
    const compile = await compilerReady;
    const { error } = await compile([...job.args, '--baseDir', job.projectDir, '--noColors'], io);
    return { id: job.id, files: [...files], output, ...(error ? { error: error.message } : {}) };
  } catch (err) {
    return { id: job.id, files: [], output, error: `the compiler failed to run: ${(err as Error).stack ?? String(err)}` };
  }
}

parentPort!.on('message', (job: AscJob) => {
  void run(job).then((result) => parentPort!.postMessage(result));
});
