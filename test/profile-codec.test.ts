// How profiles are stored in Redis and read back. The fast reading of the usual
// one-field profile must give exactly what the full JSON reading gives.
import { expect } from 'chai';
import { randomInt } from 'node:crypto';
import { encodeProfile, plainProfile, profileOf, storedProfile } from '../lib/stores/redis/profile-codec';

const full = (stored: string): unknown => profileOf(storedProfile(stored));

describe('profile codec', () => {
  it('reads the usual one-field profile without JSON.parse, for numeric and string ids', () => {
    for (const [id, profile] of [
      [42, { username: 'ann' }],
      ['u-7', { username: 'Zoë ÿ' }],
      [1, { name: '' }],
      [2, { displayName: 'q'.repeat(256) }],
    ] as const) {
      const stored = `1732844400123456|${encodeProfile(id, profile)}`;
      expect(plainProfile(storedProfile(stored)), stored).to.deep.equal(profile);
      expect(full(stored)).to.deep.equal(profile);
    }
  });

  it('leaves every other form to the full reading', () => {
    for (const json of [
      '{"username":"ann","role":"x"}',
      '{"username":"ann","hidden":true}',
      '{"hidden":"x"}',
      '{"__proto__":"x"}',
      '{"id":"x"}',
      '{"username":"a\\"b"}',
      '{"username":"a\\\\b"}',
      '{"username":"a\\nb"}',
      '{"username":42}',
      '{ "username":"ann"}',
      `{"username":"${'q'.repeat(257)}"}`,
      `{"${'n'.repeat(65)}":"x"}`,
      '{"a":"}',
      '{"}',
      '',
    ]) {
      expect(plainProfile(storedProfile(`1|#${json}`)), json).to.equal(undefined);
      expect(plainProfile(storedProfile(`1|${json}`)), json).to.equal(undefined);
    }
  });

  it('agrees with the full reading on random texts, whenever it reads one (seeded)', () => {
    const seed = randomInt(1, 2 ** 31);
    console.log(`      codec seed ${seed}`);
    let state = seed;
    const rand = (n: number): number => {
      state = (Math.imul(state ^ (state >>> 15), 2654435761) + 0x6d2b79f5) >>> 0;
      return state % n;
    };
    const pieces = [
      '{"',
      '"}',
      '":"',
      '"',
      '\\',
      '\n',
      '\u0000',
      'a',
      'username',
      'name',
      'hidden',
      '__proto__',
      'id',
      'é',
      '😀',
      '\ud800',
      ':',
      ',',
      '#',
      '|',
      ' ',
      'x'.repeat(60),
      'y'.repeat(250),
    ];
    let read = 0;
    for (let i = 0; i < 20_000; i++) {
      // Mostly near the usual form, so the fast reading is taken often.
      const body =
        rand(3) === 0
          ? Array.from({ length: 1 + rand(8) }, () => pieces[rand(pieces.length)]).join('')
          : `{"${Array.from({ length: rand(3) }, () => pieces[rand(pieces.length)]).join('')}${pieces[rand(9) + 6]}":"${Array.from({ length: rand(4) }, () => pieces[rand(pieces.length)]).join('')}"}`;
      const stored = `${rand(1e6)}|${rand(2) === 0 ? '#' : ''}${body}`;
      const fast = plainProfile(storedProfile(stored));
      if (fast === undefined) continue;
      read++;
      expect(fast, `seed ${seed}: ${JSON.stringify(stored)}`).to.deep.equal(full(stored));
    }
    expect(read).to.be.greaterThan(1000);
  });
});
