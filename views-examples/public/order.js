'use strict';
// An order page: when someone takes the lock over, this page is no longer editing, so its
// "Stop editing" link becomes "Edit this order" (which asks for the lock again, like anyone's).
document.addEventListener('online-now:takenover', () => {
  const stop = document.querySelector('[data-testid=stop-editing]');
  if (!stop) return;
  stop.textContent = 'Edit this order';
  stop.href = `${stop.pathname}?edit=1`;
  stop.dataset.testid = 'edit';
});
