/** Builds small test modules from WebAssembly text with wabt (the reference toolkit, compiled to wasm). */
type WabtModule = { toBinary(o: object): { buffer: Uint8Array }; destroy(): void };
type Wabt = { parseWat(name: string, text: string, features?: object): WabtModule };
let wabt: Promise<Wabt> | undefined;

export async function wat(text: string): Promise<Buffer> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  wabt ??= (require('wabt') as () => Promise<Wabt>)();
  const module = (await wabt).parseWat('test.wat', text, { bulk_memory: true, mutable_globals: true });
  try {
    return Buffer.from(module.toBinary({}).buffer);
  } finally {
    module.destroy();
  }
}

/** A minimal proxy-wasm module: memory, an allocator, an ABI marker, and a root id in its data. */
export function filterWat(options: { abi?: string; allocator?: string; rootId?: string; utf16?: boolean } = {}): string {
  const abi = options.abi ?? 'proxy_abi_version_0_2_1';
  const allocator = options.allocator ?? 'malloc';
  const rootId = options.rootId ?? 'add_header';
  const data = options.utf16 ? [...rootId].map((c) => `${c}\\00`).join('') : rootId;
  return `(module
    (memory (export "memory") 1)
    (data (i32.const 16) "${data}")
    ${abi ? `(func (export "${abi}"))` : ''}
    ${allocator ? `(func (export "${allocator}") (param i32) (result i32) (i32.const 1024))` : ''}
    (func (export "proxy_on_context_create") (param i32 i32)))`;
}
