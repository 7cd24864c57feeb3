import { UserError } from '../errors';

type Wabt = {
  readWasm(bytes: Uint8Array, options: Record<string, boolean>): {
    generateNames(): void;
    applyNames(): void;
    toText(options: { foldExprs: boolean; inlineExport: boolean }): string;
    destroy(): void;
  };
};

let wabtPromise: Promise<Wabt> | undefined;

/** Disassembles a module to the WebAssembly text format with wabt (the reference toolkit, compiled to wasm). */
export async function disassembleModule(bytes: Uint8Array): Promise<string> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  wabtPromise ??= (require('wabt') as () => Promise<Wabt>)();
  const wabt = await wabtPromise;
  let module;
  try {
    // A copy: wabt reads the view's whole underlying buffer, and a Buffer is often a slice of a larger one.
    module = wabt.readWasm(new Uint8Array(bytes), {
      readDebugNames: true,
      mutable_globals: true,
      sat_float_to_int: true,
      sign_extension: true,
      simd: true,
      bulk_memory: true,
      multi_value: true,
      reference_types: true,
    });
  } catch (err) {
    throw new UserError(`The module cannot be disassembled: ${(err as Error).message}.`, undefined, 'E_INVALID_WASM');
  }
  try {
    module.generateNames();
    module.applyNames();
    return module.toText({ foldExprs: false, inlineExport: true });
  } finally {
    module.destroy();
  }
}
