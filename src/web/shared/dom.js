// Building nodes with text only, for every screen (the terminal, the console, the CGC's page):
// data is inserted with append() and attributes, never as HTML. Loaded before each page's script.
'use strict';

const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v == null || v === false) continue;
    if (k === 'class') e.className = v; else e.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children) if (c != null && c !== false) e.append(c);
  return e;
}

/** Replaces a node's children, skipping absent ones. */
function fill(node, ...children) {
  node.replaceChildren(...children.filter((c) => c != null && c !== false));
}
