import type * as K8s from '@kubernetes/client-node' with { 'resolution-mode': 'import' };

// The client library is an ES module; this CommonJS build loads it on first use (which also keeps it off
// the start-up path of commands that never talk to a cluster).
let loaded: Promise<typeof K8s> | undefined;
export function loadK8s(): Promise<typeof K8s> {
  return (loaded ??= import('@kubernetes/client-node'));
}
import { UserError } from '../errors';

export interface ClusterOptions {
  /** A kubeconfig file (default: $KUBECONFIG, which may list several paths, else ~/.kube/config). */
  kubeconfig?: string;
  /** A context by name (default: the current context). */
  context?: string;
}

/** What an API call was about, for error messages: "create envoyfilters in bookinfo". */
export interface ClusterOperation {
  verb: 'get' | 'list' | 'create' | 'update' | 'patch' | 'delete';
  resource: string;
  namespace?: string;
  name?: string;
}

export type KubeObject = { apiVersion?: string; kind?: string; metadata?: K8s.V1ObjectMeta; [key: string]: any };

/**
 * The cluster the studio talks to: the kubeconfig's current (or named) context through the real client
 * library, with every failure turned into an error that names the context, the server, and whether the
 * cluster is unreachable, refused the credentials, or RBAC forbids the verb on the resource.
 */
export class Cluster {
  readonly core: K8s.CoreV1Api;
  readonly apps: K8s.AppsV1Api;
  readonly custom: K8s.CustomObjectsApi;
  readonly extensions: K8s.ApiextensionsV1Api;
  readonly rbac: K8s.RbacAuthorizationV1Api;
  readonly coordination: K8s.CoordinationV1Api;
  /** Merge-patch calls need the content type set per request. */
  readonly mergePatch: K8s.ConfigurationOptions;
  /** API requests made through this object, for benchmarks. */
  requests = 0;

  private constructor(
    readonly k8s: typeof K8s,
    readonly config: K8s.KubeConfig,
    readonly context: string,
    readonly server: string,
  ) {
    this.core = config.makeApiClient(k8s.CoreV1Api);
    this.apps = config.makeApiClient(k8s.AppsV1Api);
    this.custom = config.makeApiClient(k8s.CustomObjectsApi);
    this.extensions = config.makeApiClient(k8s.ApiextensionsV1Api);
    this.rbac = config.makeApiClient(k8s.RbacAuthorizationV1Api);
    this.coordination = config.makeApiClient(k8s.CoordinationV1Api);
    this.mergePatch = k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch);
  }

  static async open(options: ClusterOptions = {}): Promise<Cluster> {
    const k8s = await loadK8s();
    const config = new k8s.KubeConfig();
    const source = options.kubeconfig ?? process.env.KUBECONFIG ?? '~/.kube/config';
    try {
      if (options.kubeconfig) config.loadFromFile(options.kubeconfig);
      else config.loadFromDefault();
    } catch (err) {
      throw new UserError(`The kubeconfig ${source} cannot be read: ${(err as Error).message.split('\n')[0]}.`, 'Check the file (kubectl config view), or point --kubeconfig at a good one.', 'E_KUBECONFIG');
    }
    if (options.context) {
      if (!config.getContexts().some((c) => c.name === options.context)) {
        throw new UserError(
          `The kubeconfig has no context "${options.context}".`,
          `Its contexts: ${config.getContexts().map((c) => c.name).join(', ') || 'none'}.`,
          'E_KUBECONFIG',
        );
      }
      config.setCurrentContext(options.context);
    }
    const context = config.getCurrentContext();
    const cluster = config.getCurrentCluster();
    if (!context || !cluster) {
      throw new UserError(`The kubeconfig ${source} has no current context with a cluster.`, 'Choose one with --context, or `kubectl config use-context NAME`.', 'E_KUBECONFIG');
    }
    return new Cluster(k8s, config, context, cluster.server);
  }

  describe(): string {
    return `context "${this.context}" (${this.server})`;
  }

  /** Runs one API call, counting it, and explains its failure. */
  async call<T>(op: ClusterOperation, fn: () => Promise<T>): Promise<T> {
    this.requests++;
    try {
      return await fn();
    } catch (err) {
      throw this.explain(op, err);
    }
  }

  /** Like `call`, but a 404 is `undefined`. */
  async find<T>(op: ClusterOperation, fn: () => Promise<T>): Promise<T | undefined> {
    try {
      return await this.call(op, fn);
    } catch (err) {
      if (err instanceof ClusterError && err.status === 404) return undefined;
      throw err;
    }
  }

  explain(op: ClusterOperation, err: unknown): Error {
    const what = `${op.verb} ${op.resource}${op.name ? ` "${op.name}"` : ''}${op.namespace ? ` in namespace ${op.namespace}` : ''}`;
    if (err instanceof this.k8s.ApiException) {
      const code = err.code;
      let message = '';
      let reason = '';
      try {
        const body = typeof err.body === 'string' ? JSON.parse(err.body) : err.body;
        message = body?.message ?? '';
        reason = body?.reason ?? '';
      } catch {
        message = String(err.body ?? '').slice(0, 200);
      }
      const where = this.describe();
      switch (code) {
        case 401:
          return new ClusterError(`The cluster at ${where} refused the credentials (HTTP 401) to ${what}.`, 'Log in again (refresh the token, or the exec plugin), then retry.', code, reason, op);
        case 403:
          return new ClusterError(
            `RBAC forbids you to ${op.verb} ${op.resource}${op.namespace ? ` in namespace ${op.namespace}` : ''} on ${where}: ${message}`,
            `Ask for a Role that allows "${op.verb}" on "${op.resource}", or use a context that has it.`,
            code,
            reason,
            op,
          );
        case 404:
          return new ClusterError(`${what}: not found on ${where}${message ? ` (${message})` : ''}.`, undefined, code, reason, op);
        case 409:
          return new ClusterError(`${what} on ${where} conflicted with another change (${message}).`, 'Someone changed it meanwhile; run the command again.', code, reason, op);
        default:
          return new ClusterError(`${what} failed on ${where}: HTTP ${code}${message ? ` (${message})` : ''}.`, undefined, code, reason, op);
      }
    }
    const e = err as Error & { code?: string; cause?: { code?: string } };
    const code = e.code ?? e.cause?.code;
    if (code === 'ECONNREFUSED' || code === 'ENOTFOUND' || code === 'ETIMEDOUT' || code === 'EHOSTUNREACH' || /ECONNREFUSED|ENOTFOUND|socket hang up|fetch failed/.test(e.message ?? '')) {
      return new ClusterError(`The cluster at ${this.describe()} is unreachable (${code ?? e.message}).`, 'Check that the cluster runs and that this kube-context points at it (kubectl cluster-info).', 0, 'Unreachable', op);
    }
    return err instanceof Error ? err : new Error(String(err));
  }
}

/** A failed API call, explained; `status` is the HTTP status (0 when the server was not reached). */
export class ClusterError extends UserError {
  constructor(
    message: string,
    hint: string | undefined,
    readonly status: number,
    readonly reason: string,
    readonly operation: ClusterOperation,
  ) {
    super(message, hint, status === 403 ? 'E_FORBIDDEN' : status === 0 ? 'E_CLUSTER_UNREACHABLE' : status === 409 ? 'E_CONFLICT' : 'E_CLUSTER');
    this.name = 'ClusterError';
  }
}

