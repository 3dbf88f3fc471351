// A simulated browser: real HTTP over loopback with its own cookie jar, so each
// instance is one express-session session, as a person's browser would be.
/** A person's browser, as its User-Agent says (Node's own, "node", is on the bot list). */
export const BROWSER_AGENT = 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36';

/** What the client script sends (a heartbeat or a leave): text/plain JSON, same-origin, with the browser's cookies when it has any. */
export function postFromPage(base: string, path: string, body: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(new URL(path, base), {
    method: 'POST',
    headers: { 'user-agent': BROWSER_AGENT, 'content-type': 'text/plain;charset=UTF-8', 'sec-fetch-site': 'same-origin', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
}

export class CookieBrowser {
  private readonly cookies = new Map<string, string>();

  constructor(readonly base: string) {}

  get cookieHeader(): string {
    return [...this.cookies].map(([name, value]) => `${name}=${value}`).join('; ');
  }

  get cookieNames(): string[] {
    return [...this.cookies.keys()];
  }

  get hasCookies(): boolean {
    return this.cookies.size > 0;
  }

  async request(method: string, path: string, form?: Record<string, string>): Promise<Response> {
    const headers: Record<string, string> = { 'user-agent': BROWSER_AGENT };
    if (this.cookies.size > 0) headers.cookie = this.cookieHeader;
    let body: string | undefined;
    if (form !== undefined) {
      headers['content-type'] = 'application/x-www-form-urlencoded';
      body = new URLSearchParams(form).toString();
    }
    // A hung request fails the test rather than the run.
    const res = await fetch(new URL(path, this.base), { method, headers, body, redirect: 'manual', signal: AbortSignal.timeout(10_000) });
    for (const line of res.headers.getSetCookie()) {
      const [pair] = line.split(';');
      const eq = pair.indexOf('=');
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      if (/expires=Thu, 01 Jan 1970/i.test(line) || value === '') this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
    return res;
  }

  async get(path: string): Promise<Response> {
    return this.request('GET', path);
  }

  async text(path: string): Promise<string> {
    const res = await this.get(path);
    if (res.status !== 200) throw new Error(`GET ${path} answered ${res.status}`);
    return res.text();
  }

  async json<T = Record<string, unknown>>(path: string): Promise<T> {
    const res = await this.get(path);
    if (res.status !== 200) throw new Error(`GET ${path} answered ${res.status}: ${await res.text()}`);
    return (await res.json()) as T;
  }

  async post(path: string, form: Record<string, string> = {}): Promise<Response> {
    const res = await this.request('POST', path, form);
    await res.arrayBuffer();
    return res;
  }
}
