// The arena that keeps usernames off the heap: what goes in comes out, through frees and compactions.
import { expect } from 'chai';
import { randomInt } from 'node:crypto';
import { TextArena } from '../lib/core/text-arena';

describe('TextArena', () => {
  it('gives back each Latin-1 string of 1 to 255 characters it took, and tells equal from unequal without a string', () => {
    const arena = new TextArena();
    const texts = ['a', 'alice', '\u0000x\u0000', 'Zoë ÿ', 'q'.repeat(255), 'alice2'];
    const at = texts.map((t) => arena.add(t));
    texts.forEach((t, i) => {
      expect(at[i]).to.be.at.least(0);
      expect(arena.read(at[i])).to.equal(t);
      expect(arena.equals(at[i], t)).to.equal(true);
    });
    expect(arena.equals(at[1], 'alice2')).to.equal(false);
    expect(arena.equals(at[5], 'alice')).to.equal(false);
    expect(arena.equals(at[1], 'alicf')).to.equal(false);
  });

  it('refuses what it cannot hold in a byte a character: empty, over 255, beyond Latin-1', () => {
    const arena = new TextArena();
    for (const text of ['', 'q'.repeat(256), 'Ĳ', '名前', '😀', `ok${'€'}`]) expect(arena.add(text), JSON.stringify(text)).to.equal(-1);
    // A refused string leaves nothing behind: the next one is read right.
    const at = arena.add('bob');
    expect(arena.read(at)).to.equal('bob');
  });

  it('keeps every held string through random adds, frees and compactions (seeded, against a Map)', () => {
    const seed = randomInt(1, 2 ** 31);
    console.log(`      arena seed ${seed}`);
    let state = seed;
    const rand = (n: number): number => {
      state = (Math.imul(state, 1103515245) + 12345) >>> 0;
      return state % n;
    };
    const arena = new TextArena();
    const held = new Map<number, [number, string]>(); // handle → [offset, text]
    let compactions = 0;
    for (let step = 0; step < 20_000; step++) {
      if (held.size > 0 && rand(2) === 0) {
        const handles = [...held.keys()];
        const handle = handles[rand(handles.length)];
        arena.free(held.get(handle)![0]);
        held.delete(handle);
      } else {
        const text = String.fromCharCode(...Array.from({ length: 1 + rand(255) }, () => rand(256)));
        const at = arena.add(text);
        expect(arena.read(at), `seed ${seed} step ${step}`).to.equal(text);
        held.set(step, [at, text]);
      }
      if (arena.wasteful) {
        compactions++;
        arena.compact((move) => {
          for (const record of held.values()) record[0] = move(record[0]);
        });
      }
      if (step % 1000 === 0) for (const [at, text] of held.values()) expect(arena.read(at), `seed ${seed} step ${step}`).to.equal(text);
    }
    for (const [at, text] of held.values()) expect(arena.equals(at, text), `seed ${seed}`).to.equal(true);
    expect(compactions).to.be.at.least(2);
  });
});
