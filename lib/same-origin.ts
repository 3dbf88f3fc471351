/**
 * Cross-site request checks for the heartbeat, leave and event endpoints, the
 * way Go's net/http CrossOriginProtection does it: a browser says where a
 * request comes from (`Sec-Fetch-Site`, or else `Origin`); a request another
 * site made is refused. A request with neither header is not from a browser
 * page, so it cannot ride a visitor's cookies and is let through. No token is
 * needed, so `navigator.sendBeacon` (which cannot set headers) works.
 */
import type { IncomingHttpHeaders } from 'node:http';

export function isCrossSite(headers: IncomingHttpHeaders): boolean {
  const site = headers['sec-fetch-site'];
  if (typeof site === 'string') return site !== 'same-origin' && site !== 'none';
  const origin = headers.origin;
  if (typeof origin !== 'string') return false;
  let host: string;
  try {
    host = new URL(origin).host;
  } catch {
    return true;
  }
  return host !== headers.host;
}
