// Redis's clock as one process estimates it (lib/stores/redis/redis-clock.ts), on a local clock the test moves.
import { expect } from 'chai';
import { RedisClock } from '../lib/stores/redis/redis-clock';

describe('RedisClock: the estimate of Redis’s clock one process stamps its events with', () => {
  it('moves onto Redis’s clock at its first measurement, then never goes back: a quicker round trip that moves the estimate back holds it still until it catches up', () => {
    let local = 1000;
    const clock = new RedisClock(() => local);
    const before = clock.now(); // a guess from the wall clock
    // Redis said 5,150 at the midpoint of a 300 ms round trip: the offset is 4,000, to within 150 ms.
    const moved = clock.measure(5150, 1000, 1300);
    expect(moved).to.equal(5000 - before);
    local = 1300;
    expect(clock.now()).to.equal(5300);
    local = 1400;
    expect(clock.now()).to.equal(5400);
    // A 10 ms round trip says the offset is 3,900: the estimate would go back 100 ms.
    clock.measure(5305, 1400, 1410);
    const seen: number[] = [];
    for (local = 1410; local <= 1520; local += 10) seen.push(clock.now());
    expect(seen.slice(0, 10)).to.deep.equal(Array(10).fill(5400)); // still until 1,500 local (5,400 on the new estimate)
    expect(seen.slice(-2)).to.deep.equal([5410, 5420]);
    // Each date it gives is off by at most half the slowest round trip an estimate in use came from.
    expect(clock.worstErrorMs).to.equal(150);
  });
});
