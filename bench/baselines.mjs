// What users would otherwise copy, written as faithfully as we can read them,
// so they run through the same harness as express-online-now. Each does one
// request's presence work: mark the user, then read what a page shows.
import { LRUCache } from 'lru-cache';

const MAX = 50;

/**
 * The Django recipe (OnlineNowMiddleware): read the shared id list, multi-get
 * each id's "online-<id>" key to keep the fresh ones, move the user to the
 * end, cap at 50, write both back. Its count is the list's length: never past 50.
 */
export function recipeOnLru({ thresholdMs, maxTracked }) {
  const cache = new LRUCache({ max: maxTracked, ttl: thresholdMs });
  return {
    name: 'Django recipe on lru-cache',
    fill(ids) {
      for (const id of ids) cache.set(`online-${id}`, true);
      cache.set('online-now', ids.slice(-MAX));
    },
    request(uid) {
      const ids = cache.get('online-now') ?? [];
      const fresh = ids.filter((id) => cache.get(`online-${id}`) !== undefined);
      const at = fresh.indexOf(uid);
      if (at !== -1) fresh.splice(at, 1);
      fresh.push(uid);
      if (fresh.length > MAX) fresh.shift();
      cache.set(`online-${uid}`, true);
      cache.set('online-now', fresh);
      return { count: fresh.length, ids: fresh };
    },
  };
}

/** The same recipe on Redis, as Django's Redis cache backend runs it: GET, MGET, SET, SET. */
export function recipeOnRedis(redis, { thresholdMs }) {
  const ex = String(Math.ceil(thresholdMs / 1000));
  return {
    name: 'Django recipe on Redis',
    async fill(ids) {
      for (let i = 0; i < ids.length; i += 1000) {
        const chunk = ids.slice(i, i + 1000);
        await Promise.all(chunk.map((id) => redis.sendCommand(['SET', `online-${id}`, '1', 'EX', ex])));
      }
      await redis.sendCommand(['SET', 'online-now', JSON.stringify(ids.slice(-MAX)), 'EX', ex]);
    },
    async request(uid) {
      const ids = JSON.parse((await redis.sendCommand(['GET', 'online-now'])) ?? '[]');
      const values = ids.length ? await redis.sendCommand(['MGET', ...ids.map((id) => `online-${id}`)]) : [];
      const fresh = ids.filter((_, i) => values[i] !== null);
      const at = fresh.indexOf(uid);
      if (at !== -1) fresh.splice(at, 1);
      fresh.push(uid);
      if (fresh.length > MAX) fresh.shift();
      await redis.sendCommand(['SET', `online-${uid}`, '1', 'EX', ex]);
      await redis.sendCommand(['SET', 'online-now', JSON.stringify(fresh), 'EX', ex]);
      return { count: fresh.length, ids: fresh };
    },
  };
}

/** Marks `ids` online now, a thousand per command. */
async function fillInChunks(redis, ids, command) {
  const now = String(Date.now());
  for (let i = 0; i < ids.length; i += 1000) await redis.sendCommand(command(ids.slice(i, i + 1000), now));
}

/** The common Express example: HSET user → time on every request, HGETALL and filter on every page. */
export function hgetallSnippet(redis, { thresholdMs }) {
  return {
    name: 'HSET + HGETALL snippet',
    fill: (ids) => fillInChunks(redis, ids, (chunk, now) => ['HSET', 'online-users', ...chunk.flatMap((id) => [String(id), now])]),
    async request(uid) {
      const now = Date.now();
      await redis.sendCommand(['HSET', 'online-users', String(uid), String(now)]);
      const all = await redis.sendCommand(['HGETALL', 'online-users']);
      const online = [];
      for (let i = 0; i < all.length; i += 2) if (now - Number(all[i + 1]) < thresholdMs) online.push([all[i], Number(all[i + 1])]);
      online.sort((a, b) => b[1] - a[1]);
      return { count: online.length, ids: online.slice(0, MAX).map(([id]) => id) };
    },
  };
}

/** The sorted-set gist: ZADD on every request, ZREVRANGEBYSCORE of the last threshold on every page. Never removes anyone. */
export function sortedSetGist(redis, { thresholdMs }) {
  return {
    name: 'ZADD + ZREVRANGEBYSCORE gist',
    fill: (ids) => fillInChunks(redis, ids, (chunk, now) => ['ZADD', 'online-zset', ...chunk.flatMap((id) => [now, String(id)])]),
    async request(uid) {
      const now = Date.now();
      await redis.sendCommand(['ZADD', 'online-zset', String(now), String(uid)]);
      const online = await redis.sendCommand(['ZREVRANGEBYSCORE', 'online-zset', '+inf', String(now - thresholdMs)]);
      return { count: online.length, ids: online.slice(0, MAX) };
    },
  };
}
