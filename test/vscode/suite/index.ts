// Runs inside the real VS Code extension host (code-server, or desktop VS Code via @vscode/test-electron).
// A small runner: cases run in order, results go to a JSON file the launcher reports through node:test.
import { promises as fs } from 'node:fs';
import { cases } from './extension.cases';

// A case that never settles must fail alone, not stall the whole run until the launcher gives up.
const CASE_TIMEOUT_MS = 90_000;

function withTimeout<T>(work: Promise<T>, ms: number, name: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`"${name}" did not finish in ${ms / 1000} s`)), ms);
  });
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}

export async function run(): Promise<void> {
  const results: { name: string; ok: boolean; error?: string; ms: number }[] = [];
  for (const c of cases) {
    const started = Date.now();
    try {
      await withTimeout(c.fn(), CASE_TIMEOUT_MS, c.name);
      results.push({ name: c.name, ok: true, ms: Date.now() - started });
    } catch (err) {
      results.push({ name: c.name, ok: false, error: err instanceof Error ? (err.stack ?? err.message) : String(err), ms: Date.now() - started });
    }
    console.log(`${results.at(-1)!.ok ? 'ok' : 'not ok'} - ${c.name}`);
  }
  const out = process.env.WASM_FILTER_TEST_RESULTS;
  if (out) await fs.writeFile(out, JSON.stringify(results, null, 2));
  const failed = results.filter((r) => !r.ok);
  if (failed.length) throw new Error(`${failed.length} of ${results.length} extension tests failed:\n${failed.map((f) => `${f.name}: ${f.error}`).join('\n')}`);
}
