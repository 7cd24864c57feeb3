// The core library: plain Node, no `vscode`. The CLI and the extension are thin adapters over it.
export * from './errors';
export * from './digest';
export * from './reference';
export * from './mediaTypes';
export * from './format';
export * from './platforms';
export * from './wasm/abi';
export * from './wasm/moduleInfo';
export * from './wasm/disassemble';
export * from './store/localStore';
export * from './image/wasmImage';
export * from './project/projectManifest';
export * from './scaffold/templates';
export * from './scaffold/scaffold';
export * from './build/diagnostics';
export * from './build/build';
export * from './imageSummary';
