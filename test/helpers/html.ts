// Reads our own templates' markers (data-testid, data-user-id) out of rendered HTML.

/** Text of the first element with this data-testid. */
export function testId(html: string, id: string): string {
  const match = new RegExp(`data-testid="${id}"[^>]*>([^<]*)<`).exec(html);
  if (!match) throw new Error(`no element with data-testid="${id}" in the page`);
  return match[1].trim();
}

/** data-user-id values of the "online now" list, in page order. */
export function listedIds(html: string): string[] {
  const list = /data-testid="online-list">([\s\S]*?)<\/ul>/.exec(html);
  if (!list) return [];
  return [...list[1].matchAll(/data-user-id="([^"]*)"/g)].map((m) => m[1]);
}

/** The badge ("Online"/"Offline") in the users-table row of one user. */
export function badgeOf(html: string, userId: string | number): string {
  const table = /data-testid="users-table">([\s\S]*?)<\/table>/.exec(html);
  if (!table) throw new Error('no users table in the page');
  const row = new RegExp(`<tr data-user-id="${userId}">([\\s\\S]*?)</tr>`).exec(table[1]);
  if (!row) throw new Error(`no row for user ${userId}`);
  const badge = /data-testid="badge">([^<]*)</.exec(row[1]);
  if (!badge) throw new Error(`no badge in the row of user ${userId}`);
  return badge[1];
}
