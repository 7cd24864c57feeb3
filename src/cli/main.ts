import { Command, InvalidArgumentError, Option } from 'commander';
import * as path from 'node:path';
import { promises as fs } from 'node:fs';
import {
  BuildFailedError,
  DEFAULT_REGISTRY,
  IMAGE_VARIANTS,
  LANGUAGES,
  LocalStore,
  PLATFORM_NAMES,
  UserError,
  buildPrecompiled,
  buildProject,
  defaultPlatformVersion,
  disassembleModule,
  formatDiagnostic,
  formatReference,
  formatSize,
  formatTable,
  isUserError,
  listRow,
  nameFromFolder,
  readImageContent,
  resolveStoreRoot,
  scaffoldProject,
  shortDigest,
  summarizeImage,
  summarizeStore,
  type BuildResult,
  type ImageVariant,
  type Language,
  type PlatformName,
} from '../core';
import { askInitQuestions } from './prompts';
import { addRegistryCommands, listPublishedCommand } from './registryCommands';
import { addRunCommand } from './runCommand';
import { addTestCommand } from './testCommand';
import { addDeployCommands } from './deployCommands';
import { addOperatorCommand } from './operatorCommand';
import { Output } from './output';

declare const PACKAGE_VERSION: string;
const version = typeof PACKAGE_VERSION === 'string' ? PACKAGE_VERSION : '0.0.0-dev';

function storeOption(): Option {
  return new Option('--store <dir>', 'the local image store (default: $WASM_FILTER_HOME/store or ~/.wasm-filter/store)');
}

function openStore(opts: { store?: string }): Promise<LocalStore> {
  return LocalStore.open(resolveStoreRoot(opts.store ? { store: opts.store } : {}));
}

function choice<T extends string>(values: readonly T[], what: string) {
  return (value: string): T => {
    if (!values.includes(value as T)) throw new InvalidArgumentError(`${what} must be one of: ${values.join(', ')}.`);
    return value as T;
  };
}

function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

/** Cancels long work on Ctrl-C, so temporary files are cleaned up before the process ends. */
function interruptSignal(): AbortSignal {
  const controller = new AbortController();
  process.once('SIGINT', () => controller.abort());
  return controller.signal;
}

export function createProgram(out = new Output()): Command {
  const program = new Command('wasm-filter')
    .description('Write, build, share, run and deploy proxy-wasm filters for Envoy and Istio.')
    .version(version, '-v, --version')
    .showHelpAfterError('(run with --help for usage)')
    .configureOutput({ outputError: (text) => out.info(out.red(text.trimEnd())) })
    // Set before the subcommands are added, so that they inherit it.
    .exitOverride();

  program
    .command('init')
    .description('create a filter project (prompts for what the flags leave open, unless --yes)')
    .argument('[dir]', 'the folder to create', '.')
    .addOption(new Option('--language <language>', 'assemblyscript, rust, tinygo or cpp').argParser(choice(LANGUAGES, '--language')))
    .addOption(new Option('--sdk <sdk>', 'AssemblyScript SDK: modern (ABI 0.2.1) or wasme (ABI 0.2.0)').argParser(choice(['modern', 'wasme'] as const, '--sdk')))
    .addOption(new Option('--platform <platform>', 'istio, envoy or gloo').argParser(choice(PLATFORM_NAMES, '--platform')))
    .option('--platform-version <version>', 'e.g. 1.28.x (istio), 1.36.x (envoy), 1.6.x (gloo)')
    .option('--root-id <id>', 'the root id the filter registers (default: add_header)')
    .option('--name <name>', 'the filter name (default: the folder name)')
    .option('-y, --yes', 'ask nothing; use defaults for what the flags leave open')
    .option('--force', 'allow a non-empty folder (existing files are kept, never overwritten)')
    .option('--no-install', 'do not run npm install')
    .action(async (dir: string, opts) => {
      const interactive = !opts.yes && process.stdin.isTTY && process.stdout.isTTY;
      const answers = interactive
        ? await askInitQuestions({ dir, ...opts })
        : {
            language: (opts.language ?? 'assemblyscript') as Language,
            sdk: opts.sdk ?? (opts.language && opts.language !== 'assemblyscript' ? undefined : defaultSdkFor(opts.platform, opts.platformVersion)),
            platform: (opts.platform ?? 'istio') as PlatformName,
            platformVersion: opts.platformVersion ?? defaultPlatformVersion((opts.platform ?? 'istio') as PlatformName),
            name: opts.name ?? nameFromFolder(dir),
            rootId: (opts.rootId as string | undefined) ?? 'add_header',
          };
      const result = await scaffoldProject({
        dir,
        ...answers,
        force: !!opts.force,
        install: opts.install !== false,
        onProgress: (m) => out.status(m),
        signal: interruptSignal(),
      });
      out.clearStatus();
      const shown = displayPath(result.dir);
      out.line(out.green(`Created ${answers.name} in ${result.dir}`) + out.dim(` (${result.template.title})`));
      for (const file of result.kept) out.warn(`kept your ${file}; the template's version was not written`);
      if (!result.installed && result.template.installsWithNpm) out.line(`Next: cd ${shown} && npm install`);
      out.line(`Build it: wasm-filter build ${shown} -t ${answers.name}:v1`);
    });

  program
    .command('build')
    .description('compile a filter project and store it as an image; `build precompiled FILE.wasm` packages an existing module')
    .argument('[dir]', 'the project folder, or "precompiled"', '.')
    .argument('[file]', 'with "precompiled": the .wasm file')
    .option('-t, --tag <ref>', 'NAME[:TAG] to store the image under (default: the project name, tag latest)')
    .addOption(new Option('--variant <variant>', 'image format: oci (wasme) or compat (docker-style)').argParser(choice(IMAGE_VARIANTS, '--variant')).default('oci'))
    .option('--root-id <id>', 'with precompiled: a root id the module registers (repeatable)', collect)
    .option('--json', 'print the result as JSON')
    .addOption(storeOption())
    .action(async (dir: string, file: string | undefined, opts) => {
      const store = await openStore(opts);
      const signal = interruptSignal();
      const onLog = (line: string) => (line.startsWith('warning: ') ? out.warn(line.slice(9)) : out.info(line));
      let result: BuildResult;
      if (dir === 'precompiled') {
        if (!file) throw new UserError('`build precompiled` needs the .wasm file to package.', 'Run `wasm-filter build precompiled FILE.wasm -t NAME:TAG`.');
        if (!opts.tag) throw new UserError('`build precompiled` needs -t NAME:TAG.', 'Name the image, e.g. -t webassemblyhub.io/alice/my-filter:v1.');
        result = await buildPrecompiled(file, { store, tag: opts.tag, variant: opts.variant as ImageVariant, rootIds: opts.rootId, signal, onLog });
      } else {
        if (file) throw new UserError(`Unexpected argument "${file}".`, 'Run `wasm-filter build [DIR] -t NAME:TAG`.');
        try {
          result = await buildProject(dir, { store, ...(opts.tag ? { tag: opts.tag } : {}), variant: opts.variant as ImageVariant, signal, onLog });
        } catch (err) {
          if (err instanceof BuildFailedError && !err.diagnostics.length && err.output) out.info(err.output.trimEnd());
          throw err;
        }
      }
      if (opts.json) {
        out.line(JSON.stringify(buildJson(result), null, 2));
        return;
      }
      out.line(
        `${out.green('Built')} ${formatReference(result.reference)} ${out.dim(
          `(${formatSize(result.module.size)}, ABI ${result.module.abiVersion}, root ids ${result.rootIds.join(', ')}, ${result.variant}, sha ${shortDigest(result.wasmDigest)}, ${result.timings.compileMs + result.timings.packageMs} ms)`,
        )}`,
      );
    });

  program
    .command('list')
    .alias('ls')
    .description('list the images in the local store, or with --published those in a registry: NAME TAG SIZE SHA UPDATED')
    .option('-w, --wide', 'full digests and exact sizes')
    .option('--json', 'print JSON')
    .option('--published', 'list the images in a registry instead of the local store')
    .option('--search <query>', 'with --published: only repositories whose name contains this (implies --published)')
    .option('-s, --server <registry>', `with --published: the registry (default ${DEFAULT_REGISTRY})`)
    .addOption(new Option('--api <api>', 'how to search: catalog (OCI /v2/_catalog) or harbor (WebAssembly Hub)').choices(['catalog', 'harbor']))
    .option('--plain-http', 'with --published: use HTTP, not HTTPS')
    .option('--insecure', "with --published: accept a self-signed TLS certificate")
    .addOption(storeOption())
    .action(async (opts) => {
      if (opts.published || opts.search || opts.server) {
        await listPublishedCommand(out, opts, interruptSignal());
        return;
      }
      const store = await openStore(opts);
      const summaries = await summarizeStore(store);
      if (opts.json) {
        out.line(JSON.stringify(summaries, null, 2));
        return;
      }
      out.line(formatTable(['NAME', 'TAG', 'SIZE', 'SHA', 'UPDATED'], summaries.map((s) => listRow(s, !!opts.wide))));
    });

  program
    .command('tag')
    .description('give a stored image another name')
    .argument('<source>', 'an image in the store')
    .argument('<target>', 'NAME:TAG')
    .addOption(storeOption())
    .action(async (source: string, target: string, opts) => {
      const store = await openStore(opts);
      const image = await store.tag(source, target);
      out.line(`Tagged ${image.refName}`);
    });

  program
    .command('rm')
    .alias('remove')
    .description('remove images from the local store (and the blobs nothing else uses)')
    .argument('<refs...>', 'images to remove')
    .addOption(storeOption())
    .action(async (refs: string[], opts) => {
      const store = await openStore(opts);
      const { removed, freedBytes } = await store.remove(refs);
      for (const r of removed) out.line(`Removed ${r}`);
      out.info(out.dim(`freed ${formatSize(freedBytes)}`));
    });

  program
    .command('inspect')
    .description('show an image: manifest, config, ABI, root ids and both digests')
    .argument('<ref>', 'an image in the store')
    .option('--json', 'print JSON')
    .addOption(storeOption())
    .action(async (ref: string, opts) => {
      const store = await openStore(opts);
      const image = await store.resolve(ref);
      const summary = await summarizeImage(store, image);
      const config = JSON.parse((await store.readBlob(image.manifest.config.digest as never)).toString('utf8'));
      if (opts.json) {
        out.line(JSON.stringify({ ...summary, manifest: image.manifest, config }, null, 2));
        return;
      }
      const rows: [string, string][] = [
        ['Reference', summary.reference],
        ['Manifest digest', `${summary.manifestDigest}  (pin this: Istio WasmPlugin sha256)`],
        ['Wasm digest', `${summary.wasmDigest}  (wasme cache key, list SHA)`],
        ['Variant', summary.variant],
        ['Module size', formatSize(summary.wasmSize)],
        ['ABI', `${summary.abi ?? 'unknown'}  (${summary.abiVersions.join(', ')})`],
        ['Root ids', summary.rootIds.join(', ') || '-'],
        ['Stored', summary.updated ?? '-'],
      ];
      for (const [k, v] of rows) out.line(`${out.bold(k.padEnd(16))} ${v}`);
      out.line();
      out.line(out.bold('Manifest'));
      out.line(JSON.stringify(image.manifest, null, 2));
      out.line(out.bold('Config'));
      out.line(JSON.stringify(config, null, 2));
    });

  program
    .command('wat')
    .description('print a module (a stored image or a .wasm file) in the WebAssembly text format')
    .argument('<ref-or-file>', 'an image in the store, or a .wasm file')
    .addOption(storeOption())
    .action(async (target: string, opts) => {
      let bytes: Uint8Array;
      if (target.endsWith('.wasm') || (await fs.stat(target).then((s) => s.isFile(), () => false))) {
        bytes = await fs.readFile(target);
      } else {
        const store = await openStore(opts);
        bytes = (await readImageContent(store, await store.resolve(target))).wasm;
      }
      out.line(await disassembleModule(bytes));
    });

  addRegistryCommands(program, out, { interruptSignal, openStore, storeOption });
  addRunCommand(program, out, { openStore: () => openStore({}), interruptSignal });
  addTestCommand(program, out, { openStore: () => openStore({}), interruptSignal });
  addDeployCommands(program, out, { openStore: () => openStore({}), interruptSignal });
  addOperatorCommand(program, out);
  return program;
}

/** A path as the user would type it: relative below the current folder, absolute elsewhere. */
function displayPath(p: string): string {
  const rel = path.relative(process.cwd(), p);
  return !rel ? '.' : rel.startsWith('..') || path.isAbsolute(rel) ? p : rel;
}

function defaultSdkFor(platform: string | undefined, platformVersion: string | undefined): 'modern' | 'wasme' {
  // Istio 1.7–1.9 and Gloo 1.5 only load ABI 0.2.0, which the wasme-era SDK builds.
  const minor = (platformVersion ?? '').split('.').slice(0, 2).join('.');
  if ((platform ?? 'istio') === 'istio' && ['1.7', '1.8', '1.9'].includes(minor)) return 'wasme';
  if (platform === 'gloo' && minor === '1.5') return 'wasme';
  return 'modern';
}

function buildJson(result: BuildResult) {
  return {
    reference: formatReference(result.reference),
    manifestDigest: result.manifestDigest,
    wasmDigest: result.wasmDigest,
    size: result.module.size,
    abiVersion: result.module.abiVersion,
    abiVersions: result.abiVersions,
    rootIds: result.rootIds,
    variant: result.variant,
    warnings: result.warnings,
    diagnostics: result.diagnostics,
    outputFile: result.outputFile,
    timings: result.timings,
  };
}

export async function main(argv = process.argv): Promise<number> {
  const out = new Output();
  const program = createProgram(out);
  try {
    await program.parseAsync(argv);
    // A command that found failures (e.g. `test`) sets the exit code without throwing.
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code === 'commander.helpDisplayed' || code === 'commander.version' || code === 'commander.help') return 0;
    if (typeof code === 'string' && code.startsWith('commander.')) return 2;
    if (err instanceof BuildFailedError) {
      for (const d of err.diagnostics) out.info(formatDiagnostic(d));
    }
    out.error(err);
    return isUserError(err) ? 1 : 70;
  }
}

export { defaultSdkFor };
