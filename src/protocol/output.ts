import { redact } from '../redact.js';

/**
 * The one place that writes to stdout and stderr. One JSON document a line, secrets masked,
 * stdout's backpressure respected: a caller awaiting `line` waits while the pipe is full.
 */
export class Output {
  private drain: Promise<void> | undefined;
  private release: (() => void) | undefined;
  private closed = false;
  private errClosed = false;

  constructor(
    private readonly out: NodeJS.WritableStream = process.stdout,
    private readonly err: NodeJS.WritableStream = process.stderr,
  ) {
    // A reader that went away (EPIPE) is not an error of ours: stop writing, quietly.
    out.on('error', () => {
      this.closed = true;
      this.release?.(); // a write waiting for 'drain' would otherwise wait forever
    });
    // Logs are best effort: a stderr its reader closed (EPIPE, EBADF) must not crash the sync, nor
    // feed an error handler that logs to stderr again. stdout, the data, goes on.
    err.on('error', () => {
      this.errClosed = true;
    });
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Lines not yet handed to stdout: one write per batch, not per record (a syscall each on a pipe). */
  private pending: string[] = [];
  private pendingBytes = 0;
  private scheduled = false;

  /** Writes one message as a JSON line on stdout, in order; waits while the reader is behind. */
  async line(message: unknown): Promise<void> {
    if (this.closed) return;
    if (this.drain) await this.drain;
    const text = redact(JSON.stringify(message)) + '\n';
    this.pending.push(text);
    this.pendingBytes += text.length;
    if (this.pendingBytes >= 64 * 1024) this.writePending();
    else if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.writePending());
    }
  }

  private writePending(): void {
    this.scheduled = false;
    if (!this.pending.length || this.closed) return;
    const ok = this.out.write(this.pending.join(''));
    this.pending = [];
    this.pendingBytes = 0;
    if (!ok && !this.drain) {
      this.drain = new Promise<void>((resolve) => {
        this.release = () => {
          this.drain = undefined;
          this.release = undefined;
          resolve();
        };
        this.out.once('drain', this.release);
      });
    }
  }

  /** Plain text on stdout (--help, --version, --about markdown); never during a sync. */
  async text(text: string): Promise<void> {
    if (this.closed) return;
    this.writePending();
    this.out.write(redact(text.endsWith('\n') ? text : `${text}\n`));
    return this.flush();
  }

  /** A human-readable line on stderr (Singer logs). */
  log(text: string): void {
    this.clearProgress();
    if (this.errClosed) return;
    this.err.write(redact(text) + '\n');
  }

  /** Whether a person is watching stderr (a live progress line makes sense). */
  get interactive(): boolean {
    return (this.err as NodeJS.WriteStream).isTTY === true;
  }

  private progressShown = false;

  /** Rewrites the one live progress line on a terminal's stderr. */
  progress(text: string): void {
    if (!this.interactive || this.errClosed) return;
    this.err.write(`\r\x1b[K${redact(text)}`);
    this.progressShown = true;
  }

  clearProgress(): void {
    if (!this.progressShown || this.errClosed) return;
    this.err.write('\r\x1b[K');
    this.progressShown = false;
  }

  /** Resolves once everything written so far has left the process's buffer. */
  flush(): Promise<void> {
    this.writePending();
    return new Promise((resolve) => (this.closed ? resolve() : this.out.write('', () => resolve())));
  }
}
