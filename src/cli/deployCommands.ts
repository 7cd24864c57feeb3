import { promises as fs } from 'node:fs';
import { Command, Option } from 'commander';
import * as yaml from 'js-yaml';
import { UserError } from '../core/errors';
import { formatTable } from '../core/format';
import { clientFactory } from '../core/registry/access';
import { Cluster, type ClusterOptions } from '../core/deploy/cluster';
import { deployFilter, listDeployments, undeployFilter, type Change } from '../core/deploy/deploy';
import { imageForDeploy, pullCredentialFor } from '../core/deploy/deployImage';
import { defaultCredentials } from '../core/registry/access';
import type { DeployMode, PatchContext } from '../core/deploy/istioObjects';
import { collectFindings } from '../core/deploy/proxyFindings';
import type { LocalStore } from '../core/store/localStore';
import type { Output } from './output';

function labelsOption(value: string, previous: Record<string, string> = {}): Record<string, string> {
  const out = { ...previous };
  for (const pair of value.split(',')) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new UserError(`-l takes KEY=VALUE, not "${pair}".`, 'e.g. -l app=reviews -l version=v2', 'E_USAGE');
    out[pair.slice(0, eq).trim()] = pair.slice(eq + 1).trim();
  }
  return out;
}

export function clusterOptions(command: Command): Command {
  return command.option('--kubeconfig <file>', 'the kubeconfig (default: $KUBECONFIG or ~/.kube/config)').option('--context <name>', 'a kube-context (default: the current one)');
}

export function openCluster(opts: { kubeconfig?: string; context?: string }): Promise<Cluster> {
  const o: ClusterOptions = {};
  if (opts.kubeconfig) o.kubeconfig = opts.kubeconfig;
  if (opts.context) o.context = opts.context;
  return Cluster.open(o);
}

function printChanges(out: Output, changes: Change[], format: 'yaml' | 'json' | undefined, dryRun: boolean): void {
  if (format === 'json') {
    out.line(JSON.stringify(changes.map((c) => c.object ?? { kind: c.kind, metadata: { name: c.name, namespace: c.namespace } }), null, 2));
    return;
  }
  if (format === 'yaml') {
    out.line(changes.map((c) => `# ${c.action} ${c.kind} ${c.namespace ? `${c.namespace}/` : ''}${c.name}\n${yaml.dump(c.object ?? {}, { lineWidth: 120 })}`).join('---\n'));
    return;
  }
  for (const c of changes) out.line(`${dryRun && c.action !== 'unchanged' ? 'would ' : ''}${c.action} ${c.kind} ${c.namespace ? `${c.namespace}/` : ''}${c.name}`);
}

export function durationMs(text: string, flag: string): number {
  if (text === '0') return 0;
  const m = /^(\d+)(ms|s|m|h)$/.exec(text);
  if (!m) throw new UserError(`${flag} takes a duration like 30s, 10m or 2h, not "${text}".`, undefined, 'E_USAGE');
  return Number(m[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] as 'ms' | 's' | 'm' | 'h'];
}

export function addDeployCommands(program: Command, out: Output, helpers: { openStore: () => Promise<LocalStore>; interruptSignal: () => AbortSignal }): void {
  const deploy = program.command('deploy').description('deploy a filter to a cluster');
  clusterOptions(
    deploy
      .command('istio')
      .description('deploy a filter image to Istio workloads (WasmPlugin where the CRD exists, else wasme-style EnvoyFilters)')
      .argument('<ref>', 'the image (it must be in a registry the cluster can pull from)')
      .requiredOption('--id <id>', 'a name for this deployment (a Kubernetes name)')
      .option('-n, --namespace <ns>', 'the workloads\' namespace', 'default')
      .option('-l, --labels <k=v>', 'select workloads by label (repeatable)', labelsOption)
      .addOption(new Option('-t, --workload-type <type>', 'the kind of workload').choices(['deployment', 'daemonset', 'statefulset']).default('deployment'))
      .option('--config <string>', 'the filter configuration')
      .option('--config-file <file>', 'read the configuration from a file')
      .option('--root-id <id>', 'the root id (default: the image\'s)')
      .addOption(new Option('--mode <mode>', 'how to deploy').choices(['auto', 'wasmplugin', 'envoyfilter', 'filterdeployment']).default('auto'))
      .addOption(new Option('--patch-context <ctx>', 'EnvoyFilter patch context').choices(['inbound', 'outbound', 'gateway', 'any']).default('inbound'))
      .option('--istio-namespace <ns>', 'where istiod runs', 'istio-system')
      .option('--istiod-name <name>', 'the istiod Deployment (default: istiod, or a revisioned istiod-*)')
      .option('--ignore-version-check', 'deploy even if the ABI does not match the Istio version')
      .option('--cache-timeout <duration>', "EnvoyFilter mode: wait this long for wasme's cache to hold the image on every node (0 to skip)", '1m')
      .addOption(new Option('--image-pull-policy <policy>', 'WasmPlugin imagePullPolicy').choices(['IfNotPresent', 'Always']))
      .addOption(new Option('--phase <phase>', 'WasmPlugin phase').choices(['AUTHN', 'AUTHZ', 'STATS']))
      .option('--priority <n>', 'WasmPlugin priority')
      .addOption(new Option('--fail-strategy <s>', 'WasmPlugin failStrategy').choices(['FAIL_CLOSE', 'FAIL_OPEN']))
      .option('--dry-run', 'print what would be created or changed, and change nothing')
      .addOption(new Option('-o, --output <format>', 'print the objects').choices(['yaml', 'json'])),
  ).action(async (ref: string, opts) => {
    if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(opts.id) || opts.id.length > 63) {
      throw new UserError(`--id "${opts.id}" is not a Kubernetes name.`, 'Use lowercase letters, digits and "-", e.g. --id add-header.', 'E_USAGE');
    }
    if (opts.config !== undefined && opts.configFile) throw new UserError('Give --config or --config-file, not both.', undefined, 'E_USAGE');
    const config = opts.configFile ? await fs.readFile(opts.configFile, 'utf8') : opts.config;
    const cluster = await openCluster(opts);
    const deployStarted = new Date();
    const image = await imageForDeploy(await helpers.openStore(), ref, clientFactory({ signal: helpers.interruptSignal() }));
    const rootId = opts.rootId ?? image.rootIds[0] ?? 'add_header';
    // A private image gets a pull secret from the login this tool (or Docker) has for its registry.
    const pullCredential = opts.mode === 'envoyfilter' || opts.mode === 'filterdeployment' ? undefined : await pullCredentialFor(image.image, { credentials: defaultCredentials() });
    const result = await deployFilter(
      cluster,
      {
        id: opts.id,
        namespace: opts.namespace,
        image: image.image,
        manifestDigest: image.manifestDigest,
        wasmDigest: image.wasmDigest,
        rootId,
        ...(config !== undefined ? { config } : {}),
        labels: opts.labels ?? {},
        workloadKind: opts.workloadType,
        patchContext: opts.patchContext as PatchContext,
        wasmPlugin: {
          ...(opts.imagePullPolicy ? { imagePullPolicy: opts.imagePullPolicy } : {}),
          ...(opts.phase ? { phase: opts.phase } : {}),
          ...(opts.priority !== undefined ? { priority: Number(opts.priority) } : {}),
          ...(opts.failStrategy ? { failStrategy: opts.failStrategy } : {}),
        },
      },
      {
        mode: opts.mode as DeployMode | 'auto',
        dryRun: !!opts.dryRun,
        istioNamespace: opts.istioNamespace,
        ...(opts.istiodName ? { istiodName: opts.istiodName } : {}),
        ignoreVersionCheck: !!opts.ignoreVersionCheck,
        abiVersions: image.abiVersions,
        cacheTimeoutMs: durationMs(opts.cacheTimeout, '--cache-timeout'),
        ...(pullCredential ? { pullCredential } : {}),
      },
    );
    printChanges(out, result.changes, opts.output, !!opts.dryRun);
    if (!opts.dryRun) {
      // What istio-proxy already says about this filter (bounded: since the deploy began).
      const findings = await collectFindings(cluster, { namespace: opts.namespace, ...(opts.labels ? { labels: opts.labels } : {}), since: deployStarted, limitBytes: 64 * 1024 }).catch(() => []);
      for (const f of findings) out.warn(`istio-proxy in ${f.namespace}/${f.pod}: ${f.kind} — ${f.advice}`);
    }
    if (!opts.output) {
      const verb = opts.dryRun ? 'Would deploy' : result.writes ? 'Deployed' : 'Already deployed';
      out.info(
        `${verb} ${opts.id} (${image.image}) as ${result.mode} to ${result.workloads.length} workload(s) in ${opts.namespace} on ${cluster.describe()}${result.capabilities.istioVersion ? `, Istio ${result.capabilities.istioVersion}` : ''}; ${result.writes} write(s).`,
      );
      if (!opts.dryRun && result.writes) out.info(out.dim(`The proxies pick it up in a few seconds; \`wasm-filter doctor --id ${opts.id} -n ${opts.namespace}\` explains what they report.`));
    }
  });

  const undeploy = program.command('undeploy').description('remove a deployed filter');
  clusterOptions(
    undeploy
      .command('istio')
      .description('remove exactly what `deploy istio --id ID` made, and restore the workload annotations it changed')
      .requiredOption('--id <id>', 'the deployment id')
      .option('-n, --namespace <ns>', 'the namespace', 'default')
      .option('--dry-run', 'print what would be removed'),
  ).action(async (opts) => {
    const cluster = await openCluster(opts);
    const result = await undeployFilter(cluster, { id: opts.id, namespace: opts.namespace, dryRun: !!opts.dryRun });
    printChanges(out, result.changes, undefined, !!opts.dryRun);
    out.info(`${opts.dryRun ? 'Would undeploy' : 'Undeployed'} ${opts.id} from ${opts.namespace} on ${cluster.describe()}.`);
  });

  clusterOptions(
    program
      .command('deployments')
      .description('list the filters this tool deployed: id, image and digest, mode, workloads')
      .option('-n, --namespace <ns>', 'one namespace')
      .option('-A, --all-namespaces', 'every namespace (the default without -n)')
      .option('--json', 'print JSON'),
  ).action(async (opts) => {
    const cluster = await openCluster(opts);
    const list = await listDeployments(cluster, opts.namespace && !opts.allNamespaces ? { namespace: opts.namespace } : {});
    if (opts.json) {
      out.line(JSON.stringify(list, null, 2));
      return;
    }
    // STATE: a FilterDeployment's Ready condition as its operator reports it; applied objects are "deployed".
    const state = (d: (typeof list)[number]) => (d.status ? (d.status.ready === 'True' ? 'Ready' : d.status.ready === 'False' ? `NotReady: ${d.status.conditions.find((c) => c.type === 'Ready')?.reason ?? ''}` : 'Pending') : 'deployed');
    out.line(
      formatTable(
        ['NAMESPACE', 'ID', 'MODE', 'IMAGE', 'DIGEST', 'WORKLOADS', 'STATE'],
        list.map((d) => [d.namespace, d.id, d.mode, d.image || '-', d.digest ? d.digest.slice(7, 19) : '-', d.workloads.join(',') || '(by selector)', state(d)]),
      ),
    );
  });

  clusterOptions(
    program
      .command('doctor')
      .description("read istio-proxy's logs and events of the workloads and explain what they say about filters")
      .option('--id <id>', 'only findings about this filter (id, root id or digest)')
      .option('-n, --namespace <ns>', 'the namespace', 'default')
      .option('-l, --labels <k=v>', 'only pods with these labels', labelsOption)
      .option('--since <duration>', 'how far back to read, e.g. 10m, 2h', '1h')
      .option('--json', 'print JSON'),
  ).action(async (opts) => {
    const cluster = await openCluster(opts);
    const findings = await collectFindings(cluster, { namespace: opts.namespace, ...(opts.labels ? { labels: opts.labels } : {}), since: new Date(Date.now() - durationMs(opts.since, '--since')), ...(opts.id ? { filter: opts.id } : {}) });
    if (opts.json) {
      out.line(JSON.stringify(findings, null, 2));
      return;
    }
    if (!findings.length) {
      out.line(`No known problems in istio-proxy's logs and events in ${opts.namespace} (last ${opts.since}).`);
      return;
    }
    for (const f of findings) {
      out.line(`${f.severity === 'error' ? out.red('error') : out.yellow('warning')} ${f.kind} ${f.namespace}/${f.pod} (${f.container})${f.time ? ` at ${f.time}` : ''}${f.filter ? ` filter ${f.filter}` : ''}`);
      out.line(`  ${out.dim(f.line.slice(0, 300))}`);
      out.line(`  → ${f.advice}`);
    }
    process.exitCode = findings.some((f) => f.severity === 'error') ? 1 : 0;
  });
}
