import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { UserError, throwIfCancelled } from '../errors';
import { writeFileAtomic } from '../fsAtomic';
import { makeRuntimeConfig, packImage, type ImageVariant } from '../image/wasmImage';
import { findPlatformVersion } from '../platforms';
import { findOnPath, runProgram } from '../process';
import { loadProject, projectRootIds, type FilterProject } from '../project/projectManifest';
import { familiarReference, parseReference, type ImageReference } from '../reference';
import { templateFor } from '../scaffold/templates';
import type { LocalStore, StoredImage } from '../store/localStore';
import { inspectModule, type ModuleInfo } from '../wasm/moduleInfo';
import { compileAssemblyScript } from './assemblyscript';
import { formatDiagnostic, type BuildDiagnostic } from './diagnostics';
import type { Digest } from '../digest';

export interface BuildOptions {
  store: LocalStore;
  /** NAME[:TAG]; default: the project's image name with tag latest. */
  tag?: string;
  variant?: ImageVariant;
  signal?: AbortSignal;
  /** Toolchain output and progress, line by line. */
  onLog?: (line: string) => void;
}

export interface BuildResult {
  image: StoredImage;
  reference: ImageReference;
  manifestDigest: Digest;
  wasmDigest: Digest;
  module: ModuleInfo;
  rootIds: string[];
  abiVersions: string[];
  variant: ImageVariant;
  diagnostics: BuildDiagnostic[];
  warnings: string[];
  /** The module file in the project. */
  outputFile?: string;
  timings: { compileMs: number; packageMs: number };
}

/** A build that failed for a reason in the user's code, with the compiler's diagnostics. */
export class BuildFailedError extends UserError {
  constructor(
    message: string,
    readonly diagnostics: BuildDiagnostic[],
    readonly output: string,
  ) {
    super(message, diagnostics.length ? 'Fix the errors listed above (they are also in the Problems panel in VS Code).' : undefined, 'E_BUILD_FAILED');
  }
}

export async function buildProject(dir: string, options: BuildOptions): Promise<BuildResult> {
  const project = await loadProject(dir);
  const log = options.onLog ?? (() => undefined);
  const reference = parseReference(options.tag ?? project.manifest.image ?? project.manifest.name);
  const started = Date.now();
  const { wasm, diagnostics, outputFile } =
    project.manifest.language === 'assemblyscript' ? await compileProjectAssemblyScript(project, options) : await runToolchain(project, options);
  const compileMs = Date.now() - started;
  const template = templateFor(project.manifest.language, project.manifest.sdk);
  const result = await packageModule({
    wasm,
    source: path.relative(process.cwd(), outputFile) || outputFile,
    rootIds: projectRootIds(project),
    checkRootIds: template.rootIdInModule,
    reference,
    store: options.store,
    variant: options.variant ?? 'oci',
    ...(options.signal ? { signal: options.signal } : {}),
  });
  const warnings = [...result.warnings];
  try {
    const platform = findPlatformVersion(project.manifest.platform.name, project.manifest.platform.version);
    if (!platform.abis.includes(result.module.abiVersion)) {
      warnings.push(
        `${project.manifest.platform.name} ${platform.version} loads ABI ${platform.abis.join('/')}, but this module declares ${result.module.abiVersion}; it will not load there.`,
      );
    }
  } catch (err) {
    warnings.push((err as Error).message);
  }
  for (const w of warnings) log(`warning: ${w}`);
  return { ...result, warnings, diagnostics, outputFile, timings: { compileMs, packageMs: result.timings.packageMs } };
}

async function compileProjectAssemblyScript(project: FilterProject, options: BuildOptions) {
  const log = options.onLog ?? (() => undefined);
  const args = project.manifest.build.args ?? [];
  log(`Compiling ${project.manifest.name} with AssemblyScript (in-process)…`);
  const compiled = await compileAssemblyScript(project.dir, args, options.signal);
  // Warnings inside the compiler's own library (~lib/) are not the user's to fix; errors always show.
  for (const d of compiled.diagnostics) {
    if (d.severity === 'error' || !d.file?.startsWith('~lib/')) log(formatDiagnostic(d, { projectDir: project.dir }));
  }
  if (!compiled.ok) {
    const errors = compiled.diagnostics.filter((d) => d.severity === 'error').length;
    const detail = errors ? `${errors} error${errors === 1 ? '' : 's'}` : compiled.output.trim().split('\n').slice(-3).join(' ');
    throw new BuildFailedError(`The AssemblyScript compiler (${compiled.compilerVersion}) failed: ${detail}.`, compiled.diagnostics, compiled.output);
  }
  const outputRel = path.normalize(project.manifest.build.output);
  let wasm = compiled.files.get(outputRel);
  if (!wasm) {
    const candidates = [...compiled.files.keys()].filter((f) => f.endsWith('.wasm'));
    if (candidates.length === 1) wasm = compiled.files.get(candidates[0]!);
  }
  if (!wasm) {
    throw new UserError(
      `The compiler wrote no module at ${outputRel}.`,
      `Make build.args in wasm-filter.json write the module to build.output ("${project.manifest.build.output}").`,
      'E_NO_OUTPUT',
    );
  }
  // What the compiler wrote reaches the disk atomically, as `npm run asbuild` would have left it.
  for (const [rel, content] of compiled.files) await writeFileAtomic(path.join(project.dir, rel), content);
  return { wasm, diagnostics: compiled.diagnostics, outputFile: path.join(project.dir, outputRel) };
}

async function runToolchain(project: FilterProject, options: BuildOptions) {
  const log = options.onLog ?? (() => undefined);
  const command = project.manifest.build.command ?? [];
  const template = templateFor(project.manifest.language);
  for (const tool of template.tools) {
    // The project's own command may use another program; only demand the tools it actually runs.
    if (tool.command !== command[0] && !(project.manifest.language === 'cpp' && tool.command === 'em++' && !process.env.WASI_SDK_PATH)) continue;
    if (!(await findOnPath(tool.command))) {
      throw new UserError(`Building a ${project.manifest.language} filter needs \`${tool.command}\`, which is not on PATH.`, tool.install, 'E_TOOL_MISSING');
    }
  }
  if (project.manifest.language === 'rust' && (await findOnPath('rustup'))) {
    const targets = await runProgram('rustup', ['target', 'list', '--installed'], { cwd: project.dir });
    if (targets.code === 0 && !targets.output.includes('wasm32-wasip1') && command.includes('wasm32-wasip1')) {
      throw new UserError('The Rust target wasm32-wasip1 is not installed.', 'Run `rustup target add wasm32-wasip1`, then build again.', 'E_TOOL_MISSING');
    }
  }
  const [program, ...args] = command;
  if (!program) throw new UserError('build.command in wasm-filter.json is empty.', 'Give the toolchain command as a list, e.g. ["cargo", "build", …].', 'E_BAD_PROJECT');
  log(`$ ${command.join(' ')}`);
  const result = await runProgram(program, args, { cwd: project.dir, onLine: log, ...(options.signal ? { signal: options.signal } : {}) });
  if (result.code !== 0) {
    throw new BuildFailedError(`\`${command.join(' ')}\` failed with exit code ${result.code}.`, [], result.output);
  }
  const outputFile = path.join(project.dir, project.manifest.build.output);
  let wasm: Buffer;
  try {
    wasm = await fs.readFile(outputFile);
  } catch {
    throw new UserError(`The toolchain finished but wrote no module at ${outputFile}.`, 'Make build.output in wasm-filter.json name the file the toolchain produces.', 'E_NO_OUTPUT');
  }
  return { wasm, diagnostics: [] as BuildDiagnostic[], outputFile };
}

/** `build precompiled FILE.wasm`: packages a module built elsewhere, as wasme did. */
export async function buildPrecompiled(
  file: string,
  options: BuildOptions & { tag: string; rootIds?: string[] },
): Promise<BuildResult> {
  let wasm: Buffer;
  try {
    wasm = await fs.readFile(file);
  } catch (err) {
    throw new UserError(`Cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}.`, 'Pass the path of a .wasm file.', 'E_NO_FILE');
  }
  const reference = parseReference(options.tag);
  const result = await packageModule({
    wasm,
    source: file,
    rootIds: options.rootIds?.length ? options.rootIds : ['add_header'],
    checkRootIds: !!options.rootIds?.length,
    reference,
    store: options.store,
    variant: options.variant ?? 'oci',
    ...(options.signal ? { signal: options.signal } : {}),
  });
  for (const w of result.warnings) options.onLog?.(`warning: ${w}`);
  return { ...result, diagnostics: [], outputFile: path.resolve(file), timings: { compileMs: 0, packageMs: result.timings.packageMs } };
}

async function packageModule(options: {
  wasm: Uint8Array;
  source: string;
  rootIds: string[];
  checkRootIds: boolean;
  reference: ImageReference;
  store: LocalStore;
  variant: ImageVariant;
  signal?: AbortSignal;
}) {
  const started = Date.now();
  if (options.reference.digest) {
    throw new UserError(`A build is stored under NAME:TAG, not a digest ("${familiarReference(options.reference)}").`, 'Pass -t NAME:TAG.', 'E_BAD_REFERENCE');
  }
  const module = inspectModule(options.wasm, { source: options.source, ...(options.checkRootIds ? { expectedRootIds: options.rootIds } : {}) });
  const runtimeConfig = makeRuntimeConfig(module.abiVersion, options.rootIds);
  const packed = await packImage({ wasm: options.wasm, runtimeConfig, variant: options.variant });
  throwIfCancelled(options.signal, 'The build');
  const image = await options.store.commit(options.reference, packed.blobs, packed.manifestBytes);
  return {
    image,
    reference: image.reference,
    manifestDigest: packed.manifestDigest,
    wasmDigest: packed.wasmDigest,
    module,
    rootIds: options.rootIds,
    abiVersions: runtimeConfig.abiVersions,
    variant: options.variant,
    warnings: module.warnings,
    timings: { packageMs: Date.now() - started },
  };
}
