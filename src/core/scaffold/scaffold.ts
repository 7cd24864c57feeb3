import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { UserError, throwIfCancelled } from '../errors';
import { pathExists, writeFileExclusive } from '../fsAtomic';
import { findPlatformVersion, type PlatformName } from '../platforms';
import { runProgram } from '../process';
import { PROJECT_FILE, type AssemblyScriptSdk, type Language, type ProjectManifest } from '../project/projectManifest';
import { runtimeAbiNames } from '../wasm/abi';
import { templateFor, templatesRoot, type TemplateInfo } from './templates';

export interface ScaffoldOptions {
  dir: string;
  language: Language;
  sdk?: AssemblyScriptSdk;
  platform: PlatformName;
  platformVersion: string;
  rootId: string;
  name: string;
  /** Allow a non-empty folder; existing files are kept, never overwritten. */
  force?: boolean;
  /** Install the project's npm dependencies (AssemblyScript). Default true. */
  install?: boolean;
  onProgress?: (message: string) => void;
  signal?: AbortSignal;
}

/** What a user chooses for a new filter (the wizard and the CLI prompts ask for these). */
export type ScaffoldChoices = Pick<ScaffoldOptions, 'language' | 'sdk' | 'platform' | 'platformVersion' | 'name' | 'rootId'>;

export interface ScaffoldResult {
  dir: string;
  template: TemplateInfo;
  written: string[];
  /** Files that already existed with other content and were left as they were. */
  kept: string[];
  installed: boolean;
}

const NAME_RE = /^[a-z0-9][a-z0-9._-]{0,213}$/;
const ROOT_ID_RE = /^[A-Za-z0-9_.:-]{1,128}$/;

export function validateFilterName(name: string): string | undefined {
  return NAME_RE.test(name) ? undefined : 'a filter name is lowercase letters, digits, ".", "_" and "-", starting with a letter or digit';
}

export function validateRootId(rootId: string): string | undefined {
  return ROOT_ID_RE.test(rootId) ? undefined : 'a root id is letters, digits, "_", ".", ":" and "-" (at most 128)';
}

/** Suggests a filter name from a folder name. */
export function nameFromFolder(dir: string): string {
  const base = path.basename(path.resolve(dir)).toLowerCase().replace(/[^a-z0-9._-]+/g, '-').replace(/^[^a-z0-9]+/, '');
  return base || 'my-filter';
}

/**
 * Creates a filter project. Into a new or empty folder the files are written to a staging folder and
 * moved into place in one rename, so a failure leaves nothing behind; into a non-empty folder (--force)
 * each file is created only where none exists, so a user's file is never overwritten.
 */
export async function scaffoldProject(options: ScaffoldOptions): Promise<ScaffoldResult> {
  const dir = path.resolve(options.dir);
  const nameProblem = validateFilterName(options.name);
  if (nameProblem) throw new UserError(`"${options.name}" is not a valid filter name: ${nameProblem}.`, 'Pass another --name.', 'E_BAD_NAME');
  const rootProblem = validateRootId(options.rootId);
  if (rootProblem) throw new UserError(`"${options.rootId}" is not a valid root id: ${rootProblem}.`, 'Pass another --root-id.', 'E_BAD_ROOT_ID');
  if (options.language !== 'assemblyscript' && options.sdk) {
    throw new UserError(`--sdk applies to AssemblyScript only (the ${options.language} template has one SDK).`, 'Leave out --sdk.', 'E_BAD_SDK');
  }
  const template = templateFor(options.language, options.sdk);
  const platform = findPlatformVersion(options.platform, options.platformVersion);
  if (!platform.abis.includes(template.abi)) {
    const alternative =
      options.language === 'assemblyscript' && platform.abis.includes('0.2.0')
        ? 'Use `--sdk wasme` (ABI 0.2.0) for this platform version'
        : `Choose a newer ${options.platform} version`;
    throw new UserError(
      `${options.platform} ${platform.version} loads proxy-wasm ABI ${platform.abis.join('/')} only, but the ${template.title} template builds ABI ${template.abi}.`,
      `${alternative}.`,
      'E_ABI_MISMATCH',
    );
  }

  const existing = (await pathExists(dir)) ? await fs.readdir(dir) : undefined;
  if (existing === undefined) {
    // ok: a new folder
  } else if (!(await fs.stat(dir)).isDirectory()) {
    throw new UserError(`${dir} exists and is not a folder.`, 'Choose another path.', 'E_NOT_A_FOLDER');
  } else if (existing.length > 0 && !options.force) {
    throw new UserError(
      `${dir} is not empty (${existing.slice(0, 3).join(', ')}${existing.length > 3 ? ', …' : ''}).`,
      'Choose an empty or new folder, or pass --force to add the project beside your files (none of them is overwritten).',
      'E_NOT_EMPTY',
    );
  }

  const files = await renderTemplate(template, options);
  throwIfCancelled(options.signal, 'Creating the project');
  const written: string[] = [];
  const kept: string[] = [];
  if (!existing || existing.length === 0) {
    const parent = path.dirname(dir);
    await fs.mkdir(parent, { recursive: true });
    const staging = path.join(parent, `.${path.basename(dir)}.scaffold-${randomBytes(4).toString('hex')}`);
    try {
      for (const [rel, content] of files) {
        await fs.mkdir(path.dirname(path.join(staging, rel)), { recursive: true });
        await fs.writeFile(path.join(staging, rel), content);
        written.push(rel);
      }
      if (existing) await fs.rmdir(dir);
      await fs.rename(staging, dir);
    } catch (err) {
      await fs.rm(staging, { recursive: true, force: true });
      throw err;
    }
  } else {
    for (const [rel, content] of files) {
      const target = path.join(dir, rel);
      if (await writeFileExclusive(target, content)) {
        written.push(rel);
      } else {
        const current = await fs.readFile(target, 'utf8').catch(() => undefined);
        if (current !== content) kept.push(rel);
      }
    }
  }

  let installed = false;
  if (template.installsWithNpm && options.install !== false) {
    await installDependencies(dir, options.onProgress, options.signal);
    installed = true;
  }
  return { dir, template, written, kept, installed };
}

async function renderTemplate(template: TemplateInfo, options: ScaffoldOptions): Promise<Map<string, string>> {
  const root = templatesRoot();
  const ascCommand = template.build.args ? `asc ${template.build.args.join(' ')}` : '';
  const vars: Record<string, string> = {
    name: options.name,
    rootId: options.rootId,
    platform: options.platform,
    platformVersion: findPlatformVersion(options.platform, options.platformVersion).version,
    crateName: options.name.replace(/[^a-z0-9_]/g, '_'),
    goModule: `example.com/${options.name}`,
    abiVersionsJson: JSON.stringify(runtimeAbiNames(template.abi)),
    languageTitle: template.title,
    ascCommand,
    installStep: template.installsWithNpm ? 'npm install                                  # once (done by init)\n' : '',
  };
  const render = (text: string) => text.replace(/\{\{(\w+)\}\}/g, (whole, key: string) => vars[key] ?? whole);
  const files = new Map<string, string>();
  for (const folder of ['common', template.id]) {
    for (const rel of await listFiles(path.join(root, folder))) {
      const target = rel.split(path.sep).map((p) => (p.startsWith('_') ? `.${p.slice(1)}` : p)).join('/');
      files.set(target, render(await fs.readFile(path.join(root, folder, rel), 'utf8')));
    }
  }
  const manifest: ProjectManifest = {
    name: options.name,
    language: options.language,
    ...(template.sdk ? { sdk: template.sdk } : {}),
    platform: { name: options.platform, version: vars.platformVersion! },
    rootId: options.rootId,
    image: options.name,
    build: {
      ...(template.build.args ? { args: template.build.args } : {}),
      ...(template.build.command ? { command: template.build.command } : {}),
      output: render(template.build.output),
    },
  };
  files.set(PROJECT_FILE, JSON.stringify(manifest, null, 2) + '\n');
  return files;
}

async function listFiles(dir: string, prefix = ''): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await fs.readdir(dir, { withFileTypes: true })) {
    const rel = path.join(prefix, entry.name);
    if (entry.isDirectory()) out.push(...(await listFiles(path.join(dir, entry.name), rel)));
    else out.push(rel);
  }
  return out.sort();
}

/** `npm install` in the new project, reporting npm's progress lines and a heartbeat. */
export async function installDependencies(dir: string, onProgress?: (message: string) => void, signal?: AbortSignal): Promise<void> {
  const started = Date.now();
  onProgress?.('Installing dependencies with npm…');
  const heartbeat = setInterval(() => onProgress?.(`Installing dependencies with npm… ${Math.round((Date.now() - started) / 1000)}s`), 2000);
  try {
    const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
    const result = await runProgram(npm, ['install', '--no-audit', '--no-fund', '--loglevel=http'], {
      cwd: dir,
      ...(signal ? { signal } : {}),
      onLine: (line) => {
        const fetch = /GET 200 .*\/([^/\s]+)\/-\/([^/\s]+\.tgz)/.exec(line);
        if (fetch) onProgress?.(`Installing dependencies with npm… fetched ${fetch[2]}`);
        else if (/^added \d+ packages?/.test(line)) onProgress?.(line);
      },
    });
    if (result.code !== 0) {
      const tail = result.output.split('\n').filter((l) => /ERR!|error/i.test(l)).slice(-5).join('\n');
      throw new UserError(
        `npm install failed in ${dir} (exit code ${result.code})${tail ? `:\n${tail}` : '.'}`,
        `The project files were created. Fix the problem above, then run \`npm install\` in ${dir}.`,
        'E_INSTALL_FAILED',
      );
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new UserError('npm was not found on PATH.', `Install Node.js (which brings npm), then run \`npm install\` in ${dir}.`, 'E_NO_NPM');
    }
    throw err;
  } finally {
    clearInterval(heartbeat);
  }
}
