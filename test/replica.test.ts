// A RedisStore replica's first read, without Redis: its commands are answered
// from sorted arrays here, so chunk edges and a retirement mid-read can be set
// up exactly. (With a real Redis, redis-store.test.ts reads 60,000 users.)
import { expect } from 'chai';
import { PLAIN_CLOCK } from '../lib/core/presence-index';
import { DEFAULT_ROOM_LIMITS } from '../lib/core/room-index';
import { Outbox } from '../lib/stores/redis/outbox';
import { Replica, type Command } from '../lib/stores/redis/replica';
import { KEY } from '../lib/stores/redis/sync-script';

const NOW = 1_000_000; // ms, on the shared time base

function replicaWith(outbox = new Outbox(() => 1000)): Replica {
  return new Replica({
    prefix: 'p',
    thresholdMs: 60_000,
    maxTracked: 1000,
    maxBots: 100,
    syncInterval: 1000,
    roomLimits: DEFAULT_ROOM_LIMITS,
    clock: { ...PLAIN_CLOCK, markTtlMs: 3_600_000 },
    now: () => NOW,
    outbox,
  });
}

/** Users as Redis would hold them: [key, seen (ms)], and their stored profiles. */
function fakeRedis(replica: Replica, users: [string, number][], epoch = 'e1'): { command: Command; calls: string[][] } {
  const seen = replica.keys[KEY.scope[0]];
  const rows = users.map(([key, at]) => ({ key, score: String(at * 1000) })).sort((a, b) => Number(a.score) - Number(b.score) || (a.key < b.key ? -1 : 1));
  const calls: string[][] = [];
  const above = (bound: string) => (score: string) => (bound.startsWith('(') ? Number(score) > Number(bound.slice(1)) : Number(score) >= Number(bound));
  const command: Command = (args) => {
    calls.push(args);
    const [name, key] = args;
    if (name === 'HMGET' && key === replica.keys[KEY.meta]) return Promise.resolve([epoch, '7']);
    if (name === 'HMGET') return Promise.resolve(args.slice(2).map((k) => `${NOW * 1000}|{"username":"u${k}"}`));
    if (name === 'ZRANGEBYSCORE' && key === seen) {
      const [min, max] = [args[2], args[3]];
      let found = rows.filter((r) => above(min)(r.score) && (max === '+inf' || Number(r.score) <= Number(max.replace('(', ''))));
      const limit = args.indexOf('LIMIT');
      if (limit !== -1) found = found.slice(0, Number(args[limit + 2]));
      return Promise.resolve(found.flatMap((r) => [r.key, r.score]));
    }
    return Promise.resolve([]); // other scopes, marks
  };
  return { command, calls };
}

describe('a RedisStore replica, read without Redis', () => {
  it('reads every user in chunks, ties across a chunk edge too, with profiles, and picks up the feed from the version read first', async () => {
    const replica = replicaWith();
    // Five users share one time across the edges of chunks of 3.
    const users: [string, number][] = [
      ['a', NOW - 50],
      ['b', NOW - 40],
      ['c', NOW - 30],
      ['d', NOW - 30],
      ['e', NOW - 30],
      ['f', NOW - 30],
      ['g', NOW - 30],
      ['h', NOW - 10],
    ];
    const { command, calls } = fakeRedis(replica, users);
    await replica.load(command, 'e1', false, 3);
    const view = replica.indexes[0].view(100, NOW);
    expect(view.count).to.equal(8);
    expect(view.entries.map((e) => e.username).sort()).to.deep.equal(users.map(([k]) => `u${k}`).sort());
    expect(replica.cursor).to.equal(7);
    expect(calls.filter((c) => c[0] === 'ZRANGEBYSCORE' && c[1] === replica.keys[KEY.scope[0]]).length).to.be.greaterThan(2);
  });

  it('reads nothing when Redis is on another epoch (the change feed reads it all), and stops where it is once retired', async () => {
    const fresh = replicaWith();
    await fresh.load(fakeRedis(fresh, [['a', NOW]], 'e2').command, 'e1', false);
    expect(fresh.indexes[0].view(10, NOW).count).to.equal(0);

    const retired = replicaWith();
    const users = Array.from({ length: 10 }, (_, i): [string, number] => [`u${i}`, NOW - 100 + i]);
    const { command } = fakeRedis(retired, users);
    const loading = retired.load(
      async (args) => {
        const reply = await command(args);
        if (args[0] === 'ZRANGEBYSCORE') retired.retired = true; // attached again while the first chunk was out
        return reply;
      },
      'e1',
      false,
      3,
    );
    await loading;
    expect(retired.indexes[0].view(10, NOW).count).to.equal(0);
  });

  it('skips a user whose logout here Redis has not had yet', async () => {
    const outbox = new Outbox(() => 1000);
    const replica = replicaWith(outbox);
    outbox.add(0, 'b', NOW - 20); // signed out after Redis last saw them
    await replica.load(
      fakeRedis(replica, [
        ['a', NOW - 50],
        ['b', NOW - 40],
      ]).command,
      'e1',
      false,
    );
    expect(replica.indexes[0].has('a')).to.equal(true);
    expect(replica.indexes[0].has('b')).to.equal(false);
  });
});
