import { promises as fs, readFileSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { UserError, throwIfCancelled } from '../errors';
import { parseAscOutput, type BuildDiagnostic } from './diagnostics';

export interface CompileOutput {
  /** Files the compiler wrote, by path relative to the project folder. */
  files: Map<string, Uint8Array>;
  diagnostics: BuildDiagnostic[];
  output: string;
  compilerVersion: string;
  ok: boolean;
}

interface MemoryStream {
  write(chunk: string | Uint8Array): void;
}

/** The two compiler generations' entry points, reduced to what a build needs. */
interface LoadedCompiler {
  version: string;
  compile(args: string[], io: CompilerIo): Promise<{ error: Error | null }>;
}

interface CompilerIo {
  stdout: MemoryStream;
  stderr: MemoryStream;
  readFile(name: string, baseDir: string): string | null | Promise<string | null>;
  writeFile(name: string, contents: Uint8Array | string, baseDir: string): void | boolean | Promise<void | boolean>;
  listFiles(dir: string, baseDir: string): string[] | null | Promise<string[] | null>;
}

/** Loaded compilers stay warm between builds (the point of compiling in-process), keyed by install. */
const compilers = new Map<string, Promise<LoadedCompiler>>();
/** One compile at a time per compiler: asc keeps module-level state. */
const queues = new Map<string, Promise<unknown>>();

async function loadCompiler(projectDir: string): Promise<{ key: string; compiler: LoadedCompiler }> {
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
  let loading = compilers.get(key);
  if (!loading) {
    loading = importCompiler(path.dirname(packageJsonPath), pkg.version, requireFromProject);
    compilers.set(key, loading);
    loading.catch(() => compilers.delete(key));
  }
  return { key, compiler: await loading };
}

async function importCompiler(root: string, version: string, requireFromProject: NodeRequire): Promise<LoadedCompiler> {
  const [major, minor] = version.split('.').map(Number) as [number, number];
  if (major === 0 && minor < 20) {
    // 0.1x: CommonJS, callback API, ready once binaryen has loaded.
    const asc = requireFromProject('assemblyscript/cli/asc') as {
      ready: Promise<void>;
      main(argv: string[], options: object, cb: (err: Error | null) => number): number;
    };
    await asc.ready;
    return {
      version,
      compile: (args, io) =>
        new Promise((resolve) => {
          asc.main(args, io, (err) => {
            resolve({ error: err });
            return 0;
          });
        }),
    };
  }
  // 0.2x: an ES module with an async API.
  const module = (await import(pathToFileURL(path.join(root, 'dist', 'asc.js')).href)) as {
    default?: { main: (args: string[], io: object) => Promise<{ error: Error | null }> };
    main?: (args: string[], io: object) => Promise<{ error: Error | null }>;
  };
  const main = module.main ?? module.default?.main;
  if (!main) throw new UserError(`assemblyscript ${version} in ${root} has no compiler API this tool knows.`, undefined, 'E_COMPILER_API');
  return { version, compile: (args, io) => main(args, io) };
}

/**
 * Compiles an AssemblyScript project with the compiler in its own node_modules, inside this process:
 * no process start, and a warm compiler for the next build. Output is captured in memory so that
 * the caller decides what reaches the disk.
 */
export async function compileAssemblyScript(projectDir: string, args: string[], signal?: AbortSignal): Promise<CompileOutput> {
  throwIfCancelled(signal, 'The build');
  const { key, compiler } = await loadCompiler(projectDir);
  const previous = queues.get(key) ?? Promise.resolve();
  const run = previous.catch(() => undefined).then(() => compileWith(compiler, projectDir, args, signal));
  queues.set(key, run);
  return run;
}

async function compileWith(compiler: LoadedCompiler, projectDir: string, args: string[], signal?: AbortSignal): Promise<CompileOutput> {
  throwIfCancelled(signal, 'The build');
  let output = '';
  const files = new Map<string, Uint8Array>();
  const stream: MemoryStream = { write: (chunk) => void (output += typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8')) };
  const sync = compiler.version.startsWith('0.1');
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
  const io: CompilerIo = {
    stdout: stream,
    stderr: stream,
    readFile: sync ? readFile : async (name, baseDir) => readFile(name, baseDir),
    listFiles: sync ? listFiles : async (dir, baseDir) => listFiles(dir, baseDir),
    writeFile: (name, contents, baseDir) => {
      const rel = path.relative(projectDir, path.resolve(baseDir, name));
      files.set(rel, typeof contents === 'string' ? Buffer.from(contents) : contents);
      return true;
    },
  };
  // asc calls process.exit(1) when it crashes; inside VS Code that would end the extension host.
  const exit = process.exit;
  process.exit = ((code?: number) => {
    throw new UserError(`The AssemblyScript compiler crashed (exit ${code ?? 0}); its report is in the build output.`, undefined, 'E_COMPILER_CRASH');
  }) as typeof process.exit;
  let error: Error | null;
  try {
    ({ error } = await compiler.compile([...args, '--baseDir', projectDir, '--noColors'], io));
  } finally {
    process.exit = exit;
  }
  throwIfCancelled(signal, 'The build');
  return { files, diagnostics: parseAscOutput(output), output, compilerVersion: compiler.version, ok: !error };
}
