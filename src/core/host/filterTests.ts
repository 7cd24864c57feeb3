import { promises as fs } from 'node:fs';
import * as yaml from 'js-yaml';
import { UserError } from '../errors';
import type { HeaderPairs } from './abi';
import { ProxyWasmVm, VmFailure, type FilterLog } from './vm';

/** The default name of a project's filter tests. */
export const FILTER_TEST_FILE = 'filter.test.yaml';

type HeaderExpectation = Record<string, string | boolean | null>;

/** One declarative test: a request, what the upstream answers, the configuration, and what must come out. */
export interface FilterTestCase {
  name: string;
  /** 1-based line of the case in its file, for editors. */
  line: number;
  config?: string;
  configJson?: unknown;
  rootId?: string;
  request?: { method?: string; path?: string; headers?: Record<string, string>; body?: string };
  upstream?: { status?: number; headers?: Record<string, string>; body?: string };
  /** Answers for HTTP callouts, by upstream (cluster) name. */
  callouts?: Record<string, { status?: number; headers?: Record<string, string>; body?: string }>;
  expect: {
    status?: number;
    /** Response headers: a string must be equal, true present, null absent. */
    headers?: HeaderExpectation;
    /** Headers the upstream received, with the same rules. */
    upstreamHeaders?: HeaderExpectation;
    body?: string;
    bodyContains?: string;
    localReply?: boolean;
    /** Substrings that must appear in the filter's log lines. */
    logs?: string[];
  };
}

export interface FilterTestResult {
  name: string;
  line: number;
  ok: boolean;
  failures: string[];
  durationMs: number;
  logs: FilterLog[];
}

const CASE_KEYS = new Set(['name', 'config', 'configJson', 'rootId', 'request', 'upstream', 'callouts', 'expect']);

/** Reads a test file; errors name the file, the line and what is wrong. */
export async function loadFilterTests(file: string): Promise<FilterTestCase[]> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new UserError(`There is no ${file}.`, `Write filter tests in ${FILTER_TEST_FILE} (see the template's), or give the file with --file.`, 'E_NO_TESTS');
    }
    throw err;
  }
  return parseFilterTests(text, file);
}

export function parseFilterTests(text: string, file = FILTER_TEST_FILE): FilterTestCase[] {
  let doc: unknown;
  try {
    doc = yaml.load(text);
  } catch (err) {
    throw new UserError(`${file} is not valid YAML: ${(err as Error).message.split('\n')[0]}`, undefined, 'E_BAD_TESTS');
  }
  const tests = (doc as { tests?: unknown })?.tests;
  if (!Array.isArray(tests)) throw new UserError(`${file} has no "tests:" list.`, 'Start the file with "tests:" and one "- name: …" entry per test.', 'E_BAD_TESTS');
  const lines = text.split('\n');
  let searchFrom = 0;
  return tests.map((t: Record<string, unknown>, i) => {
    const where = `${file}, test ${i + 1}`;
    if (!t || typeof t !== 'object' || typeof t.name !== 'string') throw new UserError(`${where} has no name.`, 'Give each test a "name:".', 'E_BAD_TESTS');
    for (const key of Object.keys(t)) {
      if (!CASE_KEYS.has(key)) throw new UserError(`${where} ("${t.name}") has an unknown key "${key}".`, `Known keys: ${[...CASE_KEYS].join(', ')}.`, 'E_BAD_TESTS');
    }
    if (!t.expect || typeof t.expect !== 'object') throw new UserError(`${where} ("${t.name}") says nothing it expects.`, 'Add "expect:" with status, headers, body, localReply or logs.', 'E_BAD_TESTS');
    if (t.config !== undefined && t.configJson !== undefined) throw new UserError(`${where} ("${t.name}") has both config and configJson.`, undefined, 'E_BAD_TESTS');
    // The case's line: where its "name:" appears, in order.
    let line = 0;
    for (let n = searchFrom; n < lines.length; n++) {
      if (/^\s*-?\s*name\s*:/.test(lines[n]!) && lines[n]!.includes(t.name as string)) {
        line = n + 1;
        searchFrom = n + 1;
        break;
      }
    }
    return { ...(t as unknown as FilterTestCase), line };
  });
}

/** Read through a function: callbacks may set it after the compiler last looked. */
function localReplyOf(stream: { localResponse?: import('./vm').LocalResponse }) {
  return stream.localResponse;
}

function toPairs(headers: Record<string, string> | undefined): HeaderPairs {
  return Object.entries(headers ?? {}).map(([k, v]) => [k.toLowerCase(), String(v)]);
}

function checkHeaders(what: string, actual: HeaderPairs, expected: HeaderExpectation | undefined, failures: string[]): void {
  for (const [name, want] of Object.entries(expected ?? {})) {
    const got = actual.filter(([k]) => k.toLowerCase() === name.toLowerCase()).map(([, v]) => v);
    if (want === null || want === false) {
      if (got.length) failures.push(`${what} "${name}" should be absent, but is "${got.join(', ')}"`);
    } else if (want === true) {
      if (!got.length) failures.push(`${what} "${name}" should be present`);
    } else if (!got.includes(String(want))) {
      failures.push(got.length ? `${what} "${name}" is "${got.join(', ')}", expected "${want}"` : `${what} "${name}" is missing, expected "${want}"`);
    }
  }
}

/**
 * Runs one case in an in-process VM, with no network: the request goes through the filter, the declared
 * upstream answers, callouts get their declared answers, and the result is compared with `expect`.
 */
export function runFilterTest(module: WebAssembly.Module, test: FilterTestCase, defaults: { rootId?: string } = {}): FilterTestResult {
  const started = Date.now();
  const logs: FilterLog[] = [];
  const failures: string[] = [];
  try {
    const config = test.configJson !== undefined ? JSON.stringify(test.configJson) : (test.config ?? '');
    const vm = ProxyWasmVm.create(module, { rootId: test.rootId ?? defaults.rootId ?? 'add_header', pluginConfiguration: config, onLog: (l) => logs.push(l) });
    if (!vm.start()) {
      failures.push('the filter did not start (on_vm_start or on_configure returned false)');
    } else {
      const req = test.request ?? {};
      const stream = vm.createStream({ method: req.method ?? 'GET', path: req.path ?? '/', authority: 'localhost', scheme: 'http', sourceAddress: '127.0.0.1', sourcePort: 40000 });
      const answerCallouts = () => {
        for (const call of vm.pendingCalls.splice(0)) {
          const answer = test.callouts?.[call.upstream];
          vm.onHttpCallResponse(
            call,
            answer ? { headers: [[':status', String(answer.status ?? 200)], ...toPairs(answer.headers)], body: Buffer.from(answer.body ?? ''), trailers: [] } : undefined,
          );
        }
      };
      const requestBody = Buffer.from(req.body ?? '');
      const headers: HeaderPairs = [[':method', req.method ?? 'GET'], [':path', req.path ?? '/'], [':authority', 'localhost'], [':scheme', 'http'], ...toPairs(req.headers)];
      vm.onRequestHeaders(stream, headers, requestBody.length === 0);
      answerCallouts();
      if (!stream.localResponse && requestBody.length) {
        vm.onRequestBody(stream, requestBody, true);
        answerCallouts();
      }
      let status: number;
      let responseHeaders: HeaderPairs;
      let body: string;
      if (stream.localResponse) {
        status = stream.localResponse.status;
        responseHeaders = stream.localResponse.headers;
        body = stream.localResponse.body.toString('utf8');
      } else {
        checkHeaders('upstream request header', stream.requestHeaders, test.expect.upstreamHeaders, failures);
        const up = test.upstream ?? {};
        const upstreamBody = Buffer.from(up.body ?? '');
        vm.onResponseHeaders(stream, [[':status', String(up.status ?? 200)], ...toPairs(up.headers)], upstreamBody.length === 0);
        answerCallouts();
        if (!stream.localResponse && upstreamBody.length) {
          vm.onResponseBody(stream, upstreamBody, true);
          answerCallouts();
        }
        const local = localReplyOf(stream);
        status = local ? local.status : Number(stream.responseHeaders.find(([k]) => k === ':status')?.[1] ?? up.status ?? 200);
        responseHeaders = local ? local.headers : stream.responseHeaders;
        body = local ? local.body.toString('utf8') : stream.responseBody.length || upstreamBody.length === 0 ? stream.responseBody.toString('utf8') : upstreamBody.toString('utf8');
      }
      vm.finishStream(stream);
      const e = test.expect;
      if (e.status !== undefined && e.status !== status) failures.push(`status is ${status}, expected ${e.status}`);
      checkHeaders('response header', responseHeaders, e.headers, failures);
      if (e.body !== undefined && e.body !== body) failures.push(`body is ${JSON.stringify(body.slice(0, 200))}, expected ${JSON.stringify(e.body)}`);
      if (e.bodyContains !== undefined && !body.includes(e.bodyContains)) failures.push(`body does not contain ${JSON.stringify(e.bodyContains)}`);
      if (e.localReply !== undefined && e.localReply !== !!localReplyOf(stream)) failures.push(e.localReply ? 'expected a local reply from the filter' : 'the filter sent a local reply');
      for (const want of e.logs ?? []) {
        if (!logs.some((l) => l.message.includes(want))) failures.push(`no log line contains ${JSON.stringify(want)}`);
      }
    }
  } catch (err) {
    failures.push(err instanceof VmFailure ? err.message : `the test could not run: ${(err as Error).message}`);
  }
  return { name: test.name, line: test.line, ok: failures.length === 0, failures, durationMs: Date.now() - started, logs };
}

/** TAP version 13, which CI systems and test reporters read. */
export function formatTap(results: FilterTestResult[]): string {
  const out = ['TAP version 13', `1..${results.length}`];
  results.forEach((r, i) => {
    out.push(`${r.ok ? 'ok' : 'not ok'} ${i + 1} - ${r.name}`);
    if (!r.ok) {
      out.push('  ---', `  line: ${r.line}`, '  failures:', ...r.failures.map((f) => `    - ${JSON.stringify(f)}`), '  ...');
    }
  });
  const failed = results.filter((r) => !r.ok).length;
  out.push(`# tests ${results.length}`, `# pass ${results.length - failed}`, `# fail ${failed}`);
  return out.join('\n') + '\n';
}

function xml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** JUnit XML, for CI systems that read that instead. */
export function formatJunit(results: FilterTestResult[], suite: string): string {
  const failed = results.filter((r) => !r.ok).length;
  const time = (ms: number) => (ms / 1000).toFixed(3);
  const total = results.reduce((n, r) => n + r.durationMs, 0);
  const cases = results.map((r) => {
    const open = `    <testcase classname="${xml(suite)}" name="${xml(r.name)}" time="${time(r.durationMs)}"`;
    if (r.ok) return `${open}/>`;
    return `${open}>\n      <failure message="${xml(r.failures[0] ?? 'failed')}">${xml(r.failures.join('\n'))}</failure>\n    </testcase>`;
  });
  return `<?xml version="1.0" encoding="UTF-8"?>\n<testsuites tests="${results.length}" failures="${failed}" time="${time(total)}">\n  <testsuite name="${xml(suite)}" tests="${results.length}" failures="${failed}" time="${time(total)}">\n${cases.join('\n')}\n  </testsuite>\n</testsuites>\n`;
}
