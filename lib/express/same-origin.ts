/**
 * Cross-site request checks for the heartbeat, leave and event endpoints, the
 * way Go's net/http CrossOriginProtection does it: a browser says where a
 * request comes from (`Sec-Fetch-Site`, or else `Origin`); a request another
 * site made is refused. A request with neither header is not from a browser
 * page, so it cannot ride a visitor's cookies and is let through. No token is
 * needed, so `navigator.sendBeacon` (which cannot set headers) works.
 *
 * Browsers send `Sec-Fetch-Site` only to secure origins (https, localhost): on
 * plain HTTP under a name, `Origin` is compared with the host the browser
 * asked for, which a proxy may have rewritten. So the host is read as Express
 * reads it (`X-Forwarded-Host` when `trust proxy` trusts the sender), an app
 * may list its origins, and a refusal that looks like a proxy's rewrite is
 * reported once with the fix.
 */
import type { IncomingMessage } from 'node:http';
import { OnlineNowConfigError } from '../core/errors';
import type { ErrorReporter } from '../core/report';

type Req = IncomingMessage & { app?: { get?(name: string): unknown } };
type Trust = (address: string | undefined, hop: number) => boolean;

const NO_ORIGINS: ReadonlySet<string> = new Set();

/** `client({ origins })`, `events({ origins })`: origins such as "https://example.com", checked at startup. */
export function checkOrigins(where: string, origins: unknown): ReadonlySet<string> {
  if (origins === undefined) return NO_ORIGINS;
  const list = Array.isArray(origins) ? (origins as unknown[]) : [origins];
  for (const origin of list) {
    let valid = false;
    try {
      valid = typeof origin === 'string' && new URL(origin).origin === origin;
    } catch {
      valid = false;
    }
    if (!valid) {
      throw new OnlineNowConfigError(
        'ERR_ONLINE_NOW_ORIGINS',
        `${where} takes origins such as ['https://example.com', 'http://intranet:8080'] (scheme, host and port; no path or trailing slash), got ${JSON.stringify(origin)}.`,
      );
    }
  }
  return new Set(list as string[]);
}

function first(header: string | string[] | undefined): string | undefined {
  const value = Array.isArray(header) ? header[0] : header;
  return value?.split(',')[0].trim() || undefined;
}

/** The X-Forwarded-Host this app trusts (Express's `trust proxy`), as `req.host` reads it. */
function forwardedHost(req: Req): string | undefined {
  const trust = req.app?.get?.('trust proxy fn') as Trust | undefined;
  if (typeof trust !== 'function' || !trust(req.socket?.remoteAddress, 0)) return undefined;
  return first(req.headers['x-forwarded-host']);
}

function sameHost(origin: URL, host: string | undefined): boolean {
  if (host === undefined) return false;
  if (origin.host === host) return true;
  // A host without a port is on the scheme's default port ("example.com" is "example.com:80" for http).
  return !host.includes(':') && origin.hostname === host && origin.port === '';
}

/** Whether the request was made by another site's page (or a page the app did not list). */
function isCrossSite(req: Req, origins: ReadonlySet<string> = NO_ORIGINS): boolean {
  const { headers } = req;
  const origin = headers.origin;
  if (typeof origin === 'string' && origins.has(origin)) return false;
  const site = headers['sec-fetch-site'];
  if (typeof site === 'string') return site !== 'same-origin' && site !== 'none';
  if (typeof origin !== 'string') return false;
  let url: URL;
  try {
    url = new URL(origin);
  } catch {
    return true;
  }
  return !sameHost(url, headers.host) && !sameHost(url, forwardedHost(req));
}

/**
 * Why a refused request looks like a proxy's Host rewrite rather than another
 * site (the proxy said it forwarded the request, or only the port differs, or
 * the Host is the loopback address a proxy passes to), with the fix; else undefined.
 */
function proxyHint(req: Req): string | undefined {
  const { headers } = req;
  if (typeof headers.origin !== 'string' || headers['sec-fetch-site'] !== undefined) return undefined;
  let origin: URL;
  try {
    origin = new URL(headers.origin);
  } catch {
    return undefined;
  }
  const host = headers.host ?? '';
  const forwarded = headers['x-forwarded-host'] !== undefined || headers['x-forwarded-for'] !== undefined || headers['x-real-ip'] !== undefined;
  const hostname = host.replace(/:\d+$/, '').replace(/^\[|\]$/g, '');
  const rewritten = forwarded || hostname === origin.hostname || hostname === '127.0.0.1' || hostname === 'localhost' || hostname === '::1';
  if (!rewritten) return undefined;
  return (
    `refused live requests from ${origin.origin} as cross-site: the request's Host is ${JSON.stringify(host)}` +
    (headers['x-forwarded-host'] === undefined ? '' : ` (X-Forwarded-Host ${JSON.stringify(first(headers['x-forwarded-host']))}, not trusted)`) +
    `. If ${origin.origin} is this site's own address, a proxy rewrote Host: pass the browser's (nginx: ` +
    "`proxy_set_header Host $http_host;`, or `proxy_set_header X-Forwarded-Host $http_host;` with app.set('trust proxy', …) in Express), " +
    `or list the origin: client({ origins: ['${origin.origin}'] }) and events({ origins: ['${origin.origin}'] }).`
  );
}

/** True when the request is refused as cross-site. One that looks like a proxy's rewrite is reported (once, by the reporter). */
export function refuseCrossSite(req: Req, origins: ReadonlySet<string>, reporter: ErrorReporter): boolean {
  if (!isCrossSite(req, origins)) return false;
  const hint = proxyHint(req);
  if (hint !== undefined) reporter.report('cross-site', new OnlineNowConfigError('ERR_ONLINE_NOW_PROXY_HOST', hint));
  return true;
}
