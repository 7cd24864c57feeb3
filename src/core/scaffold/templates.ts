import * as path from 'node:path';
import type { AbiVersion } from '../wasm/abi';
import type { AssemblyScriptSdk, BuildSettings, Language } from '../project/projectManifest';

/** What a template needs to build: the toolchain programs and how to get them. */
export interface ToolRequirement {
  command: string;
  install: string;
}

export interface TemplateInfo {
  id: string;
  language: Language;
  sdk?: AssemblyScriptSdk;
  title: string;
  /** The ABI the template's SDK produces. */
  abi: AbiVersion;
  build: BuildSettings;
  /** Whether the root id is compiled into the module (and so can be checked after a build). */
  rootIdInModule: boolean;
  installsWithNpm: boolean;
  tools: ToolRequirement[];
}

export const TEMPLATES: TemplateInfo[] = [
  {
    id: 'assemblyscript-modern',
    language: 'assemblyscript',
    sdk: 'modern',
    title: 'AssemblyScript 0.28 with @gcoredev/proxy-wasm-sdk-as (ABI 0.2.1)',
    abi: '0.2.1',
    build: {
      args: [
        'assembly/index.ts',
        '--outFile',
        'build/filter.wasm',
        '--config',
        'node_modules/@assemblyscript/wasi-shim/asconfig.json',
        '--use',
        'abort=abort_proc_exit',
        '-O3',
      ],
      output: 'build/filter.wasm',
    },
    rootIdInModule: true,
    installsWithNpm: true,
    tools: [],
  },
  {
    id: 'assemblyscript-wasme',
    language: 'assemblyscript',
    sdk: 'wasme',
    title: 'AssemblyScript 0.14 with @solo-io/proxy-runtime 0.1.8, as wasme made it (ABI 0.2.0)',
    abi: '0.2.0',
    build: {
      args: ['assembly/index.ts', '-b', 'build/filter.wasm', '--use', 'abort=abort_proc_exit', '-O3'],
      output: 'build/filter.wasm',
    },
    rootIdInModule: true,
    installsWithNpm: true,
    tools: [],
  },
  {
    id: 'rust',
    language: 'rust',
    title: 'Rust with the proxy-wasm crate (ABI 0.2.1)',
    abi: '0.2.1',
    build: {
      command: ['cargo', 'build', '--target', 'wasm32-wasip1', '--release'],
      output: 'target/wasm32-wasip1/release/{{crateName}}.wasm',
    },
    rootIdInModule: false,
    installsWithNpm: false,
    tools: [{ command: 'cargo', install: 'Install Rust with rustup (https://rustup.rs), then run `rustup target add wasm32-wasip1`.' }],
  },
  {
    id: 'tinygo',
    language: 'tinygo',
    title: 'TinyGo with proxy-wasm-go-sdk (ABI 0.2.1)',
    abi: '0.2.1',
    build: {
      command: ['tinygo', 'build', '-o', 'build/filter.wasm', '-scheduler=none', '-target=wasi', '.'],
      output: 'build/filter.wasm',
    },
    rootIdInModule: false,
    installsWithNpm: false,
    tools: [{ command: 'tinygo', install: 'Install TinyGo (https://tinygo.org/getting-started/install/) and Go; then run `go mod tidy` in the project.' }],
  },
  {
    id: 'cpp',
    language: 'cpp',
    title: 'C++ with proxy-wasm-cpp-sdk (ABI 0.2.1)',
    abi: '0.2.1',
    build: { command: ['make'], output: 'build/filter.wasm' },
    rootIdInModule: true,
    installsWithNpm: false,
    tools: [
      { command: 'make', install: 'Install make (Debian/Ubuntu: `apt-get install make`).' },
      {
        command: 'em++',
        install: 'Install emscripten (https://emscripten.org/docs/getting_started/downloads.html) and set PROXY_WASM_CPP_SDK to a checkout of proxy-wasm-cpp-sdk.',
      },
    ],
  },
];

export function templateFor(language: Language, sdk?: AssemblyScriptSdk): TemplateInfo {
  const found = TEMPLATES.find((t) => t.language === language && (language !== 'assemblyscript' || t.sdk === (sdk ?? 'modern')));
  if (!found) throw new Error(`internal: no template for ${language}/${sdk}`);
  return found;
}

/** Where the template files are: templates/ beside dist/ (bundle) or beside out/ (tests). */
export function templatesRoot(): string {
  const candidates = [path.resolve(__dirname, '..', 'templates'), path.resolve(__dirname, '..', '..', '..', 'templates'), path.resolve(__dirname, '..', '..', '..', '..', 'templates')];
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const fs = require('node:fs') as typeof import('node:fs');
  const found = candidates.find((c) => fs.existsSync(path.join(c, 'common')));
  if (!found) throw new Error(`internal: the templates folder is missing (looked in ${candidates.join(', ')})`);
  return found;
}
