import * as path from 'node:path';

export type Severity = 'error' | 'warning' | 'info';

export interface BuildDiagnostic {
  severity: Severity;
  code: string;
  message: string;
  /** As the compiler named it, relative to the project folder (or ~lib/… for library code). */
  file?: string;
  line?: number;
  column?: number;
  /** The source excerpt the compiler printed under the message. */
  context: string[];
}

const ANSI = /\u001b\[[0-9;]*m/g;
const HEADER = /^(ERROR|WARNING|INFO|PEDANTIC)\s+([A-Z]*\d+):\s(.*)$/;
const LOCATION = /(?:└─\s*)?in\s+(.+?)\((\d+),(\d+)\)\s*$/;

/**
 * Reads diagnostics from asc's text output. asc 0.14 and 0.2x print a header line
 * (`ERROR TS2304: message`), a source excerpt, and a location line (`in file(line,col)`).
 */
export function parseAscOutput(text: string): BuildDiagnostic[] {
  const diagnostics: BuildDiagnostic[] = [];
  let current: BuildDiagnostic | undefined;
  for (const raw of text.replace(ANSI, '').split(/\r?\n/)) {
    const header = HEADER.exec(raw.trim());
    if (header) {
      current = {
        severity: header[1] === 'ERROR' ? 'error' : header[1] === 'WARNING' ? 'warning' : 'info',
        code: header[2]!,
        message: header[3]!.trim(),
        context: [],
      };
      diagnostics.push(current);
      continue;
    }
    if (!current) continue;
    const location = LOCATION.exec(raw);
    if (location && current.file === undefined) {
      current.file = location[1]!;
      current.line = Number(location[2]);
      current.column = Number(location[3]);
      continue;
    }
    if (/^FAILURE\b/.test(raw.trim())) {
      current = undefined;
      continue;
    }
    const trimmed = raw.replace(/\s+$/, '');
    if (trimmed && trimmed.trim() !== ':' && current.file === undefined) current.context.push(trimmed);
  }
  return diagnostics;
}

/**
 * One line a diagnostic, tsc style (`file:line:col - error CODE: message`), which the extension's
 * problem matcher reads; the compiler's source excerpt follows, indented.
 */
export function formatDiagnostic(d: BuildDiagnostic, options: { projectDir?: string; absolutePaths?: boolean } = {}): string {
  let where = '';
  if (d.file) {
    const file =
      options.absolutePaths && options.projectDir && !d.file.startsWith('~lib/') ? path.resolve(options.projectDir, d.file) : d.file;
    where = `${file}:${d.line ?? 1}:${d.column ?? 1} - `;
  }
  const head = `${where}${d.severity} ${d.code}: ${d.message}`;
  return [head, ...d.context.map((c) => `    ${c}`)].join('\n');
}
