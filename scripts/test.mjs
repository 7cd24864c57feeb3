// Runs the test files with Node's test runner. Node 20 treats every .js file below a folder named
// "test" as a test file when given a folder, so the files are listed here: *.test.js only.
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import * as path from 'node:path';

const roots = process.argv.slice(2).length ? process.argv.slice(2) : ['out/test/unit', 'out/test/integration', 'out/test/vscode'];
const files = [];
const walk = (dir) => {
  for (const name of readdirSync(dir).sort()) {
    const p = path.join(dir, name);
    if (statSync(p).isDirectory()) walk(p);
    else if (name.endsWith('.test.js')) files.push(p);
  }
};
for (const root of roots) walk(root);
if (!files.length) {
  console.error(`no test files under ${roots.join(', ')}; run npm run compile first`);
  process.exit(1);
}
const result = spawnSync(process.execPath, ['--test', '--test-concurrency=1', ...files], { stdio: 'inherit' });
process.exit(result.status ?? 1);
