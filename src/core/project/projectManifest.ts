import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { UserError } from '../errors';
import { RUNTIME_CONFIG_FILE } from '../mediaTypes';
import type { PlatformName } from '../platforms';

export const PROJECT_FILE = 'wasm-filter.json';
export type Language = 'assemblyscript' | 'rust' | 'tinygo' | 'cpp';
export const LANGUAGES: Language[] = ['assemblyscript', 'rust', 'tinygo', 'cpp'];
export type AssemblyScriptSdk = 'modern' | 'wasme';

/** How a project compiles; `args` go to the in-process AssemblyScript compiler, `command` to a toolchain. */
export interface BuildSettings {
  /** Compiler arguments for asc, relative to the project folder. */
  args?: string[];
  /** A toolchain command (argv), run in the project folder. */
  command?: string[];
  /** Where the module lands, relative to the project folder. */
  output: string;
}

/** wasm-filter.json: what wasme kept in its build flags, plus what the studio adds (see schemas/). */
export interface ProjectManifest {
  name: string;
  language: Language;
  sdk?: AssemblyScriptSdk;
  platform: { name: PlatformName; version: string };
  rootId: string;
  /** The image name builds are stored under when no -t is given (default: the project name). */
  image?: string;
  build: BuildSettings;
}

export interface FilterProject {
  dir: string;
  manifest: ProjectManifest;
  /** wasme's runtime-config.json, if the project has one. */
  runtimeConfig?: { type?: string; abiVersions?: string[]; config?: { rootIds?: string[] } };
}

export async function loadProject(dir: string): Promise<FilterProject> {
  const root = path.resolve(dir);
  const file = path.join(root, PROJECT_FILE);
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new UserError(
        `${root} is not a filter project (no ${PROJECT_FILE}).`,
        'Create one with `wasm-filter init DIR`, or package an existing module with `wasm-filter build precompiled FILE.wasm -t NAME:TAG`.',
        'E_NO_PROJECT',
      );
    }
    throw err;
  }
  let manifest: ProjectManifest;
  try {
    manifest = JSON.parse(text) as ProjectManifest;
  } catch (err) {
    throw new UserError(`${file} is not valid JSON: ${(err as Error).message}.`, 'Fix the file; VS Code validates it against the schema.', 'E_BAD_PROJECT');
  }
  const problems = validateManifest(manifest);
  if (problems.length) {
    throw new UserError(`${file} is not a valid project file: ${problems.join('; ')}.`, 'Fix the file; VS Code validates it against the schema.', 'E_BAD_PROJECT');
  }
  let runtimeConfig: FilterProject['runtimeConfig'];
  try {
    runtimeConfig = JSON.parse(await fs.readFile(path.join(root, RUNTIME_CONFIG_FILE), 'utf8'));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new UserError(`${path.join(root, RUNTIME_CONFIG_FILE)} is not valid JSON: ${(err as Error).message}.`, undefined, 'E_BAD_PROJECT');
    }
  }
  return { dir: root, manifest, ...(runtimeConfig ? { runtimeConfig } : {}) };
}

function validateManifest(m: ProjectManifest): string[] {
  const problems: string[] = [];
  if (!m || typeof m !== 'object') return ['it is not a JSON object'];
  if (typeof m.name !== 'string' || !m.name) problems.push('"name" must be a non-empty string');
  if (!LANGUAGES.includes(m.language)) problems.push(`"language" must be one of ${LANGUAGES.join(', ')}`);
  if (m.language === 'assemblyscript' && m.sdk !== undefined && m.sdk !== 'modern' && m.sdk !== 'wasme') problems.push('"sdk" must be "modern" or "wasme"');
  if (!m.platform || typeof m.platform.name !== 'string' || typeof m.platform.version !== 'string') problems.push('"platform" needs "name" and "version"');
  if (typeof m.rootId !== 'string') problems.push('"rootId" must be a string');
  if (!m.build || typeof m.build.output !== 'string') problems.push('"build.output" must name the module file');
  else if (m.language === 'assemblyscript' ? !Array.isArray(m.build.args) : !Array.isArray(m.build.command)) {
    problems.push(m.language === 'assemblyscript' ? '"build.args" must list the compiler arguments' : '"build.command" must list the toolchain command');
  }
  return problems;
}

/** Root ids for the image: runtime-config.json's (wasme) when present, else the manifest's. */
export function projectRootIds(project: FilterProject): string[] {
  const ids = project.runtimeConfig?.config?.rootIds;
  return Array.isArray(ids) && ids.length ? ids : [project.manifest.rootId];
}
