/**
 * Presence must never take a page down, so failures are reported instead of
 * thrown, and only once per kind of failure until that kind recovers: a Redis
 * outage or a throwing `getUser` gives one message, not one per request.
 */
export class ErrorReporter {
  private readonly active = new Set<string>();

  constructor(private readonly sink: (error: Error) => void) {}

  report(kind: string, error: unknown): void {
    if (this.active.has(kind)) return;
    this.active.add(kind);
    const err = error instanceof Error ? error : new Error(String(error));
    try {
      this.sink(err);
    } catch {
      // A failing error handler must not turn a reported failure into a crash.
    }
  }

  /** Marks `kind` healthy again, so its next failure is reported. */
  recovered(kind: string): void {
    if (this.active.size !== 0) this.active.delete(kind);
  }
}

export function defaultErrorSink(error: Error): void {
  console.warn(`[express-online-now] ${error.message}`);
}
