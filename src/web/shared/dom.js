// Building nodes with text only, for every screen (the terminal, the console, the CGC's page):
// data is inserted with append() and attributes, never as HTML; and reading a Server-Sent Events
// stream with fetch() (the terminal's and the center's streams). Loaded before each page's script.
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

/**
 * Opens a Server-Sent Events stream with fetch(), resuming after `lastId` when given:
 * `{response}` when it answered 200, else `{status, problem, retryAfter}` (`status` 0: no answer).
 */
async function openSse(url, lastId, signal) {
  const headers = { Accept: 'text/event-stream' };
  if (lastId) headers['Last-Event-ID'] = lastId;
  let r;
  try {
    r = await fetch(url, { headers, cache: 'no-store', signal });
  } catch (_) {
    return { response: null, status: 0, problem: null, retryAfter: 0 };
  }
  if (r.ok) return { response: r, status: r.status, problem: null, retryAfter: 0 };
  const problem = await r.json().catch(() => null);
  return { response: null, status: r.status, problem, retryAfter: Number(r.headers.get('retry-after')) || 0 };
}

/**
 * Reads a Server-Sent Events body frame by frame until it ends or `alive()` turns false (it
 * throws when the connection is cut): `onChunk()` for every chunk received (heartbeats
 * included), `onFrame({event, id, data})` for every frame that is more than comments, `data`
 * the parsed JSON (`{}` when absent, `null` when it does not parse).
 */
async function readSse(body, alive, onChunk, onFrame) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done || !alive()) return;
    onChunk();
    buf += value.replace(/\r\n?/g, '\n');
    let i;
    while ((i = buf.indexOf('\n\n')) >= 0) {
      const frame = parseSseFrame(buf.slice(0, i));
      buf = buf.slice(i + 2);
      if (frame) onFrame(frame);
    }
  }
}

function parseSseFrame(text) {
  let event = 'message';
  let id = null;
  const data = [];
  let comments = true;
  for (const line of text.split('\n')) {
    if (line.startsWith(':')) continue;
    comments = false;
    const colon = line.indexOf(':');
    const name = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
    if (name === 'event') event = value;
    else if (name === 'data') data.push(value);
    else if (name === 'id') id = value;
  }
  if (comments) return null;
  let parsed = null;
  try { parsed = data.length ? JSON.parse(data.join('\n')) : {}; } catch (_) { parsed = null; }
  return { event, id, data: parsed };
}
