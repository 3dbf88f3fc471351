/**
 * The HTML that live updates put in a page: a room's viewers, its lock, the
 * online list. The same markup the template helpers render at first paint, so
 * a page looks the same before and after an update. Every name is escaped.
 */
import { formatTimeAgo } from './time-ago';

import type { RoomEntry, RoomLock, RoomRequest, RoomSaved, StoredEntry } from '../core/types';

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

/** A shape per status, so that none is told by colour alone (WCAG 1.4.1): the app's own states share one. */
const STATUS_SHAPES: Readonly<Record<string, string>> = { active: '●', idle: '◐', away: '○', offline: '✕' };
const STATUS_NAMES: Readonly<Record<string, string>> = { active: 'Active', idle: 'Idle', away: 'Away', offline: 'Offline' };

/**
 * A status as a badge: a shape per state, and an accessible name a screen
 * reader reads ("Idle"), not the shape's Unicode name. `data-status` is for
 * the app's CSS (a colour, as well as the shape).
 */
export function statusBadgeHtml(status: string): string {
  const name = escapeHtml(STATUS_NAMES[status] ?? status);
  return `<span class="online-status" data-status="${escapeHtml(status)}" role="img" aria-label="${name}" title="${name}">${STATUS_SHAPES[status] ?? '◆'}</span>`;
}

/** The entry's status badge and a space, when it carries a status (status on); else nothing. */
function badgeOf(entry: Readonly<Record<string, unknown>>): string {
  return typeof entry.status === 'string' ? `${statusBadgeHtml(entry.status)} ` : '';
}

/** `<li>` per user in the room, in the order they joined. */
export function hereHtml(entries: readonly RoomEntry[]): string {
  let html = '';
  for (const e of entries) {
    const tabs = e.tabs > 1 ? ` <span class="online-tabs">(${e.tabs} tabs)</span>` : '';
    const mode = e.mode === 'editing' ? ' <span class="online-mode">editing</span>' : '';
    // Their page is in the background: still here (and still holding a lock), just not looking.
    const away = e.away === true ? ' <span class="online-away">away</span>' : '';
    html += `<li data-online-id="${escapeHtml(e.id)}" data-mode="${e.mode}">${badgeOf(e)}${escapeHtml(displayName(e))}${mode}${away}${tabs}</li>`;
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
  return `<p class="online-lock">${who} is editing since ${since}. <button type="button" data-online-takeover>Take over</button> <button type="button" data-online-ask>Ask to edit</button></p>`;
}

/** "this order" for `order:123`: the room name's prefix, when it is a plain word; else "this page". */
export function roomNoun(room: string): string {
  const word = /^([a-z][a-z ]{0,30}):/i.exec(room)?.[1];
  return `this ${word ?? 'page'}`;
}

function ago(date: Date, now: number): string {
  return Number.isFinite(date.getTime()) ? `<time datetime="${date.toISOString()}">${escapeHtml(formatTimeAgo(date, 'en', now))}</time>` : 'a while ago';
}

function personHtml(person: Readonly<Record<string, unknown>>): string {
  return person.hidden === true && person.id === undefined ? 'Someone' : escapeHtml(displayName(person));
}

/** "Ada Lovelace saved this order 10 seconds ago — reload": a page opened before that save shows it. */
export function changedHtml(saved: RoomSaved | null | undefined, room: string, now: number = Date.now()): string {
  if (saved === null || saved === undefined) return '';
  return `<p class="online-changed" role="status">${personHtml(saved)} saved ${escapeHtml(roomNoun(room))} ${ago(saved.at, now)} — <a href="" data-online-reload>reload</a></p>`;
}

/**
 * An ask for the lock, as the holder sees it (with Hand over and Decline) or as
 * the asker does (`asker`); '' for anyone else, and for a declined ask but to its asker.
 */
export function requestHtml(request: RoomRequest | null | undefined, lock: RoomLock | null, asker: boolean, now: number = Date.now()): string {
  if (request === null || request === undefined || lock === null) return '';
  if (asker) {
    const holder = personHtml(lock);
    return request.declined
      ? `<p class="online-request" data-declined>${holder} declined to hand over.</p>`
      : `<p class="online-request">You asked ${holder} to hand over (${ago(request.since, now)}).</p>`;
  }
  if (request.declined) return '';
  return `<p class="online-request">${personHtml(request)} asks to edit (${ago(request.since, now)}). <button type="button" data-online-handover>Hand over</button> <button type="button" data-online-decline>Decline</button></p>`;
}

/** Why a guarded write was refused, as a sentence: who holds the lock, or that it could not be confirmed. */
export function refusedText(lock: RoomLock | null, room: string, confirmed: boolean, now: number = Date.now()): string {
  const noun = roomNoun(room);
  if (!confirmed) return `Not saved: the editing lock of ${noun} cannot be confirmed right now. Try again in a moment.`;
  if (lock === null) return `Not saved: open ${noun} for editing first.`;
  const holder = lock.hidden === true ? 'Someone' : displayName(lock);
  return `Not saved: ${holder} is editing ${noun} (since ${formatTimeAgo(lock.since, 'en', now)}).`;
}

/** The same, as HTML for a page to show. */
export function refusedHtml(text: string): string {
  return `<p class="online-refused" role="alert">${escapeHtml(text)}</p>`;
}

/**
 * A room's lock badge for a list of rooms: "✎ Ada Lovelace", or '' when nobody edits. A screen reader
 * reads "Ada Lovelace is editing", not the pencil's Unicode name.
 */
export function lockBadgeHtml(lock: RoomLock | null): string {
  if (lock === null) return '';
  const who = personHtml(lock);
  const away = lock.away === true ? ' (away)' : '';
  return `<span class="online-lock-badge" role="img" aria-label="${who} is editing${away}" title="Editing since ${escapeHtml(lock.since.toISOString())}">✎ ${who}${away}</span>`;
}

/** `<li>` per listed online user. */
export function listHtml(entries: readonly StoredEntry[]): string {
  let html = '';
  for (const e of entries) html += `<li data-online-id="${escapeHtml(e.id)}">${badgeOf(e)}${escapeHtml(displayName(e))}</li>`;
  return html;
}
