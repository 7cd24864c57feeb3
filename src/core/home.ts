import * as os from 'node:os';
import * as path from 'node:path';

/** The tool's home: `$WASM_FILTER_HOME`, else `~/.wasm-filter`. The store and the logins live there. */
export function resolveHome(env: NodeJS.ProcessEnv = process.env): string {
  return env.WASM_FILTER_HOME ? path.resolve(env.WASM_FILTER_HOME) : path.join(os.homedir(), '.wasm-filter');
}
