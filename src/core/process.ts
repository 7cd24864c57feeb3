import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { CancelledError } from './errors';

export interface RunResult {
  code: number;
  output: string;
}

/**
 * Runs a program, streaming its output lines to `onLine`; kills it (and reports cancellation) when
 * the signal aborts. Output is also collected, bounded, for error messages.
 */
export function runProgram(
  command: string,
  args: string[],
  options: { cwd: string; env?: NodeJS.ProcessEnv; signal?: AbortSignal; onLine?: (line: string) => void },
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const windows = process.platform === 'win32';
    const child = spawn(command, args, {
      cwd: options.cwd,
      env: options.env ?? process.env,
      stdio: ['ignore', 'pipe', 'pipe'],
      // npm and most toolchains are .cmd shims on Windows, which only a shell runs.
      shell: windows,
    });
    let output = '';
    let pending = '';
    const onData = (chunk: Buffer) => {
      const text = chunk.toString('utf8');
      output = (output + text).slice(-64 * 1024);
      pending += text;
      const lines = pending.split(/\r?\n/);
      pending = lines.pop() ?? '';
      for (const line of lines) if (line.trim()) options.onLine?.(line);
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    const abort = () => child.kill('SIGTERM');
    options.signal?.addEventListener('abort', abort, { once: true });
    child.on('error', (err) => {
      options.signal?.removeEventListener('abort', abort);
      reject(err);
    });
    child.on('close', (code) => {
      options.signal?.removeEventListener('abort', abort);
      if (pending.trim()) options.onLine?.(pending);
      if (options.signal?.aborted) reject(new CancelledError(`${command} ${args.join(' ')}`));
      else resolve({ code: code ?? 1, output });
    });
  });
}

/** Finds a program on PATH the way a shell would, without running it. */
export async function findOnPath(command: string, env: NodeJS.ProcessEnv = process.env): Promise<string | undefined> {
  if (command.includes('/') || command.includes('\\')) {
    return (await fs.access(command).then(() => true, () => false)) ? command : undefined;
  }
  const exts = process.platform === 'win32' ? (env.PATHEXT ?? '.EXE;.CMD;.BAT').split(';') : [''];
  for (const dir of (env.PATH ?? '').split(path.delimiter)) {
    if (!dir) continue;
    for (const ext of exts) {
      const candidate = path.join(dir, command + ext);
      try {
        await fs.access(candidate, fs.constants.X_OK);
        return candidate;
      } catch {
        // not here
      }
    }
  }
  return undefined;
}
