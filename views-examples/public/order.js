'use strict';
// An order page: when someone takes the lock over, this page is no longer editing, so its
// "Stop editing" link becomes "Edit this order" (which asks for the lock again, like anyone's).
const notEditing = () => {
  const stop = document.querySelector('[data-testid=stop-editing]');
  if (!stop) return;
  stop.textContent = 'Edit this order';
  stop.href = `${stop.pathname}?edit=1`;
  stop.dataset.testid = 'edit';
};
// Taken over by someone, or released by staff: the same for this page.
document.addEventListener('online-now:takenover', notEditing);
document.addEventListener('online-now:released', notEditing);

// Saving without leaving the page (the tab keeps its lock): the server answers 423 with who holds
// the lock when it is not ours, or 503 when it cannot confirm it; the page shows what it says.
const form = document.querySelector('[data-testid=save-form]');
const save = async () => {
  const result = document.querySelector('[data-testid=save-result]');
  try {
    const res = await fetch(form.action, { method: 'POST', headers: { Accept: 'application/json' }, body: new URLSearchParams(new FormData(form)) });
    const body = await res.json();
    result.textContent = res.ok ? 'Saved.' : body.message;
  } catch {
    result.textContent = 'Not saved: the server did not answer.';
  }
};
form?.addEventListener('submit', (event) => {
  event.preventDefault();
  void save();
});
// Before the lock passes to someone who asked for it (accepted here, or unanswered while away): save first.
document.addEventListener('online-now:handover', () => void save());
