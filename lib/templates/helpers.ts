/**
 * Nunjucks and Handlebars helpers. They answer from the locals the middleware
 * set on this request, never from the store, so a page's badges agree with its
 * count and list, and a template costs no store lookup.
 */
import { OnlineNowConfigError } from '../core/errors';
import { escapeHtml, hereHtml, lockBadgeHtml, lockHtml, requestHtml, statusBadgeHtml } from './fragments';
import { newTabId } from '../core/room-index';
import { formatTimeAgo, timeAgoHtml } from './time-ago';
import type { OnlineNowLocals } from '../core/types';

type Question = 'isOnline' | 'lastSeen' | 'timeAgo' | 'onlineStatus';

/** `timeAgo`'s options, made once: a page may ask dozens of times. */
const AS_HTML = Object.freeze({ html: true });
const AS_TEXT = Object.freeze({ html: false });

/**
 * Answers from a render context. A page rendered without the middleware (an
 * error page) says offline, and still tells the time of a Date.
 */
function ask(locals: unknown, question: Question, subject: unknown, html: boolean): unknown {
  const answer = (locals as Partial<OnlineNowLocals> | undefined)?.[question];
  if (question === 'onlineStatus') {
    const status = typeof answer === 'function' ? String(answer(subject)) : 'offline';
    // As HTML, its accessible badge.
    return html ? statusBadgeHtml(status) : status;
  }
  if (typeof answer === 'function') return answer(subject, html ? AS_HTML : AS_TEXT);
  if (question === 'isOnline') return false;
  if (question === 'lastSeen') return null;
  if (!(subject instanceof Date)) return '';
  return html ? timeAgoHtml(subject) : formatTimeAgo(subject);
}

type Markup = 'onlineScript' | 'onlineHereHtml' | 'onlineLockHtml' | 'onlineChangedHtml' | 'onlineRequestHtml' | 'onlineLockBadge' | 'onlineAnnounceHtml';
const MARKUP: readonly Markup[] = ['onlineScript', 'onlineHereHtml', 'onlineLockHtml', 'onlineChangedHtml', 'onlineRequestHtml', 'onlineLockBadge', 'onlineAnnounceHtml'];

/** The element the script fills for this page's room (`data-online-<name>`); '' on a page outside a room. */
function roomElement(l: Partial<OnlineNowLocals>, name: string, attributes = '', html = ''): string {
  return l.onlineHereRoom === undefined ? '' : `<div data-online-${name}="${escapeHtml(l.onlineHereRoom)}"${attributes}>${html}</div>`;
}

/**
 * The markup helpers: the client script's tag (room, tab and mode of this page
 * view; '' until `client()` is mounted), a room's viewers and lock as the
 * live updates render them, so a page looks the same before its first update,
 * and the room's live region that announces joins and leaves.
 */
function markup(locals: unknown, which: Markup, room?: unknown): string {
  const l = (locals ?? {}) as Partial<OnlineNowLocals>;
  if (which === 'onlineHereHtml') return hereHtml(l.onlineHere ?? []);
  const mine = l.onlineHereLock?.tab !== undefined && l.onlineHereLock.tab === l.onlineHereTab;
  if (which === 'onlineLockHtml') return lockHtml(l.onlineHereLock ?? null, mine);
  // Where the script shows a later save ("changed while you were looking"): empty at first paint, as the page is current.
  if (which === 'onlineChangedHtml') return roomElement(l, 'changed');
  // The room's polite live region: the script says there who joined and left (empty at first paint, as nothing happened yet).
  if (which === 'onlineAnnounceHtml') return roomElement(l, 'announce', ' aria-live="polite"');
  // An ask for the lock, shown to the holder at first paint too (a reload keeps the lock).
  if (which === 'onlineRequestHtml') return roomElement(l, 'request', '', mine ? requestHtml(l.onlineHereRequest, l.onlineHereLock ?? null, false) : '');
  // A list view's badge for one room (`lockBadges()` set the locks), kept live by the script.
  if (which === 'onlineLockBadge')
    return typeof room === 'string' ? `<span data-online-lock-badge="${escapeHtml(room)}">${lockBadgeHtml(l.onlineLocks?.[room] ?? null)}</span>` : '';
  const client = l.onlineClient;
  if (client === undefined) return '';
  let attributes = ` data-tab="${escapeHtml(l.onlineHereTab ?? newTabId())}" data-interval="${client.interval}" data-events="${escapeHtml(client.events)}"`;
  if (client.activeEvery !== undefined) attributes += ` data-active="${client.activeEvery}"`;
  if (l.onlineHereRoom !== undefined) attributes += ` data-room="${escapeHtml(l.onlineHereRoom)}" data-mode="${escapeHtml(l.onlineHereMode ?? 'viewing')}"`;
  const self = l.onlineHereSelf;
  if (self !== undefined && self.claim !== 0) attributes += ` data-claim="${escapeHtml(JSON.stringify(self))}"`;
  // The save this page was rendered after: the script shows only later ones.
  const saved = l.onlineHereSaved?.at.getTime();
  if (saved !== undefined) attributes += ` data-saved="${saved}"`;
  return `<script src="${escapeHtml(client.src)}"${attributes} defer></script>`;
}

interface NunjucksEnvironmentLike {
  addFilter(name: string, fn: (...args: never[]) => unknown): unknown;
  addGlobal(name: string, value: unknown): unknown;
  getFilter?(name: string): (value: string) => unknown;
}

/** `this` inside a Nunjucks filter or global function is the render context. */
interface NunjucksContext {
  ctx?: unknown;
}

/**
 * Adds to a Nunjucks Environment: filter `isOnline` (`{% if user | isOnline %}`),
 * global `isOnline(user)`, filter `lastSeen` (a Date, or null), filter
 * `timeAgo` (`{{ u.lastSeen | timeAgo }}`, `{{ u | timeAgo(html=true) }}`), and
 * filter and global `onlineStatus` (`{{ user | onlineStatus }}`: active, idle, away, offline).
 * In an imported macro file, import it `with context` so the helpers see the page's locals.
 */
export function registerNunjucks<E extends NunjucksEnvironmentLike>(env: E): E {
  if (typeof env?.addFilter !== 'function' || typeof env.addGlobal !== 'function') {
    throw new OnlineNowConfigError(
      'ERR_ONLINE_NOW_NUNJUCKS',
      'registerNunjucks(env) takes a Nunjucks Environment: the value nunjucks.configure(…) returns, or new nunjucks.Environment(…).',
    );
  }
  // Markup must get past autoescaping: Nunjucks' own `safe` filter marks it.
  const safe = env.getFilter?.('safe') ?? ((text: string) => text);
  const filter = (question: Question) =>
    function (this: NunjucksContext, subject: unknown, keywords?: { html?: unknown }): unknown {
      const html = keywords?.html === true;
      const answer = ask(this?.ctx, question, subject, html);
      // No time is a plain '' (falsy), so `timeAgo(html=true) or "offline"` still falls back.
      return html && answer !== '' ? safe(String(answer)) : answer;
    };
  env.addFilter('isOnline', filter('isOnline'));
  env.addGlobal('isOnline', filter('isOnline'));
  env.addFilter('lastSeen', filter('lastSeen'));
  env.addFilter('timeAgo', filter('timeAgo'));
  env.addFilter('onlineStatus', filter('onlineStatus'));
  env.addGlobal('onlineStatus', filter('onlineStatus'));
  for (const name of MARKUP) {
    env.addGlobal(name, function (this: NunjucksContext, room?: unknown) {
      return safe(markup(this?.ctx, name, room));
    });
  }
  return env;
}

type HelperFn = (this: unknown, ...args: unknown[]) => unknown;

interface HandlebarsLike {
  registerHelper(name: string, fn: HelperFn): void;
  SafeString?: new (html: string) => unknown;
}

interface ExpressHandlebarsLike {
  engine: unknown;
  handlebars: unknown;
  helpers?: Record<string, unknown> | undefined;
}

interface HelperOptions {
  data?: { root?: unknown };
  hash?: { html?: unknown };
}

/**
 * Handlebars passes its options object last; `data.root` is the whole render
 * context, in loops and partials too. Without an argument a helper answers for
 * the current context, so `{{#each onlineNow}}{{timeAgo}}{{/each}}` tells each entry's time.
 */
function handlebarsHelpers(SafeString: (new (html: string) => unknown) | undefined): Record<string, HelperFn> {
  // Handlebars calls a helper with its arguments and then its options: (user, options), or (options) alone.
  const helper = (question: Question): HelperFn =>
    function (this: unknown, first?: unknown, second?: unknown) {
      const alone = arguments.length < 2;
      // A rest parameter would make an array on every call, and a page may ask dozens of times.
      // eslint-disable-next-line prefer-rest-params
      const options = (alone ? first : arguments.length === 2 ? second : arguments[arguments.length - 1]) as HelperOptions | undefined;
      const subject = alone ? this : first;
      const html = options?.hash?.html === true;
      const answer = ask(options?.data?.root, question, subject, html);
      return html && answer !== '' && SafeString !== undefined ? new SafeString(String(answer)) : answer;
    };
  const helpers: Record<string, HelperFn> = {
    isOnline: helper('isOnline'),
    lastSeen: helper('lastSeen'),
    timeAgo: helper('timeAgo'),
    onlineStatus: helper('onlineStatus'),
  };
  for (const name of MARKUP) {
    helpers[name] = function (this: unknown, ...args: unknown[]) {
      const html = markup((args[args.length - 1] as HelperOptions | undefined)?.data?.root, name, args.length > 1 ? args[0] : undefined);
      return SafeString === undefined ? html : new SafeString(html);
    };
  }
  return helpers;
}

/**
 * Adds helpers `isOnline` (`{{#if (isOnline user)}}`), `lastSeen`,
 * `timeAgo` (`{{timeAgo lastSeen}}`, `{{timeAgo user html=true}}`) and
 * `onlineStatus` (`{{onlineStatus user}}`: active, idle, away, offline) to the
 * `handlebars` module, a `Handlebars.create()` instance, or an
 * express-handlebars instance (`create()` / `new ExpressHandlebars()`).
 */
export function registerHandlebars<H extends HandlebarsLike | ExpressHandlebarsLike>(hbs: H): H {
  const handlebars = hbs as HandlebarsLike | undefined;
  if (typeof handlebars?.registerHelper === 'function') {
    for (const [name, fn] of Object.entries(handlebarsHelpers(handlebars.SafeString))) handlebars.registerHelper(name, fn);
    return hbs;
  }
  const exphbs = hbs as ExpressHandlebarsLike | undefined;
  if (typeof exphbs?.engine === 'function' && typeof exphbs.handlebars === 'object' && exphbs.handlebars !== null) {
    // express-handlebars merges `instance.helpers` into every render; the shared module stays untouched.
    exphbs.helpers = { ...exphbs.helpers, ...handlebarsHelpers((exphbs.handlebars as HandlebarsLike).SafeString) };
    return hbs;
  }
  throw new OnlineNowConfigError(
    'ERR_ONLINE_NOW_HANDLEBARS',
    "registerHandlebars(hbs) takes the handlebars module (require('handlebars')), a Handlebars.create() instance, or an express-handlebars instance (create()).",
  );
}
