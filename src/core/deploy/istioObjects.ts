/**
 * The Kubernetes objects a deploy creates, as pure functions of what is deployed: Istio WasmPlugin, the
 * EnvoyFilter in the exact shape wasme produced (typed for Istio 1.7+, untyped for ≤1.6), and wasme's
 * FilterDeployment.
 */
import type { KubeObject } from './cluster';

export const MANAGED_BY_LABEL = 'app.kubernetes.io/managed-by';
export const MANAGED_BY = 'wasm-filter-studio';
export const FILTER_ID_LABEL = 'wasm-filter-studio.dev/filter-id';
/** On a workload's pod template: the ids of our EnvoyFilter-mode filters that need the cache volume. */
export const WORKLOAD_FILTERS_ANNOTATION = 'wasm-filter-studio.dev/filters';
/** On every object a deploy makes: the image it deployed (EnvoyFilters only carry the module's digest). */
export const IMAGE_ANNOTATION = 'wasm-filter-studio.dev/image';
export const BACKUP_PREFIX = 'wasme-backup.';
export const CACHE_DIR = '/var/local/lib/wasme-cache';

/** The pod annotations that mount wasme's cache into istio-proxy. */
export const SIDECAR_ANNOTATIONS: Record<string, string> = {
  'sidecar.istio.io/userVolume': `[{"name":"cache-dir","hostPath":{"path":"${CACHE_DIR}"}}]`,
  'sidecar.istio.io/userVolumeMount': `[{"mountPath":"${CACHE_DIR}","name":"cache-dir"}]`,
};

export type DeployMode = 'wasmplugin' | 'envoyfilter' | 'filterdeployment';
export type PatchContext = 'inbound' | 'outbound' | 'gateway' | 'any';

export interface FilterToDeploy {
  id: string;
  namespace: string;
  /** The image as users name it (registry/repository:tag), and its digests. */
  image: string;
  manifestDigest: string;
  wasmDigest: string;
  rootId: string;
  /** The configuration string (a StringValue in EnvoyFilter mode, pluginConfig in WasmPlugin mode). */
  config?: string;
  labels: Record<string, string>;
  workloadKind: 'deployment' | 'daemonset' | 'statefulset';
  patchContext: PatchContext;
  /** The object that owns what is made (the operator's FilterDeployment): deleting it deletes them. */
  owner?: { apiVersion: string; kind: string; name: string; uid: string };
  wasmPlugin?: { imagePullPolicy?: 'IfNotPresent' | 'Always'; phase?: 'AUTHN' | 'AUTHZ' | 'STATS'; priority?: number; failStrategy?: 'FAIL_CLOSE' | 'FAIL_OPEN'; imagePullSecret?: string };
}

function managedLabels(id: string): Record<string, string> {
  return { [MANAGED_BY_LABEL]: MANAGED_BY, [FILTER_ID_LABEL]: id };
}

function managedMetadata(f: FilterToDeploy, name: string) {
  return {
    name,
    namespace: f.namespace,
    labels: managedLabels(f.id),
    annotations: { [IMAGE_ANNOTATION]: `${f.image}@${f.manifestDigest}` },
    ...(f.owner ? { ownerReferences: [{ ...f.owner, controller: true, blockOwnerDeletion: true }] } : {}),
  };
}

/** pluginConfig is a Struct: JSON objects go as they are; any other configuration as {"value": "…"}. */
export function pluginConfigOf(config: string | undefined): Record<string, unknown> | undefined {
  if (config === undefined || config === '') return undefined;
  try {
    const parsed = JSON.parse(config);
    if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) return parsed as Record<string, unknown>;
  } catch {
    // not JSON: a plain string, as wasme's StringValue carried it
  }
  return { value: config };
}

export function wasmPlugin(f: FilterToDeploy): KubeObject {
  const pluginConfig = pluginConfigOf(f.config);
  const o = f.wasmPlugin ?? {};
  return {
    apiVersion: 'extensions.istio.io/v1alpha1',
    kind: 'WasmPlugin',
    metadata: managedMetadata(f, f.id),
    spec: {
      selector: { matchLabels: f.labels },
      url: `oci://${f.image}`,
      // Istio checks this against the manifest digest it pulls.
      sha256: f.manifestDigest.replace(/^sha256:/, ''),
      pluginName: f.rootId,
      ...(pluginConfig ? { pluginConfig } : {}),
      imagePullPolicy: o.imagePullPolicy ?? 'IfNotPresent',
      ...(o.imagePullSecret ? { imagePullSecret: o.imagePullSecret } : {}),
      ...(o.phase ? { phase: o.phase } : {}),
      ...(o.priority !== undefined ? { priority: o.priority } : {}),
      ...(o.failStrategy ? { failStrategy: o.failStrategy } : {}),
    },
  };
}

const CONTEXTS: Record<PatchContext, string> = { inbound: 'SIDECAR_INBOUND', outbound: 'SIDECAR_OUTBOUND', gateway: 'GATEWAY', any: 'ANY' };

/** One EnvoyFilter per workload, named `<workload>-<id>`, as wasme's `deploy istio` made them. */
export function envoyFilter(f: FilterToDeploy, workload: { name: string; podLabels: Record<string, string> }, istioMinor: number): KubeObject {
  const filename = `${CACHE_DIR}/${f.wasmDigest.replace(/^sha256:/, '')}`;
  const configuration = { '@type': 'type.googleapis.com/google.protobuf.StringValue', value: f.config ?? '' };
  // Istio 1.5 and 1.6 took the untyped v2 `config:` block; 1.7+ a TypedStruct around the v3 Wasm filter.
  const value =
    istioMinor <= 6
      ? {
          name: 'envoy.filters.http.wasm',
          config: { config: { name: f.id, rootId: f.rootId, configuration: f.config ?? '', vmConfig: { runtime: 'envoy.wasm.runtime.v8', code: { local: { filename } }, vmId: f.id } } },
        }
      : {
          name: 'envoy.filters.http.wasm',
          typedConfig: {
            '@type': 'type.googleapis.com/udpa.type.v1.TypedStruct',
            typeUrl: 'type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm',
            value: { config: { name: f.id, rootId: f.rootId, configuration, vmConfig: { vmId: f.id, runtime: 'envoy.wasm.runtime.v8', code: { local: { filename } } } } },
          },
        };
  return {
    apiVersion: 'networking.istio.io/v1alpha3',
    kind: 'EnvoyFilter',
    metadata: managedMetadata(f, `${workload.name}-${f.id}`),
    spec: {
      workloadSelector: { labels: workload.podLabels },
      configPatches: [
        {
          applyTo: 'HTTP_FILTER',
          match: {
            context: CONTEXTS[f.patchContext],
            listener: { filterChain: { filter: { name: 'envoy.http_connection_manager', subFilter: { name: 'envoy.router' } } } },
          },
          patch: { operation: 'INSERT_BEFORE', value },
        },
      ],
    },
  };
}

export function filterDeployment(f: FilterToDeploy, istioNamespace: string): KubeObject {
  return {
    apiVersion: 'wasme.io/v1',
    kind: 'FilterDeployment',
    metadata: managedMetadata(f, f.id),
    spec: {
      filter: {
        id: f.id,
        image: f.image,
        rootID: f.rootId,
        ...(f.config ? { config: { '@type': 'type.googleapis.com/google.protobuf.StringValue', value: f.config } } : {}),
        patchContext: f.patchContext,
      },
      deployment: { istio: { kind: f.workloadKind === 'daemonset' ? 'DaemonSet' : f.workloadKind === 'statefulset' ? 'StatefulSet' : 'Deployment', labels: f.labels, istioNamespace } },
    },
  };
}

/** The pod-template annotations after adding filter `id` (with wasme's backups of values it replaces). */
export function annotateForCache(annotations: Record<string, string>, id: string): Record<string, string> {
  const next = { ...annotations };
  const ids = new Set((next[WORKLOAD_FILTERS_ANNOTATION] ?? '').split(',').filter(Boolean));
  for (const [k, v] of Object.entries(SIDECAR_ANNOTATIONS)) {
    if (next[k] !== undefined && next[k] !== v && next[BACKUP_PREFIX + k] === undefined) next[BACKUP_PREFIX + k] = next[k]!;
    next[k] = v;
  }
  ids.add(id);
  next[WORKLOAD_FILTERS_ANNOTATION] = [...ids].sort().join(',');
  return next;
}

/** The inverse: the cache annotations go (backups restored) once no filter of ours needs them. */
export function unannotateForCache(annotations: Record<string, string>, id: string): Record<string, string> {
  const next = { ...annotations };
  const ids = new Set((next[WORKLOAD_FILTERS_ANNOTATION] ?? '').split(',').filter(Boolean));
  ids.delete(id);
  if (ids.size) {
    next[WORKLOAD_FILTERS_ANNOTATION] = [...ids].sort().join(',');
    return next;
  }
  delete next[WORKLOAD_FILTERS_ANNOTATION];
  for (const k of Object.keys(SIDECAR_ANNOTATIONS)) {
    const backup = next[BACKUP_PREFIX + k];
    if (backup !== undefined) {
      next[k] = backup;
      delete next[BACKUP_PREFIX + k];
    } else delete next[k];
  }
  return next;
}

export const CACHE_NAMESPACE = 'wasme';
export const CACHE_NAME = 'wasme-cache';
export const CACHE_IMAGES_KEY = 'images';

/**
 * wasme's cache, which puts each image's module on every node at /var/local/lib/wasme-cache/<sha>:
 * namespace, ServiceAccount, Role, RoleBinding, ConfigMap (the images, one per line) and DaemonSet, as
 * wasme installed them. `images` is the ConfigMap's list.
 */
export function wasmeCacheObjects(images: string[], cacheImage = 'quay.io/solo-io/wasme:0.0.33'): KubeObject[] {
  const labels = { app: CACHE_NAME, [MANAGED_BY_LABEL]: MANAGED_BY };
  const meta = (name: string) => ({ name, namespace: CACHE_NAMESPACE, labels });
  return [
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: CACHE_NAMESPACE, labels } },
    { apiVersion: 'v1', kind: 'ServiceAccount', metadata: meta(CACHE_NAME) },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'Role',
      metadata: meta(CACHE_NAME),
      rules: [
        { apiGroups: [''], resources: ['configmaps'], verbs: ['get', 'list', 'watch'] },
        { apiGroups: [''], resources: ['events'], verbs: ['create', 'get', 'list', 'watch', 'delete'] },
      ],
    },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'RoleBinding',
      metadata: meta(CACHE_NAME),
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: CACHE_NAME },
      subjects: [{ kind: 'ServiceAccount', name: CACHE_NAME, namespace: CACHE_NAMESPACE }],
    },
    { apiVersion: 'v1', kind: 'ConfigMap', metadata: meta(CACHE_NAME), data: { [CACHE_IMAGES_KEY]: images.join('\n') } },
    {
      apiVersion: 'apps/v1',
      kind: 'DaemonSet',
      metadata: meta(CACHE_NAME),
      spec: {
        selector: { matchLabels: { app: CACHE_NAME } },
        template: {
          metadata: { labels: { app: CACHE_NAME } },
          spec: {
            serviceAccountName: CACHE_NAME,
            volumes: [
              { name: 'cache-dir', hostPath: { path: CACHE_DIR } },
              { name: 'config', configMap: { name: CACHE_NAME, items: [{ key: CACHE_IMAGES_KEY, path: 'images.txt' }] } },
            ],
            containers: [
              {
                name: 'wasme-cache',
                image: cacheImage,
                args: ['cache', '--directory', CACHE_DIR, '--ref-file', '/etc/wasme-cache/images.txt', '--cache-ns', CACHE_NAMESPACE],
                volumeMounts: [
                  { name: 'cache-dir', mountPath: CACHE_DIR },
                  { name: 'config', mountPath: '/etc/wasme-cache' },
                ],
              },
            ],
          },
        },
      },
    },
  ];
}

/** The name of the pull secret a deploy makes for a private registry. */
export function pullSecretName(registry: string): string {
  return `wasm-filter-pull-${registry.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '')}`.slice(0, 63);
}

/** A kubernetes.io/dockerconfigjson Secret holding one registry login, for Istio to pull a private image. */
export function pullSecret(f: FilterToDeploy, registry: string, credential: { username: string; secret: string }): KubeObject {
  const auth = Buffer.from(`${credential.username}:${credential.secret}`).toString('base64');
  const config = JSON.stringify({ auths: { [registry]: { auth } } });
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    type: 'kubernetes.io/dockerconfigjson',
    metadata: { name: pullSecretName(registry), namespace: f.namespace, labels: managedLabels(f.id) },
    data: { '.dockerconfigjson': Buffer.from(config).toString('base64') },
  };
}
