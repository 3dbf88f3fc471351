/**
 * "3 minutes ago" in the reader's language, by Intl.RelativeTimeFormat, with
 * the rounding a reader expects; and the same as a `<time>` element whose
 * `datetime` keeps it true in a cached page (client-side code, such as
 * @github/relative-time-element, can refresh it).
 */

/** Up to each limit (seconds), a time is told in this unit. */
const STEPS: readonly [limit: number, unit: Intl.RelativeTimeFormatUnit, seconds: number][] = [
  [45, 'second', 1],
  [45 * 60, 'minute', 60],
  [22 * 3600, 'hour', 3600],
  [26 * 86400, 'day', 86400],
  [320 * 86400, 'month', 30.44 * 86400],
  [Infinity, 'year', 365.25 * 86400],
];
/** Under this many seconds, "now". */
const NOW_SECONDS = 5;
const DEFAULT_LOCALE = 'en';

const formats = new Map<string, [Intl.RelativeTimeFormat, Intl.DateTimeFormat]>();

/** Formatters for a locale, made once; an unknown or malformed locale falls back to English. */
function formatsFor(locale: string): [Intl.RelativeTimeFormat, Intl.DateTimeFormat] {
  let found = formats.get(locale);
  if (found === undefined) {
    try {
      found = [new Intl.RelativeTimeFormat(locale, { numeric: 'auto' }), new Intl.DateTimeFormat(locale, { dateStyle: 'long', timeStyle: 'short' })];
    } catch {
      found = formatsFor(DEFAULT_LOCALE);
    }
    // Locales come from requests (Accept-Language): the cache stays small whatever they send.
    if (formats.size >= 100) formats.clear();
    formats.set(locale, found);
  }
  return found;
}

/** "now", "12 seconds ago", "3 minutes ago", "yesterday", "2 months ago"; "in 5 minutes" for a future time. */
export function formatTimeAgo(date: Date | number, locale: string = DEFAULT_LOCALE, now: number = Date.now()): string {
  const seconds = (Number(date) - now) / 1000;
  if (!Number.isFinite(seconds)) return '';
  const [relative] = formatsFor(locale);
  const size = Math.abs(seconds);
  if (size < NOW_SECONDS) return relative.format(0, 'second');
  const [, unit, length] = STEPS.find(([limit]) => size < limit)!;
  return relative.format(Math.sign(seconds) * Math.round(size / length), unit);
}

const escapes: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
const escapeHtml = (text: string): string => text.replace(/[&<>"']/g, (c) => escapes[c]);

/** `<time datetime="ISO" title="full date">3 minutes ago</time>`; '' for no time. */
export function timeAgoHtml(date: Date | number, locale: string = DEFAULT_LOCALE, now: number = Date.now()): string {
  const time = Number(date);
  if (!Number.isFinite(time)) return '';
  const [, full] = formatsFor(locale);
  const iso = new Date(time).toISOString();
  return `<time datetime="${iso}" title="${escapeHtml(full.format(time))}">${escapeHtml(formatTimeAgo(time, locale, now))}</time>`;
}
