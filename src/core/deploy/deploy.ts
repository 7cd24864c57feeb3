import { UserError } from '../errors';
import { abiSupportsIstio } from './istioVersion';
import { Cluster, ClusterError, type KubeObject } from './cluster';
import {
  FILTER_ID_LABEL,
  IMAGE_ANNOTATION,
  MANAGED_BY,
  MANAGED_BY_LABEL,
  WORKLOAD_FILTERS_ANNOTATION,
  annotateForCache,
  CACHE_IMAGES_KEY,
  CACHE_NAME,
  CACHE_NAMESPACE,
  wasmeCacheObjects,
  pullSecret,
  envoyFilter,
  filterDeployment,
  unannotateForCache,
  wasmPlugin,
  type DeployMode,
  type FilterToDeploy,
} from './istioObjects';

/** What the cluster offers, found before acting. */
export interface ClusterCapabilities {
  istioVersion?: string;
  istiodDeployment?: string;
  wasmPluginCrd: boolean;
  envoyFilterCrd: boolean;
  filterDeploymentCrd: boolean;
}

interface Gvr {
  group: string;
  version: string;
  plural: string;
}

const GVR = {
  wasmplugin: { group: 'extensions.istio.io', version: 'v1alpha1', plural: 'wasmplugins' },
  envoyfilter: { group: 'networking.istio.io', version: 'v1alpha3', plural: 'envoyfilters' },
  filterdeployment: { group: 'wasme.io', version: 'v1', plural: 'filterdeployments' },
} satisfies Record<DeployMode, Gvr>;

const CRDS: Record<DeployMode, string> = {
  wasmplugin: 'wasmplugins.extensions.istio.io',
  envoyfilter: 'envoyfilters.networking.istio.io',
  filterdeployment: 'filterdeployments.wasme.io',
};

/** Istio's version: the tag of istiod's `discovery` image, also for revisioned installs (istiod-<rev>). */
export async function detectCapabilities(cluster: Cluster, options: { istioNamespace?: string; istiodName?: string } = {}): Promise<ClusterCapabilities> {
  const ns = options.istioNamespace ?? 'istio-system';
  const crd = async (name: string) =>
    !!(await cluster.find({ verb: 'get', resource: 'customresourcedefinitions', name }, () => cluster.extensions.readCustomResourceDefinition({ name })));
  const [wasmPluginCrd, envoyFilterCrd, filterDeploymentCrd] = await Promise.all([crd(CRDS.wasmplugin), crd(CRDS.envoyfilter), crd(CRDS.filterdeployment)]);
  let istiod = await cluster.find({ verb: 'get', resource: 'deployments', namespace: ns, name: options.istiodName ?? 'istiod' }, () =>
    cluster.apps.readNamespacedDeployment({ name: options.istiodName ?? 'istiod', namespace: ns }),
  );
  if (!istiod && !options.istiodName) {
    const revisioned = await cluster.call({ verb: 'list', resource: 'deployments', namespace: ns }, () => cluster.apps.listNamespacedDeployment({ namespace: ns, labelSelector: 'app=istiod' }));
    istiod = revisioned.items.sort((a, b) => String(a.metadata?.name).localeCompare(String(b.metadata?.name)))[0];
  }
  const image = istiod?.spec?.template?.spec?.containers?.find((c) => c.name === 'discovery')?.image;
  const tag = image?.includes(':') ? image.slice(image.lastIndexOf(':') + 1) : undefined;
  return {
    ...(tag ? { istioVersion: tag.replace(/^v/, '').replace(/-distroless$/, '') } : {}),
    ...(istiod?.metadata?.name ? { istiodDeployment: `${ns}/${istiod.metadata.name}` } : {}),
    wasmPluginCrd,
    envoyFilterCrd,
    filterDeploymentCrd,
  };
}

export interface DeployOptions {
  mode: DeployMode | 'auto';
  dryRun?: boolean;
  istioNamespace?: string;
  istiodName?: string;
  ignoreVersionCheck?: boolean;
  abiVersions?: string[];
  /** EnvoyFilter mode: how long to wait for wasme's cache to hold the image on every node (0: do not wait). */
  cacheTimeoutMs?: number;
  /** WasmPlugin mode, private images: the login Istio pulls with (kept in a Secret, never printed). */
  pullCredential?: { registry: string; username: string; secret: string };
  /** What the cluster offers, when the caller already knows (the operator keeps it for a while). */
  capabilities?: ClusterCapabilities;
}

/** One change a deploy makes (or, in a dry run, would make). */
export interface Change {
  action: 'create' | 'update' | 'unchanged' | 'delete';
  kind: string;
  namespace?: string;
  name: string;
  object?: KubeObject;
}

export interface DeployResult {
  mode: DeployMode;
  capabilities: ClusterCapabilities;
  changes: Change[];
  workloads: string[];
  writes: number;
}

function chooseMode(requested: DeployOptions['mode'], caps: ClusterCapabilities, cluster: Cluster): DeployMode {
  if (requested === 'auto') {
    if (caps.wasmPluginCrd) return 'wasmplugin';
    if (caps.envoyFilterCrd) return 'envoyfilter';
    throw new UserError(`${cluster.describe()} has neither the WasmPlugin nor the EnvoyFilter CRD.`, 'Install Istio in the cluster (or choose the right context), then deploy again.', 'E_NO_ISTIO');
  }
  const present = requested === 'wasmplugin' ? caps.wasmPluginCrd : requested === 'envoyfilter' ? caps.envoyFilterCrd : caps.filterDeploymentCrd;
  if (!present) {
    throw new UserError(
      `${cluster.describe()} has no ${CRDS[requested]} CRD, so --mode ${requested} cannot work there.`,
      requested === 'filterdeployment' ? 'Install the FilterDeployment operator (deploy/ in this project), or use --mode auto.' : 'Use --mode auto to pick what the cluster offers.',
      'E_MISSING_CRD',
    );
  }
  return requested;
}

function istioMinor(version: string | undefined): number {
  const m = /^1\.(\d+)/.exec(version ?? '');
  return m ? Number(m[1]) : 99;
}

interface Workload {
  kind: 'Deployment' | 'DaemonSet' | 'StatefulSet';
  name: string;
  podLabels: Record<string, string>;
  annotations: Record<string, string>;
}

async function listWorkloads(cluster: Cluster, f: FilterToDeploy): Promise<Workload[]> {
  const labelSelector = Object.entries(f.labels).map(([k, v]) => `${k}=${v}`).join(',');
  const params = { namespace: f.namespace, ...(labelSelector ? { labelSelector } : {}) };
  const resource = `${f.workloadKind}s`;
  const list = await cluster.call({ verb: 'list', resource, namespace: f.namespace }, async () =>
    f.workloadKind === 'daemonset'
      ? (await cluster.apps.listNamespacedDaemonSet(params)).items
      : f.workloadKind === 'statefulset'
        ? (await cluster.apps.listNamespacedStatefulSet(params)).items
        : (await cluster.apps.listNamespacedDeployment(params)).items,
  );
  const kind = f.workloadKind === 'daemonset' ? 'DaemonSet' : f.workloadKind === 'statefulset' ? 'StatefulSet' : 'Deployment';
  return list
    .map((w) => ({
      kind,
      name: w.metadata!.name!,
      podLabels: (w.spec?.template?.metadata?.labels ?? {}) as Record<string, string>,
      annotations: (w.spec?.template?.metadata?.annotations ?? {}) as Record<string, string>,
    }))
    .sort((a, b) => a.name.localeCompare(b.name)) as Workload[];
}

async function patchWorkloadAnnotations(cluster: Cluster, f: FilterToDeploy, w: Workload, next: Record<string, string>): Promise<void> {
  // A merge patch: keys that go are sent as null, so the template's other annotations stay as they are.
  const annotations: Record<string, string | null> = { ...next };
  for (const k of Object.keys(w.annotations)) if (!(k in next)) annotations[k] = null;
  const body = { spec: { template: { metadata: { annotations } } } };
  const op = { verb: 'patch' as const, resource: `${f.workloadKind}s`, namespace: f.namespace, name: w.name };
  await cluster.call(op, () =>
    w.kind === 'DaemonSet'
      ? cluster.apps.patchNamespacedDaemonSet({ name: w.name, namespace: f.namespace, body }, cluster.mergePatch)
      : w.kind === 'StatefulSet'
        ? cluster.apps.patchNamespacedStatefulSet({ name: w.name, namespace: f.namespace, body }, cluster.mergePatch)
        : cluster.apps.patchNamespacedDeployment({ name: w.name, namespace: f.namespace, body }, cluster.mergePatch),
  );
}

/** A step that takes back one write, for when a later write of the same deploy fails. */
type Undo = () => Promise<unknown>;

function sameContent(a: KubeObject | undefined, b: KubeObject): boolean {
  if (!a) return false;
  return (
    JSON.stringify(a.spec) === JSON.stringify(b.spec) &&
    JSON.stringify(a.metadata?.labels ?? {}) === JSON.stringify(b.metadata?.labels ?? {}) &&
    JSON.stringify(a.metadata?.ownerReferences ?? []) === JSON.stringify(b.metadata?.ownerReferences ?? [])
  );
}

/** Creates or updates one custom object; nothing is written when it already is as desired. */
async function ensureObject(cluster: Cluster, gvr: Gvr, desired: KubeObject, dryRun: boolean, undo?: Undo[]): Promise<Change> {
  const name = desired.metadata!.name!;
  const namespace = desired.metadata!.namespace!;
  const base = { kind: desired.kind!, namespace, name, object: desired };
  const existing = (await cluster.find({ verb: 'get', resource: gvr.plural, namespace, name }, () =>
    cluster.custom.getNamespacedCustomObject({ ...gvr, namespace, name }),
  )) as KubeObject | undefined;
  if (existing && existing.metadata?.labels?.[MANAGED_BY_LABEL] !== MANAGED_BY) {
    throw new UserError(
      `${desired.kind} ${namespace}/${name} exists and was not made by Wasm Filter Studio; it was left alone.`,
      'Choose another --id, or remove that object yourself if it is stale.',
      'E_NOT_MANAGED',
    );
  }
  if (sameContent(existing, desired)) return { ...base, action: 'unchanged' };
  if (dryRun) return { ...base, action: existing ? 'update' : 'create' };
  if (existing) {
    const body = { ...desired, metadata: { ...desired.metadata, resourceVersion: existing.metadata!.resourceVersion } };
    const updated = (await cluster.call({ verb: 'update', resource: gvr.plural, namespace, name }, () => cluster.custom.replaceNamespacedCustomObject({ ...gvr, namespace, name, body }))) as KubeObject;
    undo?.push(() =>
      cluster.custom.replaceNamespacedCustomObject({ ...gvr, namespace, name, body: { ...existing, metadata: { ...existing.metadata, resourceVersion: updated.metadata?.resourceVersion } } }),
    );
    return { ...base, action: 'update' };
  }
  await cluster.call({ verb: 'create', resource: gvr.plural, namespace }, () => cluster.custom.createNamespacedCustomObject({ ...gvr, namespace, body: desired }));
  undo?.push(() => cluster.custom.deleteNamespacedCustomObject({ ...gvr, namespace, name }));
  return { ...base, action: 'create' };
}

/** Creates or updates a pull Secret; its data never appears in a change (dry runs print changes). */
async function ensureSecret(cluster: Cluster, desired: KubeObject, dryRun: boolean, undo: Undo[]): Promise<Change> {
  const name = desired.metadata!.name!;
  const namespace = desired.metadata!.namespace!;
  const shown = { ...desired, data: { '.dockerconfigjson': '<redacted>' } };
  const base = { kind: 'Secret', namespace, name, object: shown };
  const existing = await cluster.find({ verb: 'get', resource: 'secrets', namespace, name }, () => cluster.core.readNamespacedSecret({ name, namespace }));
  if (existing && existing.metadata?.labels?.[MANAGED_BY_LABEL] !== MANAGED_BY) {
    throw new UserError(`Secret ${namespace}/${name} exists and was not made by Wasm Filter Studio; it was left alone.`, 'Remove it, or give the WasmPlugin a pull secret yourself.', 'E_NOT_MANAGED');
  }
  if (existing && existing.data?.['.dockerconfigjson'] === desired.data['.dockerconfigjson']) return { ...base, action: 'unchanged' };
  if (dryRun) return { ...base, action: existing ? 'update' : 'create' };
  if (existing) {
    await cluster.call({ verb: 'update', resource: 'secrets', namespace, name }, () => cluster.core.replaceNamespacedSecret({ name, namespace, body: { ...desired, metadata: { ...desired.metadata, resourceVersion: existing.metadata?.resourceVersion } } as any }));
    undo.push(() => cluster.core.replaceNamespacedSecret({ name, namespace, body: existing }));
    return { ...base, action: 'update' };
  }
  await cluster.call({ verb: 'create', resource: 'secrets', namespace }, () => cluster.core.createNamespacedSecret({ namespace, body: desired as any }));
  undo.push(() => cluster.core.deleteNamespacedSecret({ name, namespace }));
  return { ...base, action: 'create' };
}

/** Reads, creates or replaces one object of wasme's cache through the typed client for its kind. */
async function ensureCacheObject(cluster: Cluster, desired: KubeObject, image: string, dryRun: boolean, undo: Undo[]): Promise<Change> {
  const name = desired.metadata!.name!;
  const namespace = desired.metadata!.namespace;
  const kind = desired.kind!;
  const base = { kind, ...(namespace ? { namespace } : {}), name, object: desired };
  const ns = namespace ?? '';
  const api = {
    Namespace: { resource: 'namespaces', read: () => cluster.core.readNamespace({ name }), create: () => cluster.core.createNamespace({ body: desired as any }), remove: () => cluster.core.deleteNamespace({ name }) },
    ServiceAccount: {
      resource: 'serviceaccounts',
      read: () => cluster.core.readNamespacedServiceAccount({ name, namespace: ns }),
      create: () => cluster.core.createNamespacedServiceAccount({ namespace: ns, body: desired as any }),
      remove: () => cluster.core.deleteNamespacedServiceAccount({ name, namespace: ns }),
    },
    Role: {
      resource: 'roles',
      read: () => cluster.rbac.readNamespacedRole({ name, namespace: ns }),
      create: () => cluster.rbac.createNamespacedRole({ namespace: ns, body: desired as any }),
      remove: () => cluster.rbac.deleteNamespacedRole({ name, namespace: ns }),
    },
    RoleBinding: {
      resource: 'rolebindings',
      read: () => cluster.rbac.readNamespacedRoleBinding({ name, namespace: ns }),
      create: () => cluster.rbac.createNamespacedRoleBinding({ namespace: ns, body: desired as any }),
      remove: () => cluster.rbac.deleteNamespacedRoleBinding({ name, namespace: ns }),
    },
    ConfigMap: {
      resource: 'configmaps',
      read: () => cluster.core.readNamespacedConfigMap({ name, namespace: ns }),
      create: () => cluster.core.createNamespacedConfigMap({ namespace: ns, body: desired as any }),
      remove: () => cluster.core.deleteNamespacedConfigMap({ name, namespace: ns }),
    },
    DaemonSet: {
      resource: 'daemonsets',
      read: () => cluster.apps.readNamespacedDaemonSet({ name, namespace: ns }),
      create: () => cluster.apps.createNamespacedDaemonSet({ namespace: ns, body: desired as any }),
      remove: () => cluster.apps.deleteNamespacedDaemonSet({ name, namespace: ns }),
    },
  }[kind as 'Namespace'];
  if (!api) throw new Error(`internal: no client for ${kind}`);
  const existing = (await cluster.find({ verb: 'get', resource: api.resource, ...(namespace ? { namespace } : {}), name }, api.read)) as KubeObject | undefined;
  if (!existing) {
    if (dryRun) return { ...base, action: 'create' };
    await cluster.call({ verb: 'create', resource: api.resource, ...(namespace ? { namespace } : {}) }, api.create);
    undo.push(api.remove);
    return { ...base, action: 'create' };
  }
  if (kind !== 'ConfigMap') return { ...base, action: 'unchanged' };
  // The cache's image list: this image is added once, whoever installed the cache (wasme or us).
  const images = String(existing.data?.[CACHE_IMAGES_KEY] ?? '').split('\n').filter(Boolean);
  if (images.includes(image)) return { ...base, action: 'unchanged' };
  const data = { ...existing.data, [CACHE_IMAGES_KEY]: [...images, image].join('\n') };
  if (dryRun) return { ...base, action: 'update', object: { ...existing, data } };
  await cluster.call({ verb: 'patch', resource: 'configmaps', namespace: ns, name }, () =>
    cluster.core.patchNamespacedConfigMap({ name, namespace: ns, body: { data: { [CACHE_IMAGES_KEY]: data[CACHE_IMAGES_KEY] } } }, cluster.mergePatch),
  );
  undo.push(() => cluster.core.patchNamespacedConfigMap({ name, namespace: ns, body: { data: { [CACHE_IMAGES_KEY]: images.join('\n') } } }, cluster.mergePatch));
  return { ...base, action: 'update', object: { ...existing, data } };
}

/**
 * Waits until every ready cache pod reported the image (an ImageAdded event each). wasme keyed these
 * events by a field that was never set, so on more than one node it always timed out; here they are
 * counted per reporting pod.
 */
export async function waitForCache(cluster: Cluster, image: string, timeoutMs: number): Promise<{ ready: number; reported: number }> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ds = await cluster.find({ verb: 'get', resource: 'daemonsets', namespace: CACHE_NAMESPACE, name: CACHE_NAME }, () =>
      cluster.apps.readNamespacedDaemonSet({ name: CACHE_NAME, namespace: CACHE_NAMESPACE }),
    );
    // How many nodes should run a cache pod; unknown (no controller reported yet) means nothing to wait for.
    const want = ds?.status?.desiredNumberScheduled ?? ds?.status?.numberReady;
    if (want === undefined) return { ready: 0, reported: 0 };
    const ready = want;
    const events = await cluster.call({ verb: 'list', resource: 'events', namespace: CACHE_NAMESPACE }, () =>
      cluster.core.listNamespacedEvent({ namespace: CACHE_NAMESPACE, labelSelector: 'cache.wasme.io/cache_event=true' }),
    );
    const reporters = new Set(
      events.items.filter((e) => e.reason === 'ImageAdded' && String(e.message ?? '').includes(image)).map((e) => e.involvedObject?.name ?? e.reportingInstance ?? e.source?.host ?? ''),
    );
    if (reporters.size >= ready) return { ready, reported: reporters.size };
    if (Date.now() > deadline) {
      throw new UserError(
        `The wasme cache has the image on ${reporters.size} of ${ready} nodes after ${Math.round(timeoutMs / 1000)} s.`,
        `Check the cache pods (kubectl -n ${CACHE_NAMESPACE} logs ds/${CACHE_NAME}); sidecars on the other nodes would fail with "Invalid path".`,
        'E_CACHE_TIMEOUT',
      );
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
}

/**
 * Deploys a filter: finds what the cluster offers, checks the ABI against Istio's version, then creates or
 * updates exactly the objects the mode needs. Idempotent: an identical second deploy writes nothing. Every
 * check and read comes before the first write, so a refusal leaves the cluster as it was.
 */
export async function deployFilter(cluster: Cluster, f: FilterToDeploy, options: DeployOptions): Promise<DeployResult> {
  const caps = options.capabilities ?? (await detectCapabilities(cluster, options));
  const mode = chooseMode(options.mode, caps, cluster);
  if (!options.ignoreVersionCheck && caps.istioVersion && options.abiVersions?.length && !abiSupportsIstio(options.abiVersions, caps.istioVersion)) {
    throw new UserError(
      `The image ${f.image} (ABI ${options.abiVersions.join(', ')}) is not supported by Istio ${caps.istioVersion} on ${cluster.describe()}.`,
      'Build with the SDK flavour for that Istio (init --sdk wasme for 1.7–1.9), or pass --ignore-version-check if you know better.',
      'E_ABI_MISMATCH',
    );
  }
  const changes: Change[] = [];
  let workloads: Workload[] = [];
  let writes = 0;
  const undo: Undo[] = [];
  const count = (c: Change) => {
    changes.push(c);
    if (!options.dryRun && c.action !== 'unchanged') writes++;
  };
  try {
    if (mode === 'wasmplugin') {
      let plugin = f;
      if (options.pullCredential) {
        const secret = pullSecret(f, options.pullCredential.registry, options.pullCredential);
        count(await ensureSecret(cluster, secret, !!options.dryRun, undo));
        plugin = { ...f, wasmPlugin: { ...f.wasmPlugin, imagePullSecret: secret.metadata!.name! } };
      }
      count(await ensureObject(cluster, GVR.wasmplugin, wasmPlugin(plugin), !!options.dryRun, undo));
      workloads = await listWorkloads(cluster, f);
    } else if (mode === 'filterdeployment') {
      count(await ensureObject(cluster, GVR.filterdeployment, filterDeployment(f, options.istioNamespace ?? 'istio-system'), !!options.dryRun, undo));
      workloads = await listWorkloads(cluster, f);
    } else {
      workloads = await listWorkloads(cluster, f);
      if (!workloads.length) {
        throw new UserError(
          `No ${f.workloadKind} in namespace ${f.namespace} matches ${Object.entries(f.labels).map(([k, v]) => `${k}=${v}`).join(',') || '(all)'} on ${cluster.describe()}.`,
          'Check the namespace (-n), the labels (-l) and the workload type (-t).',
          'E_NO_WORKLOADS',
        );
      }
      const minor = istioMinor(caps.istioVersion);
      // The cache first: it must hold the module on the nodes before any sidecar is pointed at it.
      for (const o of wasmeCacheObjects([f.image])) count(await ensureCacheObject(cluster, o, f.image, !!options.dryRun, undo));
      if (!options.dryRun && options.cacheTimeoutMs) await waitForCache(cluster, f.image, options.cacheTimeoutMs);
      // Annotations next: the sidecars need the cache volume before their EnvoyFilter points into it.
      for (const w of workloads) {
        const next = annotateForCache(w.annotations, f.id);
        const changed = JSON.stringify(next) !== JSON.stringify(w.annotations);
        const change: Change = { action: changed ? 'update' : 'unchanged', kind: w.kind, namespace: f.namespace, name: w.name, object: { spec: { template: { metadata: { annotations: next } } } } };
        if (changed && !options.dryRun) {
          await patchWorkloadAnnotations(cluster, f, w, next);
          undo.push(() => patchWorkloadAnnotations(cluster, f, { ...w, annotations: next }, w.annotations));
        }
        count(change);
      }
      for (const w of workloads) count(await ensureObject(cluster, GVR.envoyfilter, envoyFilter(f, w, minor), !!options.dryRun, undo));
    }
  } catch (err) {
    // A write failed half way: take back this deploy's earlier writes, newest first, so the cluster is as it was.
    const failedUndo: string[] = [];
    for (const step of undo.reverse()) await step().catch((e: Error) => failedUndo.push(e.message));
    if (err instanceof UserError && undo.length) {
      const note = failedUndo.length ? ` ${undo.length - failedUndo.length} of ${undo.length} earlier changes were taken back; the rest could not be (${failedUndo[0]}).` : ` The ${undo.length} change(s) made before it were taken back; the cluster is as it was.`;
      throw new UserError(err.message + note, err.hint, err.code);
    }
    throw err;
  }
  return { mode, capabilities: caps, changes, workloads: workloads.map((w) => w.name), writes };
}

/**
 * After a deploy of `f` (level-based, as the operator applies it): removes what an earlier deploy of the
 * same id made that no longer belongs — EnvoyFilters of workloads no longer selected, the other mode's
 * objects after a mode change — and restores the annotations of workloads it no longer needs.
 */
export async function pruneFilter(
  cluster: Cluster,
  f: FilterToDeploy,
  result: Pick<DeployResult, 'mode' | 'workloads' | 'capabilities'>,
  /** The workloads the last deploy selected, when known: only those are looked at, not the whole namespace. */
  previousWorkloads?: string[],
): Promise<Change[]> {
  const changes: Change[] = [];
  const labelSelector = `${MANAGED_BY_LABEL}=${MANAGED_BY},${FILTER_ID_LABEL}=${f.id}`;
  const keep = new Set(result.mode === 'wasmplugin' ? [`wasmplugins/${f.id}`] : result.mode === 'envoyfilter' ? result.workloads.map((w) => `envoyfilters/${w}-${f.id}`) : []);
  for (const mode of ['wasmplugin', 'envoyfilter'] as const) {
    if (!(mode === 'wasmplugin' ? result.capabilities.wasmPluginCrd : result.capabilities.envoyFilterCrd)) continue;
    const gvr = GVR[mode];
    const list = (await cluster.call({ verb: 'list', resource: gvr.plural, namespace: f.namespace }, () =>
      cluster.custom.listNamespacedCustomObject({ ...gvr, namespace: f.namespace, labelSelector }),
    )) as { items: KubeObject[] };
    for (const o of list.items) {
      const name = o.metadata!.name!;
      if (keep.has(`${gvr.plural}/${name}`)) continue;
      await cluster.call({ verb: 'delete', resource: gvr.plural, namespace: f.namespace, name }, () => cluster.custom.deleteNamespacedCustomObject({ ...gvr, namespace: f.namespace, name }));
      changes.push({ action: 'delete', kind: o.kind ?? mode, namespace: f.namespace, name });
    }
  }
  const needed = new Set(result.mode === 'envoyfilter' ? result.workloads : []);
  const candidates = previousWorkloads?.filter((w) => !needed.has(w));
  if (candidates && !candidates.length) return changes;
  const workloads = (await listWorkloads(cluster, { ...f, labels: {} })).filter((w) => !candidates || candidates.includes(w.name));
  for (const w of workloads) {
    if (needed.has(w.name) || !(w.annotations[WORKLOAD_FILTERS_ANNOTATION] ?? '').split(',').includes(f.id)) continue;
    const next = unannotateForCache(w.annotations, f.id);
    await patchWorkloadAnnotations(cluster, f, w, next);
    changes.push({ action: 'update', kind: w.kind, namespace: f.namespace, name: w.name, object: { spec: { template: { metadata: { annotations: next } } } } });
  }
  return changes;
}

export interface UndeployResult {
  changes: Change[];
}

/** Removes exactly what a deploy of `id` made in `namespace`, and restores the annotations it changed. */
export async function undeployFilter(cluster: Cluster, options: { id: string; namespace: string; dryRun?: boolean }): Promise<UndeployResult> {
  const changes: Change[] = [];
  const labelSelector = `${MANAGED_BY_LABEL}=${MANAGED_BY},${FILTER_ID_LABEL}=${options.id}`;
  for (const [mode, gvr] of Object.entries(GVR) as [DeployMode, Gvr][]) {
    const present = await cluster.find({ verb: 'get', resource: 'customresourcedefinitions', name: CRDS[mode] }, () => cluster.extensions.readCustomResourceDefinition({ name: CRDS[mode] }));
    if (!present) continue;
    const list = (await cluster.call({ verb: 'list', resource: gvr.plural, namespace: options.namespace }, () =>
      cluster.custom.listNamespacedCustomObject({ ...gvr, namespace: options.namespace, labelSelector }),
    )) as { items: KubeObject[] };
    for (const o of list.items) {
      const name = o.metadata!.name!;
      if (!options.dryRun) {
        await cluster.call({ verb: 'delete', resource: gvr.plural, namespace: options.namespace, name }, () => cluster.custom.deleteNamespacedCustomObject({ ...gvr, namespace: options.namespace, name }));
      }
      changes.push({ action: 'delete', kind: o.kind ?? mode, namespace: options.namespace, name });
    }
  }
  const secrets = await cluster.call({ verb: 'list', resource: 'secrets', namespace: options.namespace }, () => cluster.core.listNamespacedSecret({ namespace: options.namespace, labelSelector }));
  for (const secret of secrets.items) {
    const name = secret.metadata!.name!;
    if (!options.dryRun) await cluster.call({ verb: 'delete', resource: 'secrets', namespace: options.namespace, name }, () => cluster.core.deleteNamespacedSecret({ name, namespace: options.namespace }));
    changes.push({ action: 'delete', kind: 'Secret', namespace: options.namespace, name });
  }
  for (const kind of ['deployment', 'daemonset', 'statefulset'] as const) {
    const workloads = await listWorkloads(cluster, { namespace: options.namespace, labels: {}, workloadKind: kind } as FilterToDeploy);
    for (const w of workloads) {
      const ids = (w.annotations[WORKLOAD_FILTERS_ANNOTATION] ?? '').split(',');
      if (!ids.includes(options.id)) continue;
      const next = unannotateForCache(w.annotations, options.id);
      if (!options.dryRun) await patchWorkloadAnnotations(cluster, { namespace: options.namespace, workloadKind: kind } as FilterToDeploy, w, next);
      changes.push({ action: 'update', kind: w.kind, namespace: options.namespace, name: w.name, object: { spec: { template: { metadata: { annotations: next } } } } });
    }
  }
  if (!changes.length) {
    throw new UserError(`Nothing of filter "${options.id}" is deployed in namespace ${options.namespace} on ${cluster.describe()}.`, 'List what is there with `wasm-filter deployments -n NAMESPACE`.', 'E_NOT_DEPLOYED');
  }
  return { changes };
}

export interface DeployedFilter {
  id: string;
  namespace: string;
  mode: DeployMode;
  image: string;
  digest: string;
  workloads: string[];
  objects: string[];
  /** A FilterDeployment's status as its operator reports it: per-workload state, and conditions. */
  status?: {
    ready?: 'True' | 'False' | 'Unknown';
    reason?: string;
    workloadStates: Record<string, { state: string; reason?: string }>;
    conditions: { type: string; status: string; reason?: string; message?: string }[];
  };
}

/** The filters this tool deployed, from their labels. */
export async function listDeployments(cluster: Cluster, options: { namespace?: string } = {}): Promise<DeployedFilter[]> {
  const labelSelector = `${MANAGED_BY_LABEL}=${MANAGED_BY}`;
  const found = new Map<string, DeployedFilter>();
  for (const [mode, gvr] of Object.entries(GVR) as [DeployMode, Gvr][]) {
    const present = await cluster.find({ verb: 'get', resource: 'customresourcedefinitions', name: CRDS[mode] }, () => cluster.extensions.readCustomResourceDefinition({ name: CRDS[mode] }));
    if (!present) continue;
    // Every FilterDeployment (an operator serves those made with kubectl too); ours only, of the rest.
    const selector = mode === 'filterdeployment' ? undefined : labelSelector;
    const list = (await cluster.call({ verb: 'list', resource: gvr.plural, ...(options.namespace ? { namespace: options.namespace } : {}) }, () =>
      options.namespace
        ? cluster.custom.listNamespacedCustomObject({ ...gvr, namespace: options.namespace, ...(selector ? { labelSelector: selector } : {}) })
        : cluster.custom.listClusterCustomObject({ ...gvr, ...(selector ? { labelSelector: selector } : {}) }),
    )) as { items: KubeObject[] };
    for (const o of list.items) {
      if (mode === 'filterdeployment') {
        const id = String(o.spec?.filter?.id ?? `${o.metadata!.name}.${o.metadata!.namespace}`);
        const key = `${o.metadata!.namespace}/${id}`;
        const entry = found.get(key) ?? { id, namespace: o.metadata!.namespace!, mode, image: '', digest: '', workloads: [], objects: [] };
        const status = o.status ?? {};
        const conditions = (status.conditions ?? []) as NonNullable<DeployedFilter['status']>['conditions'];
        const ready = conditions.find((c) => c.type === 'Ready')?.status as 'True' | 'False' | 'Unknown' | undefined;
        // What the operator made for it belongs to it: the entry is the FilterDeployment's.
        found.set(key, {
          ...entry,
          mode,
          image: String(o.spec?.filter?.image ?? ''),
          workloads: status.workloads ? Object.keys(status.workloads).sort() : entry.workloads,
          objects: [`FilterDeployment/${o.metadata!.name}`, ...entry.objects],
          status: {
            ...(ready ? { ready } : {}),
            ...(status.reason ? { reason: String(status.reason) } : {}),
            workloadStates: status.workloads ?? {},
            conditions,
          },
        });
        continue;
      }
      const id = o.metadata?.labels?.[FILTER_ID_LABEL] ?? o.metadata!.name!;
      const ns = o.metadata!.namespace!;
      const key = `${ns}/${id}`;
      const entry = found.get(key) ?? { id, namespace: ns, mode, image: '', digest: '', workloads: [], objects: [] };
      entry.objects.push(`${o.kind}/${o.metadata!.name}`);
      const annotated = o.metadata?.annotations?.[IMAGE_ANNOTATION];
      if (annotated) [entry.image, entry.digest] = annotated.split('@') as [string, string];
      if (mode === 'envoyfilter') entry.workloads.push(String(o.metadata!.name).replace(new RegExp(`-${id}$`), ''));
      else if (mode === 'wasmplugin' && !entry.image) entry.image = String(o.spec?.url ?? '').replace(/^oci:\/\//, '');
      found.set(key, entry);
    }
  }
  return [...found.values()].sort((a, b) => a.namespace.localeCompare(b.namespace) || a.id.localeCompare(b.id));
}

export { ClusterError };
