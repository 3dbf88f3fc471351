import { instructionsPerRequest, MANY_USERS } from './instructions.mjs';
const cases = [
  { store: 'memory-status', n: 100_000, traffic: MANY_USERS },
  { store: 'memory-transitions', n: 100_000, traffic: MANY_USERS },
];
const counted = await instructionsPerRequest({ cases, K: 2000, W: 3000, R: 5000, repeats: 3 });
console.log(counted.text);
