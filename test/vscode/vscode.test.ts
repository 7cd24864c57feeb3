import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { REPO_ROOT, tempDir } from '../helpers/env';
import { KubeApiDouble, seedBookinfo, type KubeObject } from '../helpers/kubeApi';
import { filterDeploymentCrd } from '../../src/core/operator/filterDeployment';
import { startRegistry, USERS, type StartedRegistry } from '../helpers/registry';
import { launchBrowser, startServer, vscodeHostMissing, workbenchUrl, type RunningServer } from './codeServer';

const SCREENSHOTS = path.join(REPO_ROOT, 'test-results');
const missing = vscodeHostMissing();
let server: RunningServer;
if (missing && process.env.CI) throw new Error(missing);

describe('in a real VS Code (code-server in Chromium)', { skip: missing }, () => {
  const home = tempDir('wfs-vscode-home-');
  const workspace = tempDir('wfs-vscode-ws-');
  const results = path.join(tempDir('wfs-vscode-results-'), 'results.json');
  let browser: Browser;
  let registry: StartedRegistry;
  let kube: KubeApiDouble;

  before(async () => {
    // A real registry with Basic auth for the Registries view; Docker's config is an empty one of our own.
    registry = await startRegistry({ auth: 'htpasswd' });
    // The Kubernetes API double, with a current Istio, and a sidecar log that holds a known failure.
    kube = await new KubeApiDouble().start();
    seedBookinfo(kube, { istioVersion: '1.28.0', wasmPlugin: true });
    const pod = kube.list('v1', 'Pod', 'bookinfo').find((p) => p.metadata.name.startsWith('reviews-v1'))!;
    kube.addLog('bookinfo', pod.metadata.name, 'istio-proxy', `2026-11-25T10:00:00.000Z\terror\twasm\terror in converting the wasm config to local: cannot fetch Wasm module oci://webassemblyhub.io/studio-filter:latest: UNAUTHORIZED: authentication required`);
    // The wasme tutorial's failure: the sidecar loaded the EnvoyFilter before the cache had the module.
    const third = kube.list('v1', 'Pod', 'bookinfo').find((p) => p.metadata.name.startsWith('reviews-v3'))!;
    kube.addLog('bookinfo', third.metadata.name, 'istio-proxy', `[2026-11-25 10:00:02.000][21][warning][config] [external/envoy/source/common/config/grpc_subscription_impl.cc:87] gRPC config for type.googleapis.com/envoy.api.v2.Listener rejected: Error adding/updating listener(s) virtualInbound: Invalid path: /var/local/lib/wasme-cache/${'ab'.repeat(32)}`);
    // A FilterDeployment in another namespace, with the status an operator wrote.
    kube.put(filterDeploymentCrd() as KubeObject);
    kube.put({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop' } });
    kube.put({
      apiVersion: 'wasme.io/v1',
      kind: 'FilterDeployment',
      metadata: { name: 'cart-filter', namespace: 'shop' },
      spec: { filter: { image: 'webassemblyhub.io/alice/cart-filter:v1' }, deployment: { istio: { kind: 'Deployment', labels: { app: 'cart' } } } },
      status: {
        observedGeneration: 1,
        reason: 'pulling manifest v1 at webassemblyhub.io failed: No image with that tag or digest exists there.',
        workloads: { 'cart-v1': { state: 'Failed', reason: 'ImageNotFound' } },
        conditions: [
          { type: 'Ready', status: 'False', reason: 'ImageNotFound', message: 'No image with that tag or digest exists there.', lastTransitionTime: '2026-11-25T10:00:00Z' },
          { type: 'ProxiesHealthy', status: 'Unknown', reason: 'NotDeployed', message: 'Nothing is deployed to read proxies about.', lastTransitionTime: '2026-11-25T10:00:00Z' },
        ],
      },
    });
    // And the filter's own abort on another pod, which names a line of the project's source.
    const other = kube.list('v1', 'Pod', 'bookinfo').find((p) => p.metadata.name.startsWith('reviews-v2'))!;
    kube.addLog('bookinfo', other.metadata.name, 'istio-proxy', `[2026-11-25 10:00:01.000][20][critical][wasm] [source/extensions/common/wasm/context.cc:1170] wasm log studio add_header: header missing at: assembly/index.ts(3:5)`);
    const kubeconfig = kube.writeKubeconfig(path.join(tempDir('wfs-vscode-kube-'), 'kubeconfig'));
    server = await startServer({
      dataDir: tempDir('wfs-vscode-data-'),
      env: {
        WASM_FILTER_HOME: home,
        WASM_FILTER_TEST_RESULTS: results,
        DOCKER_CONFIG: tempDir('wfs-vscode-docker-'),
        WASM_FILTER_TEST_REGISTRY: registry.host,
        WASM_FILTER_TEST_REGISTRY_USER: 'alice',
        WASM_FILTER_TEST_REGISTRY_PASSWORD: USERS.alice!,
        KUBECONFIG: kubeconfig,
      },
    });
    browser = await launchBrowser();
    await fs.mkdir(SCREENSHOTS, { recursive: true });
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
    await registry?.stop();
    await kube?.stop();
  });

  it('extension tests pass in the real extension host', { timeout: 600_000 }, async (t) => {
    const page = await browser.newPage();
    const log: string[] = [];
    const exit = new Promise<number>((resolve) => {
      void page.exposeFunction('codeAutomationExit', (code: number) => resolve(code));
      void page.exposeFunction('codeAutomationLog', (_type: string, args: unknown[]) => log.push(args.map(String).join(' ')));
    });
    await page.goto(workbenchUrl(server, { folder: workspace, extensionPath: REPO_ROOT, testsPath: path.join(REPO_ROOT, 'out', 'test', 'vscode', 'suite', 'index.js') }));
    const timeout = new Promise<number>((_, reject) => setTimeout(() => reject(new Error(`no result in 9 minutes\n${log.join('\n')}\n${server.output()}`)), 540_000).unref());
    const code = await Promise.race([exit, timeout]);
    await page.screenshot({ path: path.join(SCREENSHOTS, 'extension-host-tests.png') });
    await page.close();
    let cases: { name: string; ok: boolean; error?: string }[];
    try {
      cases = JSON.parse(await fs.readFile(results, 'utf8'));
    } catch {
      throw new Error(`the extension tests wrote no results (exit ${code})\n${log.slice(-40).join('\n')}\n${server.output().slice(-4000)}`);
    }
    for (const c of cases) {
      await t.test(c.name, () => {
        if (!c.ok) throw new Error(c.error);
      });
    }
    assert.ok(cases.length >= 5, 'every case ran');
    // The deploy on save went to a registry that needs a login: a pull Secret was made, and undeploy removed it.
    assert.ok(kube.requests.some((r) => r.method === 'POST' && r.path === '/api/v1/namespaces/bookinfo/secrets'), 'a pull Secret was created');
    assert.deepEqual(kube.list('v1', 'Secret', 'bookinfo').map((x) => x.metadata.name), [], 'and removed by undeploy');
    assert.equal(code, 0, 'the extension host reported success');
  });

  it('a person creates and builds a filter from the command palette and sees it in the sidebar', { timeout: 600_000 }, async () => {
    const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    try {
      await driveNewFilterAndBuild(page, workspace);
    } catch (err) {
      await page.screenshot({ path: path.join(SCREENSHOTS, 'ui-failure.png') }).catch(() => undefined);
      throw err;
    } finally {
      await page.close();
    }
  });
});

async function driveNewFilterAndBuild(page: Page, workspace: string): Promise<void> {
    await page.goto(workbenchUrl(server, { folder: workspace, extensionPath: REPO_ROOT }));
    await page.waitForSelector('.activitybar [aria-label^="Wasm Filters"]', { timeout: 120_000 });
    await page.waitForTimeout(2000);

    await runCommand(page, 'Wasm Filter: New Filter');
    await choose(page, 'assemblyscript');
    await choose(page, 'modern');
    await choose(page, 'istio 1.28.x');
    await typeAnswer(page, 'ui-filter');
    await typeAnswer(page, 'add_header');
    await choose(page, path.basename(workspace));
    // npm install runs behind a progress notification; then the new filter's source opens.
    await page.locator('.tab', { hasText: 'index.ts' }).first().waitFor({ timeout: 240_000 });
    await page.waitForTimeout(1000);
    await page.screenshot({ path: path.join(SCREENSHOTS, 'new-filter-created.png') });
    const editorText = (await page.locator('.editor-instance .view-lines').first().textContent()) ?? '';
    assert.match(editorText.replace(/\u00a0/g, ' '), /registerRootContext/);

    await runCommand(page, 'Wasm Filter: Build Filter');
    // With two projects open, the command asks which one; with the new one's file active it may not.
    await page.waitForTimeout(1000);
    const picker = page.locator('.quick-input-widget', { hasText: 'Build which filter?' });
    if (await picker.isVisible()) await choose(page, 'ui-filter');
    await page.locator('.activitybar [aria-label^="Wasm Filters"]').first().click();
    const row = page.locator('.monaco-list-row', { hasText: 'ui-filter:latest' });
    await row.waitFor({ timeout: 180_000 });
    await page.screenshot({ path: path.join(SCREENSHOTS, 'local-images.png') });
    assert.match((await row.textContent()) ?? '', /ui-filter:latest.*kB/);
}

/** Opens the command palette and runs a command; retries while the workbench is still indexing extensions. */
async function runCommand(page: Page, title: string): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    await page.keyboard.press('F1');
    const input = page.locator('.quick-input-widget input');
    await input.waitFor();
    await input.fill(`>${title}`);
    try {
      await page.locator('.quick-input-list .monaco-list-row', { hasText: title }).first().waitFor({ timeout: 5000 });
      await page.keyboard.press('Enter');
      return;
    } catch (err) {
      if (attempt >= 6) throw err;
      await page.keyboard.press('Escape');
      await page.waitForTimeout(2000);
    }
  }
}

async function choose(page: Page, label: string): Promise<void> {
  const input = page.locator('.quick-input-widget input');
  await input.waitFor();
  await page.locator('.quick-input-list .monaco-list-row', { hasText: label }).first().waitFor({ timeout: 30_000 });
  await input.fill(label);
  await page.waitForTimeout(300);
  await page.keyboard.press('Enter');
  await page.waitForTimeout(500);
}

async function typeAnswer(page: Page, value: string): Promise<void> {
  const input = page.locator('.quick-input-widget input');
  await input.waitFor();
  await input.fill(value);
  await page.waitForTimeout(300);
  await page.keyboard.press('Enter');
  await page.waitForTimeout(500);
}
