import { UserError } from '../errors';
import { ABI_EXPORTS, type AbiVersion } from './abi';

export interface ModuleInfo {
  size: number;
  abiVersion: AbiVersion;
  /** The export that declared the ABI, e.g. `proxy_abi_version_0_2_1`. */
  abiExport: string;
  /** What the host calls to allocate guest memory. */
  allocator: 'proxy_on_memory_allocate' | 'malloc';
  exports: string[];
  imports: { module: string; name: string; kind: string }[];
  /** Of the root ids the project declares, those whose name is present in the module's data. */
  rootIdsFound: string[];
  warnings: string[];
}

const WASM_MAGIC = [0x00, 0x61, 0x73, 0x6d];

/**
 * Checks that a file is a proxy-wasm filter before it becomes an image: a valid WebAssembly module
 * (compiled by V8, the engine Envoy uses) that declares a proxy-wasm ABI and exports an allocator.
 */
export function inspectModule(bytes: Uint8Array, options: { source?: string; expectedRootIds?: string[] } = {}): ModuleInfo {
  const source = options.source ?? 'The module';
  if (bytes.length < 8 || WASM_MAGIC.some((b, i) => bytes[i] !== b)) {
    const head = Buffer.from(bytes.subarray(0, 16)).toString('latin1').replace(/[^\x20-\x7e]/g, '.');
    throw new UserError(
      `${source} is not a WebAssembly module (it starts with "${head}", not "\\0asm").`,
      'Build the filter first, or pass the .wasm file the toolchain produced.',
      'E_NOT_WASM',
    );
  }
  let module: WebAssembly.Module;
  try {
    module = new WebAssembly.Module(bytes);
  } catch (err) {
    throw new UserError(
      `${source} is not a valid WebAssembly module: ${(err as Error).message}.`,
      'The file may be truncated or built for another target; rebuild it.',
      'E_INVALID_WASM',
    );
  }
  const exports = WebAssembly.Module.exports(module);
  const exportNames = exports.map((e) => e.name);
  const abiExports = exports.filter((e) => e.kind === 'function' && e.name in ABI_EXPORTS);
  if (abiExports.length === 0) {
    throw new UserError(
      `${source} exports no proxy_abi_version_* function, so Envoy would refuse it ("Missing or unknown Proxy-Wasm ABI version").`,
      'Export the SDK\'s entry points (AssemblyScript: `export * from "<sdk>/proxy"` in assembly/index.ts), or use a proxy-wasm SDK.',
      'E_NO_ABI',
    );
  }
  const warnings: string[] = [];
  // The newest declared version wins, as in proxy-wasm-cpp-host.
  const abiExport = abiExports.map((e) => e.name).sort().at(-1)!;
  if (abiExports.length > 1) {
    warnings.push(`The module declares several ABI versions (${abiExports.map((e) => e.name).join(', ')}); hosts use ${abiExport}.`);
  }
  const functionExports = new Set(exports.filter((e) => e.kind === 'function').map((e) => e.name));
  const allocator = functionExports.has('proxy_on_memory_allocate')
    ? 'proxy_on_memory_allocate'
    : functionExports.has('malloc')
      ? 'malloc'
      : undefined;
  if (!allocator) {
    throw new UserError(
      `${source} exports no memory allocator (proxy_on_memory_allocate or malloc), so the proxy cannot hand it headers or bodies.`,
      'The proxy-wasm SDKs export one; make sure the SDK\'s exports are re-exported from the entry file.',
      'E_NO_ALLOCATOR',
    );
  }
  if (!exports.some((e) => e.kind === 'memory')) {
    throw new UserError(`${source} exports no memory.`, 'Proxy-wasm modules must export their linear memory as "memory".', 'E_NO_MEMORY');
  }
  const rootIdsFound = (options.expectedRootIds ?? []).filter((id) => containsString(bytes, id));
  for (const id of options.expectedRootIds ?? []) {
    if (id && !rootIdsFound.includes(id)) {
      warnings.push(`Root id "${id}" does not appear in the module; check the name passed to registerRootContext (or your SDK's equivalent).`);
    }
  }
  return {
    size: bytes.length,
    abiVersion: ABI_EXPORTS[abiExport]!,
    abiExport,
    allocator,
    exports: exportNames,
    imports: WebAssembly.Module.imports(module).map((i) => ({ module: i.module, name: i.name, kind: i.kind })),
    rootIdsFound,
    warnings,
  };
}

/** Whether a string is in the module's bytes, as UTF-8 (Rust, Go, C++) or UTF-16LE (AssemblyScript). */
function containsString(bytes: Uint8Array, text: string): boolean {
  if (!text) return false;
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return buf.includes(Buffer.from(text, 'utf8')) || buf.includes(Buffer.from(text, 'utf16le'));
}
