/**
 * Nunjucks and Handlebars helpers. Both answer from the locals the middleware
 * set on this request, never from the store, so a page's badges agree with its
 * count and list, and a template costs no store lookup.
 */
import type { OnlineNowLocals } from './types';
import { OnlineNowConfigError } from './errors';

type Question = 'isOnline' | 'lastSeen';

/** Answers from a render context; a page rendered without the middleware (an error page) says offline. */
function ask(locals: unknown, question: Question, userOrId: unknown): boolean | Date | null {
  const fn = (locals as Partial<OnlineNowLocals> | undefined)?.[question];
  if (typeof fn === 'function') return fn(userOrId);
  return question === 'isOnline' ? false : null;
}

interface NunjucksEnvironmentLike {
  addFilter(name: string, fn: (...args: never[]) => unknown): unknown;
  addGlobal(name: string, value: unknown): unknown;
}

/** `this` inside a Nunjucks filter or global function is the render context. */
interface NunjucksContext {
  ctx?: unknown;
}

/**
 * Adds to a Nunjucks Environment: filter `isOnline` (`{% if user | isOnline %}`),
 * global `isOnline(user)`, and filter `lastSeen` (a Date, or null).
 * In an imported macro file, import it `with context` so the helpers see the page's locals.
 */
export function registerNunjucks<E extends NunjucksEnvironmentLike>(env: E): E {
  if (typeof env?.addFilter !== 'function' || typeof env.addGlobal !== 'function') {
    throw new OnlineNowConfigError(
      'ERR_ONLINE_NOW_NUNJUCKS',
      'registerNunjucks(env) takes a Nunjucks Environment: the value nunjucks.configure(…) returns, or new nunjucks.Environment(…).',
    );
  }
  const isOnline = function (this: NunjucksContext, userOrId: unknown): boolean | Date | null {
    return ask(this?.ctx, 'isOnline', userOrId);
  };
  env.addFilter('isOnline', isOnline);
  env.addGlobal('isOnline', isOnline);
  env.addFilter('lastSeen', function (this: NunjucksContext, userOrId: unknown) {
    return ask(this?.ctx, 'lastSeen', userOrId);
  });
  return env;
}

type HelperFn = (...args: unknown[]) => unknown;

interface HandlebarsLike {
  registerHelper(name: string, fn: HelperFn): void;
}

interface ExpressHandlebarsLike {
  engine: unknown;
  handlebars: unknown;
  helpers?: Record<string, unknown> | undefined;
}

/** Handlebars passes its options object last; `data.root` is the whole render context, in loops and partials too. */
function handlebarsHelper(question: Question): HelperFn {
  return (...args: unknown[]) => {
    const options = args[args.length - 1] as { data?: { root?: unknown } } | undefined;
    const userOrId = args.length > 1 ? args[0] : undefined;
    return ask(options?.data?.root, question, userOrId);
  };
}

/**
 * Adds helpers `isOnline` (`{{#if (isOnline user)}}`) and `lastSeen` to the
 * `handlebars` module, a `Handlebars.create()` instance, or an
 * express-handlebars instance (`create()` / `new ExpressHandlebars()`).
 */
export function registerHandlebars<H extends HandlebarsLike | ExpressHandlebarsLike>(hbs: H): H {
  const helpers = { isOnline: handlebarsHelper('isOnline'), lastSeen: handlebarsHelper('lastSeen') };
  if (typeof (hbs as HandlebarsLike | undefined)?.registerHelper === 'function') {
    for (const [name, fn] of Object.entries(helpers)) (hbs as HandlebarsLike).registerHelper(name, fn);
    return hbs;
  }
  const exphbs = hbs as ExpressHandlebarsLike | undefined;
  if (typeof exphbs?.engine === 'function' && typeof exphbs.handlebars === 'object') {
    // express-handlebars merges `instance.helpers` into every render; the shared module stays untouched.
    exphbs.helpers = { ...exphbs.helpers, ...helpers };
    return hbs;
  }
  throw new OnlineNowConfigError(
    'ERR_ONLINE_NOW_HANDLEBARS',
    "registerHandlebars(hbs) takes the handlebars module (require('handlebars')), a Handlebars.create() instance, or an express-handlebars instance (create()).",
  );
}
