/** Small containers a RedisStore keeps its queues in. */

/** One of each per scope: users, guests, bots, rooms' tabs (ScopeNo). */
export type PerScope<T> = [T, T, T, T];
export const perScope = <T>(make: () => T): PerScope<T> => [make(), make(), make(), make()];

/** Adds to a Map kept in insertion order, dropping the oldest past `max`: every queue a RedisStore keeps is bounded. */
export function boundedSet<K, V>(map: Map<K, V>, key: K, value: V, max: number): void {
  map.delete(key);
  map.set(key, value);
  if (map.size > max) map.delete(map.keys().next().value as K);
}
