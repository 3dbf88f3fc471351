// express-online-now browser client, served minified at <base>/client.js.
// Heartbeats (marked away while the page is hidden: the server keeps a background
// tab, and its lock, for a longer window), a leave beacon on pagehide, and one
// EventSource per browser: the tab holding a lease in localStorage opens it and
// forwards its events to the other tabs over a BroadcastChannel. Without those
// APIs each tab opens its own. Nothing here may throw on an old browser or a bad reply.
(() => {
  'use strict';

  const d = document;
  const w = window;
  const nav = navigator;
  // A deferred classic script has document.currentScript; the selector covers odd embeddings.
  const script = d.currentScript || d.querySelector('script[data-tab]');
  if (!script) return;

  const attr = (name) => script.getAttribute('data-' + name);
  // beat/leave live next to client.js: its src without file name, query or hash.
  const base = (script.src || '').replace(/[?#].*/, '').replace(/[^/]*$/, '');
  const events = attr('events') || base + 'events';
  let tab = attr('tab');
  const room = attr('room') || undefined;
  const interval = Number(attr('interval')) > 0 ? Number(attr('interval')) : 10000;
  const TYPES = ['count', 'online', 'offline', 'list', 'here', 'join', 'leave', 'lock', 'reset', 'changed', 'badge'];

  let mode = attr('mode') === 'editing' ? 'editing' : 'viewing';
  // This tab's lock claim as the server last told it, echoed back: a process that has not synced it yet keeps it.
  let claim = null;
  let stopped = false; // the server said no (204/4xx): no more heartbeats from this page view
  let timer = 0;
  let held = false; // a state showed that this tab holds the room's lock
  let renewed = false; // a refused tab was renewed since the last answered beat
  let asking = false; // this tab asks the holder for the lock
  let grace = 0; // ms the holder's page is given to save before a hand-over
  let warned = ''; // the ask the holder's page was last warned of
  const savedAt = Number(attr('saved')) || 0; // the save this page was rendered after
  // Status: input on a visible page is activity, said with a beat at most once per `activeEvery` ms for the whole
  // browser (a shared time in localStorage), so a busy user costs no more beats than an idle one. Loading the page was activity.
  const activeEvery = Number(attr('active')) || 0;
  const ACTIVE = 'online-now:active';
  let used = false;
  let saidActive = Date.now();
  let said = {}; // id -> "Ada Lovelace joined" / "… left", not announced yet
  let saying = 0;

  const each = (name, fn, value) => d.querySelectorAll('[' + name + ']').forEach((el) => (value === undefined || el.getAttribute(name) === String(value)) && fn(el));
  // Markup from the server (escaped there), or text, into every element so marked.
  const fill = (name, html, value) =>
    each(
      name,
      (el) => {
        el.innerHTML = html;
      },
      value,
    );
  const put = (name, text, value) =>
    each(
      name,
      (el) => {
        el.textContent = text;
      },
      value,
    );

  // False when a listener called preventDefault(): the page renders that update itself.
  const dispatch = (type, detail) => typeof CustomEvent !== 'function' || d.dispatchEvent(new CustomEvent('online-now:' + type, { detail, cancelable: true }));

  const parse = (text) => {
    try {
      return JSON.parse(text);
    } catch {
      return {};
    }
  };
  claim = parse(attr('claim') || 'null');

  // The built-in updates, by data attributes.
  const draw = (type, data) => {
    if (type === 'count' && data.users != null) {
      put('data-online-count', data.users);
    } else if ((type === 'online' || type === 'offline') && data.id != null) {
      const on = type === 'online';
      each(
        'data-online-id',
        (el) => {
          el.setAttribute('data-online', String(on));
          // With status on: active, idle, away (or the app's state), for CSS and text alike.
          if (activeEvery) el.setAttribute('data-online-status', on ? data.status : 'offline');
          const text = el.getAttribute('data-online-text');
          if (text != null) {
            const parts = text.split('|');
            el.textContent = on ? parts[0] : parts.slice(1).join('|');
          }
        },
        data.id,
      );
    } else if (type === 'here' && data.room) {
      const html = data.html || {};
      // A state without html leaves the server-rendered markup alone.
      if (typeof html.here === 'string') fill('data-online-here', html.here, data.room);
      if (data.count != null) put('data-online-here-count', data.count, data.room);
      // The lock as its holder sees it ("You are editing") in the tab that holds it; with a take-over button elsewhere.
      const lock = data.lock && data.lock.tab === tab && typeof html.lockMine === 'string' ? html.lockMine : html.lock;
      if (typeof lock === 'string') fill('data-online-lock', lock, data.room);
      // An ask, to its holder (Hand over, Decline) and to its asker; nobody else.
      const q = data.request;
      const ask = q && q.tab === tab ? html.requestMine : data.lock && data.lock.tab === tab ? html.request : '';
      fill('data-online-request', ask || '', data.room);
    } else if (type === 'changed' || type === 'badge') {
      fill(type === 'changed' ? 'data-online-changed' : 'data-online-lock-badge', data.html || '', data.room);
    } else if (type === 'list' && typeof data.html === 'string') {
      fill('data-online-list', data.html);
    } else if ((type === 'join' || type === 'leave') && data.room === room) {
      // The live region says who came and went, once the room has been quiet for a few seconds: a leave and a
      // join of the same person meanwhile (a reload, a dropped connection) cancel out, and nobody hears a count.
      const id = data.id;
      if (said[id]) delete said[id];
      else said[id] = (data.displayName || data.name || data.username || id) + (type === 'join' ? ' joined' : ' left');
      clearTimeout(saying);
      saying = setTimeout(() => {
        const text = Object.values(said).join('. ');
        said = {};
        if (text) put('data-online-announce', text, room);
      }, 5000);
    }
  };

  // `reply`: the state came from our own heartbeat, which sees the room as this user does (ourselves included).
  const handle = (type, data, reply) => {
    if (!data || typeof data !== 'object') data = {};
    // A save this page was rendered after (or made) is no news.
    if (type === 'changed' && !(Date.parse(data.saved && data.saved.at) > savedAt)) return;
    const mine = type === 'here' && room && data.room === room;
    const lock = data.lock;
    // Our lock, elsewhere or free on the stream: taken over (a generation past ours, claimed after ours), or maybe
    // only a process a sync behind, a staff release, a hidden holder ("someone", maybe ourselves). Then our
    // heartbeat's reply tells, on the room as Redis has it, and is drawn instead: a stale state must not make us
    // give the lock up (a free lock is claimed at a low generation: an old holder may show a higher one).
    const newer = lock && lock.tab && claim && lock.generation > claim.gen && Date.parse(lock.since) > claim.claim;
    if (mine && held && !reply && !(lock && lock.tab === tab) && !newer) return beat({ recheck: true });
    // A listener that calls preventDefault() draws the update itself.
    if (dispatch(type, data)) draw(type, data);
    if (mine) {
      if (lock && lock.tab === tab) held = true;
      else if (held) {
        // Taken over, or (our own beat's reply shows it free) released by staff.
        held = false;
        mode = 'viewing';
        dispatch(lock ? 'takenover' : 'released', lock || {});
        beat();
      }
      const q = data.request;
      grace = data.grace || 0;
      if (asking && q && q.tab === tab && (q.declined || q.granted)) {
        // Declined: we stop asking. Handed to us: our next beat takes it (on the room as Redis has it), so beat now.
        asking = false;
        if (q.declined) dispatch('declined', q);
        else beat({ ask: true });
      }
      // The holder's page, warned `grace` before an unanswered ask takes the lock: save now, or preventDefault() to keep it.
      const key = q && q.tab + q.since;
      if (lock && lock.tab === tab && data.handOverAt && key !== warned) {
        warned = key;
        setTimeout(() => dispatch('handover', q) || beat({ decline: true }), data.handOverAt - grace - data.now);
      }
    }
  };

  const stop = () => {
    stopped = true;
    clearInterval(timer);
  };

  // The server cannot read our tab (it restarted with a new secret): the page again, as the app serves it
  // now, gives a new tab and the room's state; then we beat with it. Once between answered beats.
  const renew = () => {
    renewed = true;
    fetch(location.href, { headers: { Accept: 'text/html' } })
      .then((res) => res.text())
      .then((html) => {
        const doc = new DOMParser().parseFromString(html, 'text/html');
        const fresh = doc.querySelector('script[data-tab]');
        if (!fresh || fresh.getAttribute('data-room') !== room) return stop();
        tab = fresh.getAttribute('data-tab');
        claim = parse(fresh.getAttribute('data-claim') || 'null');
        ['data-online-here', 'data-online-here-count', 'data-online-lock'].forEach((name) => {
          doc.querySelectorAll('[' + name + ']').forEach((from) => fill(name, from.innerHTML, from.getAttribute(name))); // the app's own markup
        });
        beat();
      })
      .catch(() => {});
  };

  // One beat at a time: a beat sent while an earlier one is on its way could be answered first, or reach a
  // process that has not synced it, and the earlier one (a viewing beat, a claim we do not know yet) would then
  // undo it, takeover and all. A beat asked for meanwhile waits, its extras kept, and goes when the reply is in.
  let inFlight = false;
  let queued = null;
  const shared = (value) => {
    try {
      return value ? localStorage.setItem(ACTIVE, value) : +localStorage.getItem(ACTIVE);
    } catch {
      return 0; // storage blocked: this tab keeps its own time
    }
  };
  // True at most once per activeEvery across the browser's tabs, and only after input here.
  const takeActive = () => {
    const now = Date.now();
    const last = Math.max(saidActive, shared() || 0);
    if (!used || d.visibilityState === 'hidden' || (now - last < activeEvery && now >= last)) return;
    used = false;
    shared((saidActive = now));
    return true;
  };
  if (activeEvery) {
    shared(saidActive);
    for (const type of ['pointerdown', 'pointermove', 'keydown', 'wheel', 'touchstart', 'scroll'])
      w.addEventListener(
        type,
        () => {
          used = true;
        },
        { capture: true, passive: true },
      );
  }

  // `extra`: what this beat asks besides (takeover, handover, decline).
  const beat = (extra) => {
    if (stopped || !w.fetch) return;
    if (inFlight) {
      queued = Object.assign(queued || {}, extra);
      return;
    }
    inFlight = true;
    // A reply that never comes must not stop the heartbeats: given up, and the next beat retries.
    const abort = w.AbortController && new AbortController();
    const limit = setTimeout(() => abort && abort.abort(), Math.max(interval, 5000));
    // A string body goes as text/plain;charset=UTF-8: a simple request, no preflight.
    fetch(base + 'beat', {
      method: 'POST',
      body: JSON.stringify(
        Object.assign(
          { tab, room, mode, claim: claim || undefined, away: d.visibilityState === 'hidden' || undefined, ask: asking || undefined, active: takeActive() || undefined },
          extra,
        ),
      ),
      signal: abort && abort.signal,
    })
      .then((res) => {
        if (res.status === 409 && !renewed) renew();
        // 204 or 4xx means not signed in (or not wanted): stop quietly rather than retry.
        else if (res.status === 204 || (res.status >= 400 && res.status < 500)) stop();
        else if (res.ok) return res.json();
      })
      .then((state) => {
        if (!state) return;
        renewed = false;
        // Replies come in the order their beats went: the latest one knows our claim best.
        if (state.self) claim = state.self;
        // A beat waiting after this one asks something else (edit, view, take over): its reply will tell.
        if (state.room && queued === null) handle('here', state, true);
      })
      // A network error, a timeout or a non-JSON body: the timer's next beat is the retry.
      .catch(() => {})
      .then(() => {
        clearTimeout(limit);
        inFlight = false;
        const next = queued;
        queued = null;
        if (next) beat(next);
      });
  };

  // Shown: a beat at once. Hidden: the timer beats on, marked away, as often as the browser lets it; not
  // at once, where a closing tab's beat would race its leave and keep it in the room as away.
  const onVisibility = () => {
    if (stopped || (d.visibilityState === 'hidden' && timer)) return;
    // Coming back to the page is activity too.
    if (timer && d.visibilityState !== 'hidden') used = true;
    clearInterval(timer);
    beat();
    timer = setInterval(() => beat(), interval);
  };

  let chan = null;
  const post = (message) => {
    if (chan) chan.postMessage(message);
  };

  const mySub = () => {
    const ids = [];
    each('data-online-id', (el) => {
      const id = el.getAttribute('data-online-id');
      // As many as the server takes (a URL stays short).
      if (id && ids.indexOf(id) < 0 && ids.length < 200) ids.push(id);
    });
    const locks = [];
    each('data-online-lock-badge', (el) => locks.push(el.getAttribute('data-online-lock-badge')));
    return { t: 'sub', id: tab, rooms: room ? [room] : [], ids, locks, list: !!d.querySelector('[data-online-list]') };
  };

  let leader = false;
  let subs = {}; // tab id -> subscription, kept by the leader (or by a tab on its own)
  let source = null;
  let openKey = null;
  let last = ''; // last SSE event id seen, here or forwarded, so a reopen resumes
  let debounce = 0;

  // Reopen the EventSource on the union of subscriptions, once tabs' 'sub' messages settle.
  const reconnect = () => {
    clearTimeout(debounce);
    debounce = setTimeout(() => {
      if (!w.EventSource) return;
      const query = [];
      ['rooms', 'ids', 'locks'].forEach((name) => {
        const union = [];
        Object.keys(subs).forEach((key) => {
          const some = subs[key][name];
          if (Array.isArray(some)) some.forEach((x) => union.indexOf(String(x)) < 0 && union.push(String(x)));
        });
        if (union.length) query.push(name + '=' + encodeURIComponent(union.sort().join('\n')));
      });
      if (Object.keys(subs).some((key) => subs[key].list === true)) query.push('list=1');
      const key = query.join('&');
      if (key === openKey && source && source.readyState !== 2) return; // same union, still open
      if (last) query.push('last=' + encodeURIComponent(last));
      if (source) source.close();
      try {
        source = new EventSource(events + (query.length ? (events.indexOf('?') < 0 ? '?' : '&') + query.join('&') : ''));
      } catch {
        source = null;
        return;
      }
      openKey = key;
      // EventSource retries a dropped stream itself, but not a refused one (503: the server is full): try again later.
      const opened = source;
      opened.onerror = () => {
        if (opened.readyState === 2 && opened === source) setTimeout(() => opened === source && reconnect(), 5000 + Math.random() * 5000);
      };
      TYPES.forEach((type) =>
        source.addEventListener(type, (e) => {
          if (e.lastEventId) last = e.lastEventId;
          const data = parse(e.data);
          post({ t: 'ev', type, data, id: last });
          handle(type, data);
        }),
      );
    }, 50);
  };

  // One tab leads: it holds a lease in localStorage (renewed every 2 s, good for 8) and alone opens the
  // stream, for every tab of the site. No Web Locks: they exist only on https and localhost, and a page
  // holding one is never kept in the back/forward cache. The leader says so on the channel at each
  // renewal and to each new tab: a lease nobody has spoken for (its tab was killed) is taken at once.
  const LEASE = 'online-now:lease';
  let renewal = 0;
  let heard = 0; // when a leader last spoke
  const lease = () => parse(localStorage.getItem(LEASE) || '{}');
  const unlead = () => {
    if (leader && lease().id === tab) localStorage.removeItem(LEASE);
    leader = false;
    if (source) source.close();
    source = openKey = null;
  };
  const elect = () => {
    const held = lease();
    if (leader && held.id !== tab) return unlead(); // a throttled leader's lease ran out and another tab took it
    if (held.id && held.id !== tab && held.until > Date.now() && Date.now() - heard < 8000) return;
    localStorage.setItem(LEASE, JSON.stringify({ id: tab, until: Date.now() + 8000 }));
    if (leader) return post({ t: 'lead' });
    // Two tabs may write at once: the one whose write stands leads.
    setTimeout(() => {
      if (leader || !chan || lease().id !== tab) return;
      leader = true;
      subs = {};
      subs[tab] = mySub();
      post({ t: 'hello' });
      reconnect();
    }, 50);
  };

  const alone = () => {
    if (chan) chan.close();
    chan = null;
    subs = {};
    subs[tab] = mySub();
    reconnect();
  };

  // At start, and back from the back/forward cache.
  const join = () => {
    try {
      chan = new BroadcastChannel('online-now');
      lease();
    } catch {
      return alone(); // no BroadcastChannel, or no localStorage (a sandboxed frame): a stream of our own
    }
    chan.onmessage = (e) => {
      const m = e.data || {};
      if (m.t === 'ev') {
        if (m.id) last = m.id;
        handle(m.type, m.data);
      } else if (m.t === 'hello') post(mySub());
      else if (m.t === 'lead') heard = Date.now();
      else if (leader && m.t === 'sub') {
        subs[m.id] = m;
        post({ t: 'lead' });
        reconnect();
      } else if (leader && m.t === 'bye') {
        delete subs[m.id];
        reconnect();
      }
    };
    post(mySub());
    // A living leader answers our subscription first.
    setTimeout(elect, 250);
    clearInterval(renewal);
    renewal = setInterval(elect, 2000);
  };

  const start = () => {
    d.addEventListener('visibilitychange', onVisibility);
    onVisibility();
    join();
  };

  w.addEventListener('storage', (e) => {
    // The leader left: someone takes over now, not at the next renewal.
    if (e.key === LEASE && !e.newValue && chan) elect();
  });
  w.addEventListener('pagehide', (e) => {
    if (room && nav.sendBeacon) nav.sendBeacon(base + 'leave', JSON.stringify({ tab, room }));
    post({ t: 'bye', id: tab });
    unlead();
    // Kept in the back/forward cache: nothing of ours stays open (a message on an open channel would evict the page).
    if (e.persisted) {
      clearInterval(renewal);
      if (chan) chan.close();
      chan = null;
    }
  });
  // Back from the back/forward cache: we left the room, the channel and the stream, so join them again.
  w.addEventListener('pageshow', (e) => {
    if (!e.persisted) return;
    onVisibility();
    join();
  });

  const api = {
    edit() {
      mode = 'editing';
      beat();
    },
    view() {
      mode = 'viewing';
      held = false; // giving the lock up ourselves is not a takeover
      beat();
    },
    takeOver() {
      mode = 'editing';
      beat({ takeover: true });
    },
    ask() {
      asking = true;
      mode = 'editing';
      beat({ ask: 'new' });
    },
    // The holder's page gets its cancelable chance to save first, then hands over `grace` later.
    handOver() {
      if (dispatch('handover', {})) setTimeout(() => beat({ handover: true }), grace);
    },
    decline() {
      beat({ decline: true });
    },
    on(name, fn) {
      d.addEventListener('online-now:' + name, (e) => fn(e.detail));
    },
  };
  w.OnlineNow = api;

  d.addEventListener('click', (e) => {
    const names = ['takeover', 'edit', 'view', 'ask', 'handover', 'decline'];
    const el = e.target && e.target.closest && e.target.closest(names.map((n) => '[data-online-' + n + ']').join());
    if (!el) return;
    const fns = [api.takeOver, api.edit, api.view, api.ask, api.handOver, api.decline];
    fns[names.findIndex((n) => el.hasAttribute('data-online-' + n))]();
  });

  if (d.readyState === 'loading') d.addEventListener('DOMContentLoaded', start);
  else start();
})();
