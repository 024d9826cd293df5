// @ts-check
/**
 * Building the page: `h(tag, props, ...children)` makes an element; string children become
 * text nodes, so data from the network is always text, never markup. Nothing here (or anywhere
 * in the client) writes `innerHTML`.
 */

/**
 * @param {string} tag
 * @param {Record<string, any> | null} [props] attributes; `on` holds event listeners
 * @param {...(Node | string | number | null | undefined | false | (Node | string)[])} children
 */
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props ?? {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'on') {
      for (const [ev, f] of Object.entries(v)) el.addEventListener(ev, f);
    } else if (k === 'class') {
      el.className = v;
    } else if (k === 'value' || k === 'checked' || k === 'disabled') {
      /** @type {any} */ (el)[k] = v;
    } else {
      el.setAttribute(k, v === true ? '' : String(v));
    }
  }
  append(el, children);
  return el;
}

/** @param {Element} el @param {any[]} children */
function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(typeof c === 'string' || typeof c === 'number' ? document.createTextNode(String(c)) : c);
  }
}

/** Replaces an element's children. @param {Element} el @param {...any} children */
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
}

/** A labelled input. @param {string} label @param {Record<string, any>} props @param {string} [hint] */
export function field(label, props, hint) {
  const input = h('input', props);
  return { input: /** @type {HTMLInputElement} */ (input), el: h('label', null, label, input, hint ? h('span', { class: 'hint' }, hint) : null) };
}

/** A short description of an error for people. @param {unknown} e */
export function describe(e) {
  return e instanceof Error ? e.message : String(e);
}
