// A Server-Sent Events reader over fetch, for tests: what an EventSource would
// receive, kept in order, with a way to wait for the next matching event.
import { BROWSER_AGENT } from './browser';

export interface SseEvent {
  readonly id: string | undefined;
  readonly event: string;
  readonly data: string;
}

export class SseStream {
  readonly events: SseEvent[] = [];
  readonly status: number;
  private readonly controller: AbortController;
  private waiters: (() => void)[] = [];
  private closed = false;

  private constructor(status: number, controller: AbortController) {
    this.status = status;
    this.controller = controller;
  }

  /** Opens `url` with the given cookies (and any extra headers); resolves once the response headers are in. */
  static async open(url: string, headers: Record<string, string> = {}): Promise<SseStream> {
    const controller = new AbortController();
    const res = await fetch(url, { headers: { 'user-agent': BROWSER_AGENT, accept: 'text/event-stream', ...headers }, signal: controller.signal });
    const stream = new SseStream(res.status, controller);
    if (res.body === null || res.status !== 200) {
      stream.closed = true;
      return stream;
    }
    void stream.read(res.body);
    return stream;
  }

  private async read(body: ReadableStream<Uint8Array>): Promise<void> {
    const decoder = new TextDecoder();
    let buffer = '';
    try {
      for await (const chunk of body as unknown as AsyncIterable<Uint8Array>) {
        buffer += decoder.decode(chunk, { stream: true });
        let end: number;
        while ((end = buffer.indexOf('\n\n')) !== -1) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          let id: string | undefined;
          let event = 'message';
          const data: string[] = [];
          for (const line of block.split('\n')) {
            if (line.startsWith(':')) continue;
            const colon = line.indexOf(':');
            const field = colon === -1 ? line : line.slice(0, colon);
            const value = colon === -1 ? '' : line.slice(colon + 1).replace(/^ /, '');
            if (field === 'id') id = value;
            else if (field === 'event') event = value;
            else if (field === 'data') data.push(value);
          }
          if (data.length > 0) this.events.push({ id, event, data: data.join('\n') });
          this.wake();
        }
      }
    } catch {
      // aborted
    }
    this.closed = true;
    this.wake();
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** The first event (from `from` on) named `event` whose parsed data passes `match`; fails after `withinMs`. */
  async next<T = Record<string, unknown>>(event: string, match: (data: T) => boolean = () => true, withinMs = 5000, from = 0): Promise<T> {
    const deadline = Date.now() + withinMs;
    for (let i = from; ;) {
      for (; i < this.events.length; i++) {
        const e = this.events[i];
        if (e.event !== event) continue;
        const data = (e.data.startsWith('{') || e.data.startsWith('[') ? JSON.parse(e.data) : e.data) as T;
        if (match(data)) return data;
      }
      if (this.closed) throw new Error(`the stream closed before a "${event}" event came; got: ${this.events.map((e) => e.event).join(', ')}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no matching "${event}" event within ${withinMs} ms; got: ${this.events.map((e) => `${e.event} ${e.data.slice(0, 120)}`).join(' | ')}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  close(): void {
    this.controller.abort();
  }
}
