import type { Cluster } from './cluster';

/** Something istio-proxy said about a filter, explained. */
export interface Finding {
  pod: string;
  namespace: string;
  container: string;
  time?: string;
  kind: FindingKind;
  /** The filter it concerns (its id, root id, or the module's digest), when the line names it. */
  filter?: string;
  line: string;
  advice: string;
  severity: 'error' | 'warning';
  /** The filter's own source position the line points to (an abort's or a panic's), relative to its project. */
  source?: SourceLocation;
}

export interface SourceLocation {
  file: string;
  line: number;
  column?: number;
}

export type FindingKind =
  | 'cache-race'
  | 'abi-unsupported'
  | 'module-load-failed'
  | 'vm-start-failed'
  | 'config-rejected'
  | 'image-pull-unauthorized'
  | 'image-digest-mismatch'
  | 'registry-unreachable'
  | 'image-fetch-failed'
  | 'filter-crashed'
  | 'filter-critical'
  | 'filter-error';

interface Pattern {
  kind: FindingKind;
  /** Log formats vary across Istio versions; each alternative is one that a version printed. */
  match: RegExp;
  filter?: (m: RegExpExecArray) => string | undefined;
  advice: string;
  severity: 'error' | 'warning';
}

/**
 * Every known failure line, in one table, most specific first. Each has a test case in
 * test/unit/proxyFindings.test.ts with a line as istio-proxy printed it.
 */
export const PATTERNS: Pattern[] = [
  {
    kind: 'cache-race',
    match: /Error adding\/updating listener\(s\).*Invalid path: \/var\/local\/lib\/wasme-cache\/([0-9a-f]{64})/,
    filter: (m) => `sha256:${m[1]}`,
    advice:
      "The sidecar loaded the EnvoyFilter before wasme's cache had written the module to this node (the cache raced the sidecar). Restart the pod once the cache has the image (kubectl rollout restart), or deploy with --mode wasmplugin, where Istio fetches the module itself.",
    severity: 'error',
  },
  {
    kind: 'abi-unsupported',
    match: /(Missing or unknown Proxy-Wasm ABI version|Unsupported Proxy-Wasm ABI version|ABI version mismatch)/,
    advice: "The module's proxy-wasm ABI is not one this Envoy loads. Build with the SDK flavour for this Istio (init --sdk wasme for Istio 1.7–1.9; modern for 1.10+).",
    severity: 'error',
  },
  {
    kind: 'image-pull-unauthorized',
    match: /(?:cannot fetch Wasm module|failed to fetch Wasm module|wasm image fetch).*?(?:oci:\/\/)?([\w.:/-]+)?.*(UNAUTHORIZED|unauthorized|authentication required|denied)/i,
    filter: (m) => m[1],
    advice: 'The registry refused Istio the image. Give the WasmPlugin an imagePullSecret with credentials for the registry (deploy creates one from your login when the image is private).',
    severity: 'error',
  },
  {
    kind: 'image-digest-mismatch',
    match: /(module digest does not match|digest mismatch|checksum mismatch|wasm module hash does not match)/i,
    advice: 'The image in the registry is not the one deployed (its manifest digest changed). Deploy again so the sha256 pin matches, or push the tag you meant.',
    severity: 'error',
  },
  {
    kind: 'registry-unreachable',
    match: /(?:cannot fetch Wasm module|failed to fetch Wasm module|wasm image fetch).*(no such host|connection refused|i\/o timeout|dial tcp|TLS handshake timeout|x509)/i,
    advice: 'istio-proxy cannot reach the registry. Check the registry host from inside the mesh (DNS, egress policy, TLS); for a private registry with a self-signed certificate, Istio needs it trusted.',
    severity: 'error',
  },
  {
    kind: 'image-fetch-failed',
    match: /(cannot fetch Wasm module|failed to fetch Wasm module|error in converting the wasm config to local)/i,
    advice: 'Istio could not fetch the module. Check the image URL and that the registry serves it (wasm-filter list --published).',
    severity: 'error',
  },
  {
    kind: 'config-rejected',
    match: /(Wasm VM failed to configure|Failed to configure Wasm|plugin configure failed|on_configure(?:\(\))? (?:failed|returned false)|configuration (?:was )?rejected)/i,
    advice: "The filter rejected its configuration (proxy_on_configure returned false). Check --config against what the filter expects; `wasm-filter run --config …` shows the filter's own log lines about it.",
    severity: 'error',
  },
  {
    kind: 'vm-start-failed',
    match: /(Wasm VM failed to (?:start|initialize)|Failed to start base Wasm VM|Failed to initialize Wasm code|on_vm_start(?:\(\))? failed|Plugin configured to fail closed failed to load)/i,
    advice: 'The VM started but the filter failed in its start-up (on_vm_start or _start). Run it locally with `wasm-filter run` to see why.',
    severity: 'error',
  },
  {
    kind: 'module-load-failed',
    match: /(Failed to load Wasm module|Unable to create Wasm (?:VM|code)|Failed to create Wasm VM|Failed to load Wasm code|Wasm module .* is not valid)/i,
    advice: 'Envoy could not load the module (not valid WebAssembly, or missing imports). Validate it with `wasm-filter build` and check the SDK against this Istio.',
    severity: 'error',
  },
  {
    kind: 'filter-crashed',
    match: /(?:Function: (\w+) failed: (?:Uncaught )?RuntimeError|wasm trap|Wasm VM (?:crashed|failed)(?: in (\w+))?: (?:unreachable|out of bounds|call stack exhausted))/i,
    filter: () => undefined,
    advice: 'The filter trapped (an abort, a panic, or an out-of-bounds access); Envoy stops using that VM and fails open or closed as configured. Reproduce it with `wasm-filter run` or `wasm-filter test`; the backtrace names the function.',
    severity: 'error',
  },
  {
    kind: 'filter-critical',
    match: /\[(?:critical)\].*wasm log (\S+?)(?::| )\s*(.*)$/,
    filter: (m) => m[1],
    advice: "The filter logged a critical error of its own. The message is the filter's; look at its source where it logs this.",
    severity: 'error',
  },
  {
    kind: 'filter-error',
    match: /\[(?:error)\].*wasm log (\S+?)(?::| )\s*(.*)$/,
    filter: (m) => m[1],
    advice: "The filter logged an error of its own. The message is the filter's; look at its source where it logs this.",
    severity: 'warning',
  },
];

/** Finds known failures in one log line; envoy's timestamp prefix is read when present. */
export function classifyLine(line: string): { pattern: Pattern; match: RegExpExecArray; time?: string } | undefined {
  for (const pattern of PATTERNS) {
    const match = pattern.match.exec(line);
    if (match) {
      const time = /^\[?(\d{4}-\d{2}-\d{2}[T ][\d:.]+Z?)\]?/.exec(line)?.[1] ?? /^(\d{4}-\d{2}-\d{2}T[\d:.]+Z)\s/.exec(line)?.[1];
      return { pattern, match, ...(time ? { time } : {}) };
    }
  }
  return undefined;
}

/**
 * The source position a filter's own message points to: AssemblyScript's abort ("at: assembly/index.ts(12:5)"),
 * a Rust panic ("src/lib.rs:42:10"), or a Go/C++ "file.go:33". Envoy's own "[source/…/context.cc:1102]" is not one.
 */
export function sourceLocationIn(line: string): SourceLocation | undefined {
  const own = /wasm log [^:]*:\s*(.*)$/.exec(line)?.[1] ?? line.replace(/\[[^\]]*\]/g, '');
  const as = /\bat:? ((?:[\w.-]+\/)*[\w.-]+\.ts)\((\d+):(\d+)\)/.exec(own);
  if (as) return { file: as[1]!, line: Number(as[2]), column: Number(as[3]) };
  const generic = /(?:^|[\s',(])((?:[\w.-]+\/)*[\w.-]+\.(?:rs|ts|go|cc|cpp|cxx|c|h|hpp)):(\d+)(?::(\d+))?/.exec(own);
  if (!generic || /^(source|external|bazel-out)\//.test(generic[1]!) || generic[1]!.startsWith('/rustc/')) return undefined;
  return { file: generic[1]!, line: Number(generic[2]), ...(generic[3] ? { column: Number(generic[3]) } : {}) };
}

export function findingsInLog(text: string, where: { pod: string; namespace: string; container: string }): Finding[] {
  const findings: Finding[] = [];
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    const c = classifyLine(line);
    if (!c) continue;
    const filter = c.pattern.filter?.(c.match);
    const source = sourceLocationIn(line);
    findings.push({
      ...where,
      kind: c.pattern.kind,
      line: line.trim(),
      advice: c.pattern.advice,
      severity: c.pattern.severity,
      ...(c.time ? { time: c.time } : {}),
      ...(filter ? { filter } : {}),
      ...(source ? { source } : {}),
    });
  }
  return findings;
}

/**
 * Reads istio-proxy's logs (bounded: since a time, a byte limit per pod) and Warning events of the pods
 * matching `labels` in `namespace`, and returns what they say about filters.
 */
export async function collectFindings(
  cluster: Cluster,
  options: { namespace: string; labels?: Record<string, string>; since?: Date; limitBytes?: number; filter?: string },
): Promise<Finding[]> {
  const labelSelector = Object.entries(options.labels ?? {}).map(([k, v]) => `${k}=${v}`).join(',');
  const pods = await cluster.call({ verb: 'list', resource: 'pods', namespace: options.namespace }, () =>
    cluster.core.listNamespacedPod({ namespace: options.namespace, ...(labelSelector ? { labelSelector } : {}) }),
  );
  const findings: Finding[] = [];
  for (const pod of pods.items) {
    const name = pod.metadata!.name!;
    if (!pod.spec?.containers?.some((c) => c.name === 'istio-proxy')) continue;
    const text = await cluster.call({ verb: 'get', resource: 'pods/log', namespace: options.namespace, name }, () =>
      cluster.core.readNamespacedPodLog({
        name,
        namespace: options.namespace,
        container: 'istio-proxy',
        limitBytes: options.limitBytes ?? 256 * 1024,
        ...(options.since ? { sinceSeconds: Math.max(1, Math.ceil((Date.now() - options.since.getTime()) / 1000)) } : {}),
      }),
    );
    findings.push(...findingsInLog(String(text ?? ''), { pod: name, namespace: options.namespace, container: 'istio-proxy' }));
  }
  const events = await cluster.call({ verb: 'list', resource: 'events', namespace: options.namespace }, () =>
    cluster.core.listNamespacedEvent({ namespace: options.namespace, fieldSelector: 'type=Warning' }),
  );
  const podNames = new Set(pods.items.map((p) => p.metadata!.name!));
  for (const e of events.items) {
    if (e.involvedObject?.kind !== 'Pod' || !podNames.has(e.involvedObject.name!)) continue;
    findings.push(
      ...findingsInLog(String(e.message ?? ''), { pod: e.involvedObject.name!, namespace: options.namespace, container: e.involvedObject.fieldPath ?? 'event' }).map((f) => ({
        ...f,
        ...(e.lastTimestamp ? { time: new Date(e.lastTimestamp).toISOString() } : {}),
      })),
    );
  }
  const only = options.filter;
  return only ? findings.filter((f) => !f.filter || f.filter === only || f.filter.startsWith(only)) : findings;
}
