/**
 * The HTML that live updates put in a page: a room's viewers, its lock, the
 * online list. The same markup the template helpers render at first paint, so
 * a page looks the same before and after an update. Every name is escaped.
 */
import { formatTimeAgo } from './time-ago';

import type { RoomEntry, RoomLock, StoredEntry } from '../core/types';

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

export function escapeHtml(value: unknown): string {
  return String(value).replace(/[&<>"']/g, (c) => ESCAPES[c]);
}

/** What a person is called: the first of displayName, name, username, else the id. */
export function displayName(entry: Readonly<Record<string, unknown>>): string {
  for (const field of ['displayName', 'name', 'username']) {
    const value = entry[field];
    if (typeof value === 'string' && value !== '') return value;
  }
  const id = entry.id;
  return typeof id === 'string' || typeof id === 'number' ? String(id) : '';
}

/** `<li>` per user in the room, in the order they joined. */
export function hereHtml(entries: readonly RoomEntry[]): string {
  let html = '';
  for (const e of entries) {
    const tabs = e.tabs > 1 ? ` <span class="online-tabs">(${e.tabs} tabs)</span>` : '';
    const mode = e.mode === 'editing' ? ' <span class="online-mode">editing</span>' : '';
    // Their page is in the background: still here (and still holding a lock), just not looking.
    const away = e.away === true ? ' <span class="online-away">away</span>' : '';
    html += `<li data-online-id="${escapeHtml(e.id)}" data-mode="${e.mode}">${escapeHtml(displayName(e))}${mode}${away}${tabs}</li>`;
  }
  return html;
}

/**
 * The lock as a sentence. `mine`: the viewer's own tab holds it. Others get a
 * take-over button (the client script wires `data-online-takeover`).
 */
export function lockHtml(lock: RoomLock | null, mine: boolean, now: number = Date.now()): string {
  if (lock === null) return '';
  const valid = Number.isFinite(lock.since.getTime());
  const since = valid ? `<time datetime="${lock.since.toISOString()}">${escapeHtml(formatTimeAgo(lock.since, 'en', now))}</time>` : 'a while';
  if (mine) return `<p class="online-lock" data-mine>You are editing (since ${since}).</p>`;
  const who = lock.hidden === true ? 'Someone' : escapeHtml(displayName(lock));
  return `<p class="online-lock">${who} is editing since ${since}. <button type="button" data-online-takeover>Take over</button></p>`;
}

/** `<li>` per listed online user. */
export function listHtml(entries: readonly StoredEntry[]): string {
  let html = '';
  for (const e of entries) html += `<li data-online-id="${escapeHtml(e.id)}">${escapeHtml(displayName(e))}</li>`;
  return html;
}
