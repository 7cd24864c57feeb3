// For contributors whose machines can download desktop VS Code: the same extension-host suite,
// run with @vscode/test-electron (`npm run test:desktop`). CI runs it in code-server instead.
import * as path from 'node:path';
import { runTests } from '@vscode/test-electron';
import { REPO_ROOT, tempDir } from '../helpers/env';

async function main(): Promise<void> {
  const home = tempDir('wfs-desktop-home-');
  const workspace = tempDir('wfs-desktop-ws-');
  process.env.WASM_FILTER_HOME = home;
  await runTests({
    extensionDevelopmentPath: REPO_ROOT,
    extensionTestsPath: path.join(REPO_ROOT, 'out', 'test', 'vscode', 'suite', 'index.js'),
    launchArgs: [workspace, '--disable-extensions', '--disable-workspace-trust'],
    extensionTestsEnv: { WASM_FILTER_HOME: home },
  });
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
