'use strict';
// The dashboard's "Online now" list, kept live: the client script dispatches
// `online-now:list` with the entries; this draws them in the page's own markup
// and calls preventDefault(), so the script's default list markup is not used.
const STATUS_SHAPES = { active: '●', idle: '◐', away: '○', offline: '✕' };
const STATUS_NAMES = { active: 'Active', idle: 'Idle', away: 'Away', offline: 'Offline' };

document.addEventListener('online-now:list', (event) => {
  const panel = document.querySelector('[data-online-list]');
  if (!panel) return;
  event.preventDefault();
  const { entries } = event.detail;
  const listed = document.querySelector('[data-testid=listed-count]');
  if (listed) listed.textContent = String(entries.length);
  panel.querySelector('[data-testid=online-list]')?.remove();
  panel.querySelector('.empty')?.remove();
  if (entries.length === 0) {
    panel.insertAdjacentHTML('beforeend', '<p class="empty">Nobody is signed in right now.</p>');
    return;
  }
  const list = document.createElement('ul');
  list.className = 'online-list';
  list.dataset.testid = 'online-list';
  for (const entry of entries) {
    const item = document.createElement('li');
    item.dataset.userId = entry.id;
    const name = document.createElement('span');
    name.className = 'name';
    name.textContent = entry.name || entry.username || entry.id; // text, never markup
    if (entry.hidden) {
      const tag = document.createElement('span');
      tag.className = 'tag hidden';
      tag.textContent = 'hidden';
      name.append(' ', tag);
    }
    // The status badge the server renders (onlineStatus with html): a shape per state, and a name, not just a colour.
    const dot = document.createElement('span');
    dot.className = 'dot';
    const badge = document.createElement('span');
    const status = entry.status || 'active';
    const label = STATUS_NAMES[status] || status;
    badge.className = 'online-status';
    badge.dataset.status = status;
    badge.setAttribute('role', 'img');
    badge.setAttribute('aria-label', label);
    badge.title = label;
    badge.textContent = STATUS_SHAPES[status] || '◆';
    dot.append(badge);
    const handle = document.createElement('span');
    handle.className = 'muted';
    handle.textContent = '@' + (entry.username || '');
    // Listed now means active now: as the server renders a fresh entry.
    const ago = document.createElement('span');
    ago.className = 'ago';
    ago.textContent = 'now';
    item.append(dot, ' ', name, ' ', handle, ' ', ago);
    list.append(item);
  }
  panel.append(list);
});
