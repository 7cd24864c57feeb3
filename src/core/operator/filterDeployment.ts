/**
 * wasme's `wasme.io/v1` FilterDeployment: the CRD this operator ships (every field wasme had, plus a mode
 * and istiodName) and the reading of one object into what a deploy needs.
 */
import { UserError } from '../errors';
import type { KubeObject } from '../deploy/cluster';
import type { PatchContext } from '../deploy/istioObjects';
import { parseReference } from '../reference';

export const GROUP = 'wasme.io';
export const VERSION = 'v1';
export const PLURAL = 'filterdeployments';
export const KIND = 'FilterDeployment';
/** Held while the operator still has workloads to restore; a delete waits for it. */
export const FINALIZER = 'wasm-filter-studio.dev/restore-workloads';

export type WorkloadState = 'Pending' | 'Succeeded' | 'Failed';

export interface Condition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason: string;
  message: string;
  lastTransitionTime: string;
  observedGeneration?: number;
}

export interface FilterDeploymentStatus {
  observedGeneration?: number;
  reason?: string;
  workloads?: Record<string, { state: WorkloadState; reason?: string }>;
  conditions?: Condition[];
}

const str = { type: 'string' };

/** The CRD: apiextensions.k8s.io/v1, a structural schema, the status subresource. deploy/crd.yaml is this. */
export function filterDeploymentCrd(): KubeObject {
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `${PLURAL}.${GROUP}`, labels: { 'app.kubernetes.io/part-of': 'wasm-filter-studio' } },
    spec: {
      group: GROUP,
      scope: 'Namespaced',
      names: { plural: PLURAL, singular: 'filterdeployment', kind: KIND, listKind: `${KIND}List`, shortNames: ['fd'] },
      versions: [
        {
          name: VERSION,
          served: true,
          storage: true,
          subresources: { status: {} },
          additionalPrinterColumns: [
            { name: 'Image', type: 'string', jsonPath: '.spec.filter.image' },
            { name: 'Ready', type: 'string', jsonPath: ".status.conditions[?(@.type=='Ready')].status" },
            { name: 'Reason', type: 'string', jsonPath: '.status.reason', priority: 1 },
            { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
          ],
          schema: {
            openAPIV3Schema: {
              type: 'object',
              properties: {
                apiVersion: str,
                kind: str,
                metadata: { type: 'object' },
                spec: {
                  type: 'object',
                  required: ['filter', 'deployment'],
                  properties: {
                    filter: {
                      type: 'object',
                      required: ['image'],
                      properties: {
                        id: { type: 'string', description: 'The filter id (default: <name>.<namespace>, as wasme).' },
                        image: { type: 'string', description: 'The filter image, e.g. webassemblyhub.io/alice/add-header:v0.1.' },
                        config: {
                          description: 'A typed Any (StringValue, BytesValue, Struct), a plain string, or a JSON object.',
                          'x-kubernetes-preserve-unknown-fields': true,
                        },
                        rootID: str,
                        patchContext: { type: 'string', enum: ['any', 'inbound', 'outbound', 'gateway'] },
                        imagePullOptions: {
                          type: 'object',
                          properties: { pullSecret: str, insecureSkipVerify: { type: 'boolean' }, plainHttp: { type: 'boolean' } },
                        },
                      },
                    },
                    deployment: {
                      type: 'object',
                      properties: {
                        istio: {
                          type: 'object',
                          properties: {
                            kind: { type: 'string', enum: ['Deployment', 'DaemonSet', 'StatefulSet'] },
                            labels: { type: 'object', additionalProperties: str },
                            istioNamespace: str,
                            istiodName: str,
                            mode: { type: 'string', enum: ['auto', 'wasmplugin', 'envoyfilter'], description: 'How the filter reaches the proxies (auto: WasmPlugin where Istio has it).' },
                          },
                        },
                      },
                    },
                  },
                },
                status: {
                  type: 'object',
                  properties: {
                    observedGeneration: { type: 'integer', format: 'int64' },
                    reason: str,
                    workloads: {
                      type: 'object',
                      additionalProperties: { type: 'object', properties: { state: { type: 'string', enum: ['Pending', 'Succeeded', 'Failed'] }, reason: str } },
                    },
                    conditions: {
                      type: 'array',
                      items: {
                        type: 'object',
                        required: ['type', 'status'],
                        properties: {
                          type: str,
                          status: { type: 'string', enum: ['True', 'False', 'Unknown'] },
                          reason: str,
                          message: str,
                          lastTransitionTime: { type: 'string', format: 'date-time' },
                          observedGeneration: { type: 'integer', format: 'int64' },
                        },
                      },
                      'x-kubernetes-list-type': 'map',
                      'x-kubernetes-list-map-keys': ['type'],
                    },
                  },
                },
              },
            },
          },
        },
      ],
    },
  };
}

/** What one FilterDeployment asks for, checked. */
export interface FilterDeploymentTarget {
  id: string;
  namespace: string;
  image: string;
  config?: string;
  rootId?: string;
  patchContext: PatchContext;
  pullSecret?: string;
  insecureSkipVerify: boolean;
  plainHttp?: boolean;
  workloadKind: 'deployment' | 'daemonset' | 'statefulset';
  labels: Record<string, string>;
  istioNamespace: string;
  istiodName?: string;
  mode: 'auto' | 'wasmplugin' | 'envoyfilter';
}

/** A spec that cannot work as written: the status says why, and nothing is retried until it changes. */
export class InvalidSpecError extends UserError {
  constructor(message: string) {
    super(message, 'Fix the FilterDeployment (kubectl edit); the operator tries again when it changes.', 'E_INVALID_SPEC');
  }
}

/**
 * The configuration as the filter receives it. wasme's operator only took a typed Any and ignored a
 * plain string; both work here, and a JSON object (or Struct) is passed on as JSON.
 */
export function configOf(config: unknown): string | undefined {
  if (config === undefined || config === null) return undefined;
  if (typeof config === 'string') return config;
  if (typeof config !== 'object' || Array.isArray(config)) throw new InvalidSpecError(`spec.filter.config is a ${Array.isArray(config) ? 'list' : typeof config}; give a string, a JSON object or a typed Any.`);
  const { '@type': type, ...rest } = config as Record<string, unknown>;
  if (type === undefined) return JSON.stringify(config);
  const t = String(type);
  if (t.endsWith('google.protobuf.StringValue')) return String(rest.value ?? '');
  if (t.endsWith('google.protobuf.BytesValue')) return Buffer.from(String(rest.value ?? ''), 'base64').toString('utf8');
  if (t.endsWith('google.protobuf.Struct')) return JSON.stringify('fields' in rest && typeof rest.fields === 'object' ? rest.fields : rest);
  throw new InvalidSpecError(`spec.filter.config has @type ${t}, which no filter reads; use google.protobuf.StringValue, BytesValue or Struct, or a plain string.`);
}

const KINDS = { Deployment: 'deployment', DaemonSet: 'daemonset', StatefulSet: 'statefulset' } as const;

export function readFilterDeployment(fd: KubeObject): FilterDeploymentTarget {
  const name = fd.metadata!.name!;
  const namespace = fd.metadata!.namespace!;
  const filter = fd.spec?.filter ?? {};
  const istio = fd.spec?.deployment?.istio ?? {};
  if (typeof filter.image !== 'string' || !filter.image.trim()) throw new InvalidSpecError('spec.filter.image is missing.');
  try {
    parseReference(filter.image);
  } catch (err) {
    throw new InvalidSpecError(`spec.filter.image: ${(err as Error).message}`);
  }
  const id = String(filter.id ?? `${name}.${namespace}`);
  if (!/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(id) || id.length > 63) throw new InvalidSpecError(`spec.filter.id "${id}" is not a Kubernetes name (lowercase letters, digits, "-" and ".").`);
  const kind = istio.kind ?? 'Deployment';
  if (!(kind in KINDS)) throw new InvalidSpecError(`spec.deployment.istio.kind "${kind}" is not Deployment, DaemonSet or StatefulSet.`);
  const mode = istio.mode ?? 'auto';
  if (!['auto', 'wasmplugin', 'envoyfilter'].includes(mode)) throw new InvalidSpecError(`spec.deployment.istio.mode "${mode}" is not auto, wasmplugin or envoyfilter.`);
  const patchContext = (filter.patchContext ?? 'inbound') as PatchContext;
  if (!['any', 'inbound', 'outbound', 'gateway'].includes(patchContext)) throw new InvalidSpecError(`spec.filter.patchContext "${patchContext}" is not any, inbound, outbound or gateway.`);
  const config = configOf(filter.config);
  const pull = filter.imagePullOptions ?? {};
  return {
    id,
    namespace,
    image: filter.image.trim(),
    ...(config !== undefined ? { config } : {}),
    ...(filter.rootID ? { rootId: String(filter.rootID) } : {}),
    patchContext,
    ...(pull.pullSecret ? { pullSecret: String(pull.pullSecret) } : {}),
    insecureSkipVerify: !!pull.insecureSkipVerify,
    ...(pull.plainHttp !== undefined ? { plainHttp: !!pull.plainHttp } : {}),
    workloadKind: KINDS[kind as keyof typeof KINDS],
    labels: (istio.labels ?? {}) as Record<string, string>,
    istioNamespace: istio.istioNamespace ?? 'istio-system',
    ...(istio.istiodName ? { istiodName: String(istio.istiodName) } : {}),
    mode,
  };
}
