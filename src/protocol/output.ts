import { redact } from '../redact.js';

/**
 * The one place that writes to stdout and stderr. One JSON document a line, secrets masked,
 * stdout's backpressure respected: a caller awaiting `line` waits while the pipe is full.
 */
export class Output {
  private drain: Promise<void> | undefined;
  private closed = false;

  constructor(
    private readonly out: NodeJS.WritableStream = process.stdout,
    private readonly err: NodeJS.WritableStream = process.stderr,
  ) {
    // A reader that went away (EPIPE) is not an error of ours: stop writing, quietly.
    out.on('error', () => {
      this.closed = true;
    });
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Writes one message as a JSON line on stdout. */
  async line(message: unknown): Promise<void> {
    if (this.closed) return;
    if (this.drain) await this.drain;
    const ok = this.out.write(redact(JSON.stringify(message)) + '\n');
    if (!ok && !this.drain) {
      this.drain = new Promise<void>((resolve) => this.out.once('drain', () => { this.drain = undefined; resolve(); }));
    }
  }

  /** A human-readable line on stderr (Singer logs, progress). */
  log(text: string): void {
    this.err.write(redact(text) + '\n');
  }

  /** Resolves once everything written so far has left the process's buffer. */
  flush(): Promise<void> {
    return new Promise((resolve) => (this.closed ? resolve() : this.out.write('', () => resolve())));
  }
}
