import { describeError, isUserError } from '../core/errors';

/** Terminal output: colour only on a TTY that wants it, status lines that rewrite themselves. */
export class Output {
  readonly color: boolean;
  private statusShown = false;

  constructor(
    private readonly stdout: NodeJS.WriteStream = process.stdout,
    private readonly stderr: NodeJS.WriteStream = process.stderr,
  ) {
    this.color = !!stdout.isTTY && !process.env.NO_COLOR && process.env.TERM !== 'dumb';
  }

  private paint(code: string, text: string): string {
    return this.color ? `\u001b[${code}m${text}\u001b[0m` : text;
  }

  bold = (t: string) => this.paint('1', t);
  dim = (t: string) => this.paint('2', t);
  green = (t: string) => this.paint('32', t);
  yellow = (t: string) => this.paint('33', t);
  red = (t: string) => this.paint('31', t);

  line(text = ''): void {
    this.clearStatus();
    this.stdout.write(text + '\n');
  }

  info(text: string): void {
    this.clearStatus();
    this.stderr.write(text + '\n');
  }

  warn(text: string): void {
    this.info(this.yellow(`warning: ${text}`));
  }

  /** A progress line: rewritten in place on a terminal, printed when it changes otherwise. */
  status(text: string): void {
    if (this.stderr.isTTY) {
      this.stderr.write(`\r\u001b[2K${this.dim(text.slice(0, (this.stderr.columns ?? 80) - 1))}`);
      this.statusShown = true;
    } else if (!/… \d+s$/.test(text)) {
      this.stderr.write(text + '\n');
    }
  }

  clearStatus(): void {
    if (this.statusShown) {
      this.stderr.write('\r\u001b[2K');
      this.statusShown = false;
    }
  }

  error(err: unknown): void {
    this.clearStatus();
    const text = describeError(err);
    this.stderr.write(this.red('error: ') + text + '\n');
    if (!isUserError(err) && err instanceof Error && err.stack && process.env.WASM_FILTER_DEBUG) {
      this.stderr.write(this.dim(err.stack) + '\n');
    }
  }
}
