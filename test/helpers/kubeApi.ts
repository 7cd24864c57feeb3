// A double of the Kubernetes API server for tests: real HTTP on 127.0.0.1, reached through a kubeconfig by
// the real @kubernetes/client-node. It keeps objects in memory and behaves like the API server in what the
// studio relies on: discovery, CRDs, namespaced and cluster-scoped CRUD with resourceVersion and 409
// conflicts, merge and strategic-merge patches, label and field selectors, Status bodies for errors,
// Events, pods/log with container, sinceTime/sinceSeconds, limitBytes and follow, watch streams (from a
// resourceVersion, with bookmarks, timeouts and 410 Gone once history is compacted), finalizers, the
// status subresource, ownerReferences (dependents go with their owner) and Leases.
import { randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';

export type KubeObject = { apiVersion: string; kind: string; metadata: Record<string, any>; [key: string]: any };

interface ResourceType {
  group: string;
  version: string;
  plural: string;
  kind: string;
  namespaced: boolean;
  /** Only served once a CRD defines it. */
  crd?: boolean;
}

const BUILTIN: ResourceType[] = [
  { group: '', version: 'v1', plural: 'namespaces', kind: 'Namespace', namespaced: false },
  { group: '', version: 'v1', plural: 'pods', kind: 'Pod', namespaced: true },
  { group: '', version: 'v1', plural: 'configmaps', kind: 'ConfigMap', namespaced: true },
  { group: '', version: 'v1', plural: 'secrets', kind: 'Secret', namespaced: true },
  { group: '', version: 'v1', plural: 'serviceaccounts', kind: 'ServiceAccount', namespaced: true },
  { group: '', version: 'v1', plural: 'events', kind: 'Event', namespaced: true },
  { group: '', version: 'v1', plural: 'nodes', kind: 'Node', namespaced: false },
  { group: 'apps', version: 'v1', plural: 'deployments', kind: 'Deployment', namespaced: true },
  { group: 'apps', version: 'v1', plural: 'daemonsets', kind: 'DaemonSet', namespaced: true },
  { group: 'apps', version: 'v1', plural: 'statefulsets', kind: 'StatefulSet', namespaced: true },
  { group: 'rbac.authorization.k8s.io', version: 'v1', plural: 'roles', kind: 'Role', namespaced: true },
  { group: 'rbac.authorization.k8s.io', version: 'v1', plural: 'rolebindings', kind: 'RoleBinding', namespaced: true },
  { group: 'coordination.k8s.io', version: 'v1', plural: 'leases', kind: 'Lease', namespaced: true },
  { group: 'apiextensions.k8s.io', version: 'v1', plural: 'customresourcedefinitions', kind: 'CustomResourceDefinition', namespaced: false },
];

type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED';

interface Watcher {
  typeKey: string;
  namespace: string | undefined;
  labels: string | null;
  fields: string | null;
  res: http.ServerResponse;
  timers: NodeJS.Timeout[];
}

export interface PolicyRule {
  apiGroups?: string[];
  resources?: string[];
  verbs: string[];
  resourceNames?: string[];
}

function ruleAllows(rules: PolicyRule[], verb: string, group: string, resource: string, name?: string): boolean {
  return rules.some(
    (r) =>
      (r.verbs.includes(verb) || r.verbs.includes('*')) &&
      (r.apiGroups ?? []).some((g) => g === group || g === '*') &&
      (r.resources ?? []).some((x) => x === resource || x === '*') &&
      (!r.resourceNames?.length || (!!name && r.resourceNames.includes(name))),
  );
}

export interface ApiRequest {
  method: string;
  path: string;
  query: string;
}

function status(code: number, reason: string, message: string, details?: object): object {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code, ...(details ? { details } : {}) };
}

/** RFC 7386 JSON merge patch (strategic merge is treated alike: the double's workloads have no merge keys that matter). */
export function mergePatch(target: any, patch: any): any {
  if (patch === null || typeof patch !== 'object' || Array.isArray(patch)) return patch;
  const out = target && typeof target === 'object' && !Array.isArray(target) ? { ...target } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

function matchesLabels(obj: KubeObject, selector: string | null): boolean {
  if (!selector) return true;
  const labels = obj.metadata.labels ?? {};
  return selector.split(',').every((term) => {
    const t = term.trim();
    if (!t) return true;
    const ne = /^([^!=]+)!=(.*)$/.exec(t);
    if (ne) return labels[ne[1]!.trim()] !== ne[2]!.trim();
    const eq = /^([^=]+)==?(.*)$/.exec(t);
    if (eq) return labels[eq[1]!.trim()] === eq[2]!.trim();
    if (t.startsWith('!')) return !(t.slice(1) in labels);
    return t in labels;
  });
}

function fieldValue(obj: KubeObject, path: string): unknown {
  return path.split('.').reduce<any>((o, k) => (o == null ? undefined : o[k]), obj);
}

function matchesFields(obj: KubeObject, selector: string | null): boolean {
  if (!selector) return true;
  return selector.split(',').every((term) => {
    const m = /^([^!=]+)(!=|==|=)(.*)$/.exec(term.trim());
    if (!m) return true;
    const value = String(fieldValue(obj, m[1]!.trim()) ?? '');
    return m[2] === '!=' ? value !== m[3] : value === m[3];
  });
}

export class KubeApiDouble {
  private server?: http.Server;
  url = '';
  readonly token = 'double-token-' + randomUUID();
  private readonly types: ResourceType[] = [...BUILTIN];
  /** key: group/plural/namespace/name */
  readonly objects = new Map<string, KubeObject>();
  private revision = 1000;
  readonly requests: ApiRequest[] = [];
  /** What RBAC (`rbac`) refused: "verb group/resource in namespace". */
  readonly denied: string[] = [];
  /** "verb plural" pairs RBAC forbids, e.g. "create envoyfilters". */
  readonly forbidden = new Set<string>();
  /**
   * When set, RBAC as the API server does it: only what these PolicyRules allow (cluster-wide rules, and
   * rules that hold in one namespace) passes; every other request is 403 Forbidden.
   */
  rbac?: { cluster: PolicyRule[]; namespaced: Record<string, PolicyRule[]> };
  /** Container logs: "ns/pod/container" → lines with their times. */
  readonly logs = new Map<string, { time: Date; text: string }[]>();
  /** Fails every request when set (an unreachable or broken server is tested by stopping it instead). */
  failAll?: number;
  /** One-shot failures by "verb plural": e.g. a 409 on "create envoyfilters" the next N times. */
  readonly injected = new Map<string, { code: number; reason: string; times: number }>();
  /** Every change, for watches that resume from a resourceVersion (dropped below `compactedBefore`). */
  private history: { type: WatchEventType; typeKey: string; rv: number; object: KubeObject }[] = [];
  private compactedBefore = 0;
  private readonly watchers = new Set<Watcher>();
  private readonly logFollowers = new Map<string, Set<http.ServerResponse>>();
  /** How often open watches that asked for them get a BOOKMARK (the API server's is about a minute). */
  bookmarkEveryMs = 60_000;

  async start(): Promise<this> {
    this.server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        try {
          this.handle(req, res, Buffer.concat(chunks).toString('utf8'));
        } catch (err) {
          this.send(res, 500, status(500, 'InternalError', (err as Error).message));
        }
      });
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  async stop(): Promise<void> {
    this.closeWatches();
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => this.server?.close(() => resolve()) ?? resolve());
  }

  /** A kubeconfig for this server; `context` names its only context. */
  writeKubeconfig(file: string, context = 'double'): string {
    writeFileSync(
      file,
      `apiVersion: v1
kind: Config
clusters:
- name: ${context}-cluster
  cluster:
    server: ${this.url}
    # The double speaks plain HTTP, which the client library only allows with this set.
    insecure-skip-tls-verify: true
contexts:
- name: ${context}
  context:
    cluster: ${context}-cluster
    user: ${context}-user
current-context: ${context}
users:
- name: ${context}-user
  user:
    token: ${this.token}
`,
    );
    return file;
  }

  /** Writes done since `from` (a count of requests), for "no write happened" checks. */
  writesSince(from: number): ApiRequest[] {
    return this.requests.slice(from).filter((r) => r.method !== 'GET');
  }

  private type(group: string, plural: string): ResourceType | undefined {
    return this.types.find((t) => t.group === group && t.plural === plural && (!t.crd || this.crdServed(t)));
  }

  private crdServed(t: ResourceType): boolean {
    return this.objects.has(`apiextensions.k8s.io/customresourcedefinitions//${t.plural}.${t.group}`);
  }

  private key(t: ResourceType, namespace: string | undefined, name: string): string {
    return `${t.group}/${t.plural}/${t.namespaced ? (namespace ?? '') : ''}/${name}`;
  }

  /** Puts an object in as if created (seeding); returns the stored copy. */
  put(obj: KubeObject): KubeObject {
    const [group, version] = obj.apiVersion.includes('/') ? obj.apiVersion.split('/') : ['', obj.apiVersion];
    const t = this.types.find((x) => x.group === group && x.kind === obj.kind);
    if (!t) throw new Error(`the double does not know ${obj.apiVersion} ${obj.kind}`);
    void version;
    const k = this.key(t, obj.metadata.namespace, obj.metadata.name);
    const previous = this.objects.get(k);
    const stored = this.stamp(structuredClone(obj), previous);
    this.objects.set(k, stored);
    this.record(previous ? 'MODIFIED' : 'ADDED', t, stored);
    if (t.plural === 'customresourcedefinitions') this.registerCrd(stored);
    return stored;
  }

  /** Deletes an object as another client would (finalizers respected, dependents collected). */
  remove(apiVersion: string, kind: string, namespace: string | undefined, name: string): void {
    const group = apiVersion.includes('/') ? apiVersion.split('/')[0]! : '';
    const t = this.types.find((x) => x.group === group && x.kind === kind);
    if (t) this.deleteObject(t, this.key(t, namespace, name));
  }

  /** Open watch streams, e.g. to see that a stopped informer let go of its connections. */
  get openWatches(): number {
    return this.watchers.size;
  }

  /** Ends every open watch stream, as an API server restart or a load balancer would. */
  closeWatches(): void {
    for (const w of this.watchers) this.endWatch(w);
    for (const set of this.logFollowers.values()) for (const res of set) res.end();
    this.logFollowers.clear();
  }

  /** Forgets history: a watch resuming from before now gets 410 Gone and must re-list; from now on is fine. */
  compact(): void {
    this.history = [];
    this.compactedBefore = this.revision;
  }

  private typeKey(t: ResourceType): string {
    return `${t.group}/${t.plural}`;
  }

  private record(type: WatchEventType, t: ResourceType, object: KubeObject): void {
    const event = { type, typeKey: this.typeKey(t), rv: Number(object.metadata.resourceVersion), object };
    this.history.push(event);
    if (this.history.length > 50_000) this.history.splice(0, 10_000);
    for (const w of this.watchers) if (this.watchSees(w, event)) this.writeEvent(w.res, type, object);
  }

  private watchSees(w: Watcher, e: { typeKey: string; object: KubeObject }): boolean {
    return e.typeKey === w.typeKey && (!w.namespace || e.object.metadata.namespace === w.namespace) && matchesLabels(e.object, w.labels) && matchesFields(e.object, w.fields);
  }

  private writeEvent(res: http.ServerResponse, type: string, object: unknown): void {
    res.write(JSON.stringify({ type, object }) + '\n');
  }

  private endWatch(w: Watcher): void {
    for (const timer of w.timers) clearTimeout(timer);
    this.watchers.delete(w);
    w.res.end();
  }

  /** GET …?watch=true: replays what came after `resourceVersion` (or the current objects), then streams. */
  private watch(req: http.IncomingMessage, res: http.ServerResponse, url: URL, t: ResourceType, namespace: string | undefined): void {
    const from = url.searchParams.get('resourceVersion');
    res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
    res.flushHeaders(); // the client's watch() resolves on the headers, before any event
    const w: Watcher = { typeKey: this.typeKey(t), namespace: t.namespaced ? namespace : undefined, labels: url.searchParams.get('labelSelector'), fields: url.searchParams.get('fieldSelector'), res, timers: [] };
    if (from && from !== '0' && Number(from) < this.compactedBefore) {
      this.writeEvent(res, 'ERROR', status(410, 'Expired', `too old resource version: ${from} (${this.compactedBefore})`));
      res.end();
      return;
    }
    if (!from || from === '0') {
      for (const [k, o] of this.objects) if (k.startsWith(`${w.typeKey}/`) && this.watchSees(w, { typeKey: w.typeKey, object: o })) this.writeEvent(res, 'ADDED', o);
    } else {
      for (const e of this.history) if (e.rv > Number(from) && this.watchSees(w, e)) this.writeEvent(res, e.type, e.object);
    }
    this.watchers.add(w);
    const timeout = Number(url.searchParams.get('timeoutSeconds') ?? 0);
    if (timeout > 0) w.timers.push(setTimeout(() => this.endWatch(w), timeout * 1000));
    if (url.searchParams.get('allowWatchBookmarks') === 'true') {
      const apiVersion = t.group ? `${t.group}/${t.version}` : t.version;
      w.timers.push(setInterval(() => this.writeEvent(res, 'BOOKMARK', { kind: t.kind, apiVersion, metadata: { resourceVersion: String(this.revision) } }), this.bookmarkEveryMs));
    }
    // The response's close is the client going away (the request's fires once its body is read).
    res.on('close', () => {
      for (const timer of w.timers) clearTimeout(timer);
      this.watchers.delete(w);
    });
  }

  /** Deletes (or, with finalizers, marks for deletion); dependents whose owner is gone go too. */
  private deleteObject(t: ResourceType, k: string): KubeObject | undefined {
    const existing = this.objects.get(k);
    if (!existing) return undefined;
    if (existing.metadata.finalizers?.length) {
      if (existing.metadata.deletionTimestamp) return existing;
      const marked = this.stamp({ ...structuredClone(existing), metadata: { ...existing.metadata, deletionTimestamp: new Date().toISOString() } }, existing);
      this.objects.set(k, marked);
      this.record('MODIFIED', t, marked);
      return marked;
    }
    this.objects.delete(k);
    this.gone(t, existing);
    return undefined;
  }

  /** An object left the store: a DELETED event, and garbage collection of what it owned. */
  private gone(t: ResourceType, object: KubeObject): void {
    const last = { ...object, metadata: { ...object.metadata, resourceVersion: String(++this.revision) } };
    this.record('DELETED', t, last);
    const uid = object.metadata.uid;
    for (const [k, o] of [...this.objects]) {
      if (!o.metadata.ownerReferences?.some((r: { uid: string }) => r.uid === uid)) continue;
      const [group, plural] = k.split('/');
      const dt = this.types.find((x) => x.group === group && x.plural === plural);
      if (dt) this.deleteObject(dt, k);
    }
  }

  /** Types whose status is only written through the status subresource. */
  private hasStatusSubresource(t: ResourceType): boolean {
    if (!t.crd) return ['pods', 'deployments', 'daemonsets', 'statefulsets', 'namespaces', 'nodes'].includes(t.plural);
    const crd = this.objects.get(`apiextensions.k8s.io/customresourcedefinitions//${t.plural}.${t.group}`);
    return !!crd?.spec?.versions?.find((v: { name: string }) => v.name === t.version)?.subresources?.status;
  }

  get(apiVersion: string, kind: string, namespace: string | undefined, name: string): KubeObject | undefined {
    const group = apiVersion.includes('/') ? apiVersion.split('/')[0]! : '';
    const t = this.types.find((x) => x.group === group && x.kind === kind);
    return t ? this.objects.get(this.key(t, namespace, name)) : undefined;
  }

  list(apiVersion: string, kind: string, namespace?: string): KubeObject[] {
    const group = apiVersion.includes('/') ? apiVersion.split('/')[0]! : '';
    const t = this.types.find((x) => x.group === group && x.kind === kind);
    if (!t) return [];
    const prefix = `${t.group}/${t.plural}/${namespace ?? ''}`;
    return [...this.objects.entries()].filter(([k]) => (namespace === undefined ? k.startsWith(`${t.group}/${t.plural}/`) : k.startsWith(prefix + '/'))).map(([, v]) => v);
  }

  private registerCrd(crd: KubeObject): void {
    const spec = crd.spec ?? {};
    for (const v of spec.versions ?? []) {
      if (!this.types.some((t) => t.group === spec.group && t.plural === spec.names.plural && t.version === v.name)) {
        this.types.push({ group: spec.group, version: v.name, plural: spec.names.plural, kind: spec.names.kind, namespaced: spec.scope === 'Namespaced', crd: true });
      }
    }
  }

  private stamp(obj: KubeObject, previous?: KubeObject): KubeObject {
    obj.metadata ??= {};
    obj.metadata.uid = previous?.metadata.uid ?? obj.metadata.uid ?? randomUUID();
    obj.metadata.creationTimestamp = previous?.metadata.creationTimestamp ?? obj.metadata.creationTimestamp ?? new Date().toISOString();
    obj.metadata.resourceVersion = String(++this.revision);
    const specChanged = !previous || JSON.stringify(previous.spec) !== JSON.stringify(obj.spec);
    obj.metadata.generation = previous ? (previous.metadata.generation ?? 1) + (specChanged ? 1 : 0) : 1;
    return obj;
  }

  private send(res: http.ServerResponse, code: number, body: unknown, type = 'application/json'): void {
    const text = typeof body === 'string' ? body : JSON.stringify(body);
    res.writeHead(code, { 'content-type': type, 'content-length': Buffer.byteLength(text) });
    res.end(text);
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse, body: string): void {
    const url = new URL(req.url ?? '/', this.url);
    const method = req.method ?? 'GET';
    this.requests.push({ method, path: url.pathname, query: url.search });
    if (this.failAll) return this.send(res, this.failAll, status(this.failAll, 'InternalError', 'injected failure'));
    if (req.headers.authorization !== `Bearer ${this.token}`) return this.send(res, 401, status(401, 'Unauthorized', 'Unauthorized'));
    const parts = url.pathname.split('/').filter(Boolean);

    // Discovery.
    if (url.pathname === '/api') return this.send(res, 200, { kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [] });
    if (url.pathname === '/apis') {
      const groups = new Map<string, Set<string>>();
      for (const t of this.types) if (t.group && (!t.crd || this.crdServed(t))) (groups.get(t.group) ?? groups.set(t.group, new Set()).get(t.group)!).add(t.version);
      return this.send(res, 200, {
        kind: 'APIGroupList',
        apiVersion: 'v1',
        groups: [...groups].map(([name, versions]) => ({
          name,
          versions: [...versions].map((v) => ({ groupVersion: `${name}/${v}`, version: v })),
          preferredVersion: { groupVersion: `${name}/${[...versions][0]}`, version: [...versions][0] },
        })),
      });
    }
    if (url.pathname === '/version') return this.send(res, 200, { major: '1', minor: '31', gitVersion: 'v1.31.0-double' });

    let group = '';
    let version = '';
    let rest: string[];
    if (parts[0] === 'api') {
      version = parts[1] ?? '';
      rest = parts.slice(2);
    } else if (parts[0] === 'apis') {
      group = parts[1] ?? '';
      version = parts[2] ?? '';
      rest = parts.slice(3);
    } else return this.send(res, 404, status(404, 'NotFound', `the server could not find the requested resource (${url.pathname})`));
    if (rest.length === 0) {
      const resources = this.types.filter((t) => t.group === group && t.version === version && (!t.crd || this.crdServed(t)));
      if (!resources.length) return this.send(res, 404, status(404, 'NotFound', `the server could not find the requested resource`));
      return this.send(res, 200, {
        kind: 'APIResourceList',
        apiVersion: 'v1',
        groupVersion: group ? `${group}/${version}` : version,
        resources: resources.map((t) => ({ name: t.plural, singularName: t.kind.toLowerCase(), namespaced: t.namespaced, kind: t.kind, verbs: ['create', 'delete', 'get', 'list', 'patch', 'update', 'watch'] })),
      });
    }
    let namespace: string | undefined;
    if (rest[0] === 'namespaces' && rest.length >= 3) {
      namespace = rest[1];
      rest = rest.slice(2);
    }
    const [plural, name, sub] = rest as [string, string | undefined, string | undefined];
    const t = this.type(group, plural);
    if (!t || t.version !== version) {
      return this.send(res, 404, status(404, 'NotFound', `the server could not find the requested resource (${method.toLowerCase()} ${plural}${group ? `.${group}` : ''})`, { kind: plural }));
    }
    const verb = method === 'GET' ? (name ? 'get' : /^(true|1)$/.test(url.searchParams.get('watch') ?? '') ? 'watch' : 'list') : method === 'POST' ? 'create' : method === 'PUT' ? 'update' : method === 'PATCH' ? 'patch' : method === 'DELETE' ? 'delete' : method.toLowerCase();
    const resourceName = sub ? `${plural}/${sub}` : plural;
    const injected = this.injected.get(`${verb} ${plural}`);
    if (injected && injected.times > 0) {
      injected.times--;
      return this.send(res, injected.code, status(injected.code, injected.reason, `injected ${injected.reason} on ${verb} ${plural}${name ? ` "${name}"` : ''}`, { name, kind: plural }));
    }
    const rbacDenies = this.rbac && !ruleAllows(this.rbac.cluster, verb, group, resourceName, name) && !(namespace && ruleAllows(this.rbac.namespaced[namespace] ?? [], verb, group, resourceName, name));
    if (rbacDenies) this.denied.push(`${verb} ${group ? `${group}/` : ''}${resourceName}${namespace ? ` in ${namespace}` : ''}`);
    if (rbacDenies || this.forbidden.has(`${verb} ${resourceName}`) || this.forbidden.has(`${verb} ${plural}`)) {
      return this.send(
        res,
        403,
        status(403, 'Forbidden', `${plural}${group ? `.${group}` : ''}${name ? ` "${name}"` : ''} is forbidden: User "double-user" cannot ${verb} resource "${resourceName}" in API group "${group}"${namespace ? ` in the namespace "${namespace}"` : ''}`, {
          name,
          group,
          kind: plural,
        }),
      );
    }
    if (t.namespaced && namespace && plural !== 'namespaces' && !this.objects.has(`/namespaces//${namespace}`) && method === 'POST') {
      return this.send(res, 404, status(404, 'NotFound', `namespaces "${namespace}" not found`, { name: namespace, kind: 'namespaces' }));
    }
    const apiVersion = group ? `${group}/${version}` : version;

    if (!name) {
      if (method === 'GET' && /^(true|1)$/.test(url.searchParams.get('watch') ?? '')) return this.watch(req, res, url, t, namespace);
      if (method === 'GET') {
        const items = [...this.objects.entries()]
          .filter(([k]) => k.startsWith(`${t.group}/${t.plural}/${t.namespaced && namespace ? namespace + '/' : ''}`))
          .map(([, v]) => v)
          .filter((o) => matchesLabels(o, url.searchParams.get('labelSelector')) && matchesFields(o, url.searchParams.get('fieldSelector')));
        return this.send(res, 200, { kind: `${t.kind}List`, apiVersion, metadata: { resourceVersion: String(this.revision) }, items });
      }
      if (method === 'POST') {
        const obj = JSON.parse(body) as KubeObject;
        obj.apiVersion ??= apiVersion;
        obj.kind ??= t.kind;
        if (!obj.metadata?.name && obj.metadata?.generateName) obj.metadata.name = obj.metadata.generateName + randomUUID().slice(0, 5);
        if (t.namespaced) obj.metadata.namespace = namespace;
        const k = this.key(t, namespace, obj.metadata.name);
        if (this.objects.has(k)) return this.send(res, 409, status(409, 'AlreadyExists', `${plural}${group ? `.${group}` : ''} "${obj.metadata.name}" already exists`, { name: obj.metadata.name, kind: plural }));
        if (url.searchParams.get('dryRun') === 'All') return this.send(res, 201, obj);
        if (this.hasStatusSubresource(t) && t.crd) delete obj.status;
        const stored = this.stamp(obj);
        this.objects.set(k, stored);
        this.record('ADDED', t, stored);
        if (t.plural === 'customresourcedefinitions') this.registerCrd(stored);
        return this.send(res, 201, stored);
      }
      return this.send(res, 405, status(405, 'MethodNotAllowed', `${method} is not allowed on a collection`));
    }

    const k = this.key(t, namespace, name);
    const existing = this.objects.get(k);
    if (sub === 'log' && plural === 'pods') {
      if (!existing) return this.send(res, 404, status(404, 'NotFound', `pods "${name}" not found`, { name, kind: 'pods' }));
      const container = url.searchParams.get('container') ?? existing.spec?.containers?.[0]?.name;
      let lines = this.logs.get(`${namespace}/${name}/${container}`) ?? [];
      const sinceTime = url.searchParams.get('sinceTime');
      const sinceSeconds = url.searchParams.get('sinceSeconds');
      if (sinceTime) lines = lines.filter((l) => l.time >= new Date(sinceTime));
      if (sinceSeconds) lines = lines.filter((l) => l.time.getTime() >= Date.now() - Number(sinceSeconds) * 1000);
      const stamp = (l: { time: Date; text: string }) => (url.searchParams.get('timestamps') === 'true' ? `${l.time.toISOString()} ${l.text}` : l.text);
      let text = lines.map(stamp).join('\n');
      if (text) text += '\n';
      const limit = url.searchParams.get('limitBytes');
      if (limit) text = Buffer.from(text).subarray(0, Number(limit)).toString('utf8');
      if (url.searchParams.get('follow') !== 'true') return this.send(res, 200, text, 'text/plain');
      // follow: what is there, then each new line as it is logged, until the client goes.
      res.writeHead(200, { 'content-type': 'text/plain', 'transfer-encoding': 'chunked' });
      res.flushHeaders();
      if (text) res.write(text);
      const key = `${namespace}/${name}/${container}`;
      const followers = this.logFollowers.get(key) ?? new Set();
      this.logFollowers.set(key, followers);
      followers.add(res);
      res.on('close', () => followers.delete(res));
      return;
    }
    if (!existing && method !== 'PUT') {
      return this.send(res, 404, status(404, 'NotFound', `${plural}${group ? `.${group}` : ''} "${name}" not found`, { name, group, kind: plural }));
    }
    switch (method) {
      case 'GET':
        return this.send(res, 200, existing);
      case 'DELETE': {
        const marked = this.deleteObject(t, k);
        if (marked) return this.send(res, 200, marked);
        return this.send(res, 200, { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Success', details: { name, kind: plural, uid: existing!.metadata.uid } });
      }
      case 'PUT': {
        const obj = JSON.parse(body) as KubeObject;
        if (!existing) return this.send(res, 404, status(404, 'NotFound', `${plural} "${name}" not found`, { name, kind: plural }));
        if (obj.metadata?.resourceVersion && obj.metadata.resourceVersion !== existing.metadata.resourceVersion) {
          return this.send(
            res,
            409,
            status(409, 'Conflict', `Operation cannot be fulfilled on ${plural}${group ? `.${group}` : ''} "${name}": the object has been modified; please apply your changes to the latest version and try again`, { name, kind: plural }),
          );
        }
        // The status subresource writes only status; the main resource keeps status as it was.
        const next = sub === 'status' ? { ...existing, status: obj.status } : { ...obj, status: existing.status, metadata: { ...obj.metadata, namespace } };
        if (url.searchParams.get('dryRun') === 'All') return this.send(res, 200, next);
        const stored = this.stamp(next as KubeObject, existing);
        this.objects.set(k, stored);
        return this.settleDeletion(res, t, k, stored);
      }
      case 'PATCH': {
        const type = String(req.headers['content-type'] ?? '');
        if (!/merge-patch\+json|strategic-merge-patch\+json/.test(type)) {
          return this.send(res, 415, status(415, 'UnsupportedMediaType', `the body of the request was in an unknown format - accepted media types include: application/merge-patch+json, application/strategic-merge-patch+json (got ${type})`));
        }
        const patch = JSON.parse(body);
        if (patch?.metadata?.resourceVersion && patch.metadata.resourceVersion !== existing!.metadata.resourceVersion) {
          return this.send(res, 409, status(409, 'Conflict', `Operation cannot be fulfilled on ${plural} "${name}": the object has been modified; please apply your changes to the latest version and try again`, { name, kind: plural }));
        }
        if (sub !== 'status' && this.hasStatusSubresource(t)) delete patch.status;
        const merged = sub === 'status' ? { ...existing!, status: mergePatch(existing!.status, patch.status) } : mergePatch(existing, patch);
        if (url.searchParams.get('dryRun') === 'All') return this.send(res, 200, merged);
        const stored = this.stamp(merged as KubeObject, existing);
        this.objects.set(k, stored);
        return this.settleDeletion(res, t, k, stored);
      }
      default:
        return this.send(res, 405, status(405, 'MethodNotAllowed', `${method} is not allowed`));
    }
  }

  /** An object marked for deletion goes once its last finalizer is removed. */
  private settleDeletion(res: http.ServerResponse, t: ResourceType, key: string, stored: KubeObject): void {
    if (stored.metadata.deletionTimestamp && !stored.metadata.finalizers?.length) {
      this.objects.delete(key);
      this.gone(t, stored);
    } else this.record('MODIFIED', t, stored);
    this.send(res, 200, stored);
  }

  addLog(namespace: string, pod: string, container: string, text: string, time = new Date()): void {
    const key = `${namespace}/${pod}/${container}`;
    const lines = this.logs.get(key) ?? [];
    lines.push({ time, text });
    this.logs.set(key, lines);
    for (const res of this.logFollowers.get(key) ?? []) res.write(text + '\n');
  }
}

/** The bookinfo sample of the wasme tutorial, with istiod at `istioVersion` and Istio's CRDs. */
export function seedBookinfo(api: KubeApiDouble, options: { istioVersion?: string; wasmPlugin?: boolean; filterDeployment?: boolean } = {}): void {
  const istioVersion = options.istioVersion ?? '1.8.1';
  const crd = (group: string, plural: string, kind: string, version: string) =>
    api.put({
      apiVersion: 'apiextensions.k8s.io/v1',
      kind: 'CustomResourceDefinition',
      metadata: { name: `${plural}.${group}` },
      spec: { group, scope: 'Namespaced', names: { plural, kind, singular: kind.toLowerCase() }, versions: [{ name: version, served: true, storage: true }] },
    });
  crd('networking.istio.io', 'envoyfilters', 'EnvoyFilter', 'v1alpha3');
  if (options.wasmPlugin) crd('extensions.istio.io', 'wasmplugins', 'WasmPlugin', 'v1alpha1');
  if (options.filterDeployment) crd('wasme.io', 'filterdeployments', 'FilterDeployment', 'v1');
  for (const ns of ['istio-system', 'bookinfo']) api.put({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns, labels: ns === 'bookinfo' ? { 'istio-injection': 'enabled' } : {} } });
  api.put({
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'istiod', namespace: 'istio-system', labels: { app: 'istiod' } },
    spec: {
      selector: { matchLabels: { app: 'istiod' } },
      template: { metadata: { labels: { app: 'istiod' } }, spec: { containers: [{ name: 'discovery', image: `docker.io/istio/pilot:${istioVersion}` }] } },
    },
  });
  const workloads: [string, string, string][] = [
    ['details-v1', 'details', 'v1'],
    ['productpage-v1', 'productpage', 'v1'],
    ['ratings-v1', 'ratings', 'v1'],
    ['reviews-v1', 'reviews', 'v1'],
    ['reviews-v2', 'reviews', 'v2'],
    ['reviews-v3', 'reviews', 'v3'],
  ];
  for (const [name, app, version] of workloads) {
    const labels = { app, version };
    api.put({
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name, namespace: 'bookinfo', labels },
      spec: {
        replicas: 1,
        selector: { matchLabels: labels },
        template: {
          metadata: { labels, annotations: name === 'reviews-v3' ? { 'sidecar.istio.io/userVolume': '[{"name":"extra","emptyDir":{}}]' } : {} },
          spec: { serviceAccountName: `bookinfo-${app}`, containers: [{ name: app, image: `docker.io/istio/examples-bookinfo-${app}-${version}:1.16.2`, ports: [{ containerPort: 9080 }] }] },
        },
      },
    });
    api.put({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: `${name}-5f8c9d7b6-x${app.length}${version}`, namespace: 'bookinfo', labels },
      spec: { containers: [{ name: app }, { name: 'istio-proxy', image: `docker.io/istio/proxyv2:${istioVersion}` }] },
      status: { phase: 'Running' },
    });
  }
}
