// @ts-check
/**
 * A confirmation asked inside the page (a modal `<dialog>`, not `window.confirm`, so it is
 * styled, labelled and testable): resolves true only when the user presses the action button.
 */
import { h } from './dom.js';

/**
 * @param {{title: string, body: string, action: string, danger?: boolean}} what
 * @returns {Promise<boolean>}
 */
export function confirmAction(what) {
  return new Promise((resolve) => {
    const ok = h('button', { type: 'button', class: what.danger ? 'danger solid' : '', id: 'confirm-ok' }, what.action);
    const cancel = h('button', { type: 'button', class: 'secondary', id: 'confirm-cancel' }, 'Cancel');
    const dialog = /** @type {HTMLDialogElement} */ (h('dialog', { class: 'confirm', 'aria-labelledby': 'confirm-title', 'aria-describedby': 'confirm-body' },
      h('h2', { id: 'confirm-title' }, what.title),
      h('p', { id: 'confirm-body' }, what.body),
      h('div', { class: 'actions' }, cancel, ok)));
    let answer = false;
    ok.addEventListener('click', () => {
      answer = true;
      dialog.close();
    });
    cancel.addEventListener('click', () => dialog.close());
    dialog.addEventListener('close', () => {
      dialog.remove();
      resolve(answer);
    });
    document.body.append(dialog);
    dialog.showModal();
    cancel.focus();
  });
}
