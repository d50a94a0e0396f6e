// The CGC's page: the center's own cases, and for each who saw it — opened (an officer opened
// it: detail or print) apart from listed (it was in a list, a search or the live stream) — by
// station, officer, fields and the agreement clause, each with its audit entry and an
// inclusion proof checked here against the log's signed checkpoint. The center's certificate
// is the only credential: no token. The page follows the center's stream (opened, response,
// transfer events) read with fetch(), resuming with Last-Event-ID, and shows the police's
// responses and the pending transfers, accepted or declined here.
'use strict';

const STATUS = {
  intake: '受理', investigating: '調査中', temporary_protection: '一時保護', in_care: '施設入所・里親委託',
  returned_home: '家庭復帰', closed: '終結',
};

const RESPONSE_KINDS = { visited: '臨場', safety_confirmed: '安全確認', protected: '保護', found: '所在判明', other: 'その他' };
const TRANSFER_STATES = { pending: '保留中', accepted: '受入済', declined: '辞退' };

const state = {
  center: null, stations: {}, nextCases: null, caseId: null, caseName: null, nextListed: null,
  responses: new Map(), // id → response row, whether from the list or the stream
};
// The stream's connection: its state is shown as it is (live only while a stream is open).
const conn = { state: 'off', ctl: null, lastId: null, retry: 0, timer: null, lastByte: 0 };

async function init() {
  $('more').addEventListener('click', () => loadCases(state.nextCases));
  $('more-listed').addEventListener('click', () => loadListed(state.nextListed));
  const r = await api('GET', '/v1/center/session');
  if (!r.ok) { $('error').textContent = problemText(r.status, r.problem); return; }
  state.center = r.data.center_id;
  state.stations = r.data.stations || {};
  $('who').textContent = (r.data.name || r.data.center_id) + '（' + r.data.center_id + '）';
  $('transfer-form').addEventListener('submit', (e) => { e.preventDefault(); requestTransfer(); });
  // The stream first, then the lists: an event arriving meanwhile is in one or both, and both
  // are merged by id.
  connect();
  setInterval(watchdog, 5000);
  await Promise.all([loadCases(null), loadResponses(), loadTransfers()]);
}

async function loadCases(after) {
  const q = after == null ? '' : '?after=' + after;
  const r = await api('GET', `/v1/centers/${encodeURIComponent(state.center)}/cases${q}`);
  if (!r.ok) { $('error').textContent = problemText(r.status, r.problem); return; }
  let tbody = document.querySelector('#cases tbody');
  if (after == null || !tbody) {
    fill($('cases'), table(null, ['事案番号', '版', '最終更新', '状況', '児童氏名', '記録'], [], { class: 'own-cases' }));
    tbody = document.querySelector('#cases tbody');
  }
  for (const c of r.data.cases) {
    const button = el('button', { type: 'button', class: 'secondary', 'aria-label': c.case_id + ' の閲覧記録' }, '閲覧記録');
    button.addEventListener('click', () => showSeen(c));
    tbody.append(el('tr', { 'data-case': c.case_id },
      el('td', { class: 'mono' }, c.case_id), el('td', {}, String(c.version)), el('td', {}, fmtTime(c.updated_at)),
      el('td', {}, STATUS[c.status] || c.status || ''), el('td', {}, c.child_name || ''), el('td', {}, button)));
  }
  if (!tbody.children.length) fill($('cases'), el('p', { class: 'muted' }, '送信された事案はありません。'));
  state.nextCases = r.data.next_after ?? null;
  $('more').hidden = state.nextCases == null;
}

// ---- the police's responses -------------------------------------------------------------------

async function loadResponses() {
  let after = 0;
  for (;;) {
    const r = await api('GET', `/v1/centers/${encodeURIComponent(state.center)}/responses?after=${after}`);
    if (!r.ok) { fill($('responses'), problemNode(r)); return; }
    for (const x of r.data.responses) state.responses.set(x.id, x);
    if (!r.data.responses.length || r.data.next_after == null || r.data.next_after === after) break;
    after = r.data.next_after;
  }
  renderResponses();
}

function renderResponses() {
  const rows = [...state.responses.values()].sort((a, b) => a.id - b.id);
  if (!rows.length) { fill($('responses'), el('p', { class: 'muted' }, '警察の対応の記録はありません。')); return; }
  const t = table(null, ['記録日時', '事案番号', '対応', '対応日時', '警察署', '職員', '備考', '監査記録'], [], { class: 'responses' });
  t.querySelector('tbody').append(...rows.map((x) => {
    const v = x.response && typeof x.response === 'object' ? x.response : {};
    return el('tr', { 'data-id': String(x.id), 'data-case': v.case_id || '' },
      el('td', {}, fmtTime(x.recorded_at)), el('td', { class: 'mono' }, v.case_id || ''),
      el('td', {}, RESPONSE_KINDS[v.kind] || v.kind || ''), el('td', {}, fmtTime(v.at)),
      el('td', {}, (state.stations[v.station_id] || v.station_id || '') + (v.terminal_no != null ? ' ' + v.terminal_no + '番端末' : '')),
      el('td', { class: 'mono' }, v.officer || ''), el('td', {}, v.note || ''), el('td', { class: 'mono' }, '#' + x.audit_index));
  }));
  fill($('responses'), t);
}

// ---- transfers (転出・転入) ------------------------------------------------------------------

async function loadTransfers() {
  const r = await api('GET', `/v1/centers/${encodeURIComponent(state.center)}/transfers`);
  if (!r.ok) { fill($('transfers'), problemNode(r)); return; }
  const rows = r.data.transfers || [];
  if (!rows.length) { fill($('transfers'), el('p', { class: 'muted' }, '保留中の転出・転入はありません。')); return; }
  const t = table(null, ['方向', '事案番号', '転出元', '転出先', '依頼日時', '操作'], [], { class: 'transfers' });
  t.querySelector('tbody').append(...rows.map((x) => {
    const incoming = x.direction === 'incoming';
    const actions = el('td', {});
    if (incoming) {
      for (const [action, label, cls] of [['accept', '受け入れる', ''], ['decline', '辞退する', 'secondary']]) {
        const b = el('button', { type: 'button', class: cls || null, 'data-action': action, 'aria-label': x.case_id + ' を' + label }, label);
        b.addEventListener('click', () => decideTransfer(x, action, b));
        actions.append(b, ' ');
      }
    } else {
      actions.append(el('span', { class: 'muted' }, '転出先の判断待ち'));
    }
    return el('tr', { 'data-transfer': String(x.id), 'data-direction': x.direction || '' },
      el('td', {}, incoming ? '転入（受入依頼）' : '転出（依頼中）'), el('td', { class: 'mono' }, x.case_id || ''),
      el('td', { class: 'mono' }, x.from_center || ''), el('td', { class: 'mono' }, x.to_center || ''),
      el('td', {}, fmtTime(x.requested_at)), actions);
  }));
  fill($('transfers'), t);
}

async function decideTransfer(x, action, button) {
  button.disabled = true;
  const r = await api('POST', `/v1/transfers/${encodeURIComponent(x.id)}/${action}`);
  fill($('transfer-result'), r.ok
    ? el('p', { class: 'ok' }, x.case_id + (action === 'accept' ? ' の転入を受け入れました。' : ' の転入を辞退しました。'))
    : problemNode(r));
  await loadTransfers();
  if (r.ok && action === 'accept') await loadCases(null);
}

/** The Japanese message for a refused transfer request, naming the field at fault. */
function transferProblem(r) {
  const fields = (r.problem && Array.isArray(r.problem.errors) ? r.problem.errors : []).map((e) => e && e.pointer);
  if (r.status === 400 && fields.includes('/to_center')) return '転出先の児童相談所IDが正しくありません（登録されていない、またはこの児童相談所自身です）。';
  if (r.status === 404) return 'この児童相談所の事案にその事案番号はありません。';
  if (r.status === 409) return 'この事案はすでに転出依頼中か、転出先に同じ事案番号の事案があります。';
  return problemText(r.status, r.problem);
}

async function requestTransfer() {
  const caseId = $('tr-case').value.trim();
  const to = $('tr-to').value.trim();
  const r = await api('POST', `/v1/cases/${encodeURIComponent(caseId)}/transfer`, { body: { to_center: to } });
  fill($('transfer-result'), r.ok
    ? el('p', { class: 'ok' }, caseId + ' の転出を ' + to + ' に依頼しました（受入の判断待ち）。')
    : el('p', { class: 'error', role: 'alert' }, transferProblem(r)));
  if (r.ok) { $('tr-case').value = ''; $('tr-to').value = ''; }
  await loadTransfers();
}

// ---- the center stream ------------------------------------------------------------------------

function setConn(next, reason) {
  conn.state = next;
  $('conn').dataset.state = next;
  $('conn').textContent = { live: 'ライブ接続', connecting: '接続中…', down: '切断', off: '未接続' }[next];
  document.body.dataset.conn = next;
  const banner = $('conn-banner');
  banner.hidden = next === 'live' || next === 'off';
  banner.dataset.state = next;
  banner.textContent = next === 'live' ? '' : next === 'connecting'
    ? 'ライブ通知に接続しています…'
    : 'ライブ通知の接続が切れています。表示中の情報は最新ではありません。' + (reason ? '（' + reason + '）' : '') + ' 自動的に再接続します。';
}

function connect() {
  clearTimeout(conn.timer);
  if (conn.ctl) conn.ctl.abort();
  const ctl = new AbortController();
  conn.ctl = ctl;
  if (conn.state !== 'down') setConn('connecting');
  readStream(ctl).catch(() => {});
}

function scheduleReconnect(reason, retryAfter) {
  conn.ctl = null;
  setConn('down', reason);
  const delay = Math.max(retryAfter || 0, Math.min(10, 2 ** conn.retry)) * 1000;
  conn.retry = Math.min(conn.retry + 1, 4);
  clearTimeout(conn.timer);
  conn.timer = setTimeout(connect, delay);
}

/** No byte for 40 s (heartbeats come every 15 s): the connection is dead, whatever TCP says. */
function watchdog() {
  if (conn.state === 'live' && Date.now() - conn.lastByte > 40000) {
    if (conn.ctl) conn.ctl.abort();
    scheduleReconnect('応答がありません');
  }
}

async function readStream(ctl) {
  const opened = await openSse(`/v1/centers/${encodeURIComponent(state.center)}/stream`, conn.lastId, ctl.signal);
  const r = opened.response;
  if (!r) {
    if (ctl !== conn.ctl) return;
    if (opened.status === 403) { conn.ctl = null; setConn('off'); $('error').textContent = problemText(opened.status, opened.problem); return; }
    scheduleReconnect(problemText(opened.status, opened.problem), opened.retryAfter);
    return;
  }
  conn.lastByte = Date.now();
  conn.retry = 0;
  setConn('live');
  try {
    await readSse(r.body, () => ctl === conn.ctl, () => { conn.lastByte = Date.now(); }, handleFrame);
  } catch (_) { /* cut: reconnect below */ }
  if (ctl !== conn.ctl) return;
  scheduleReconnect('接続が切断されました');
}

function handleFrame({ event, id, data: d }) {
  if (d == null) { /* unreadable: skipped */ } else if (event === 'response' && d.id != null) {
    state.responses.set(d.id, d);
    renderResponses();
    const v = d.response || {};
    notify('response', v.case_id, d.recorded_at, '警察の対応: ' + (v.case_id || '') + ' — ' + (RESPONSE_KINDS[v.kind] || v.kind || '') + '（' + (state.stations[v.station_id] || v.station_id || '') + '）');
  } else if (event === 'opened') {
    notify('opened', d.case_id, d.at, '開封: ' + (d.case_id || '') + ' — ' + (state.stations[d.station_id] || d.station_id || '') + ' ' +
      (d.terminal_no != null ? d.terminal_no + '番端末 ' : '') + (d.officer || '') + '（' + (CHANNELS[d.channel] || d.channel || '') + '）');
    // The records of the case on screen gain the opening.
    if (state.caseId && state.caseId === d.case_id && !$('seen').hidden) showSeen({ case_id: d.case_id, child_name: state.caseName }, false);
  } else if (event === 'transfer') {
    const incoming = d.to_center === state.center;
    notify('transfer', d.case_id, d.decided_at || d.requested_at, (incoming ? '転入' : '転出') + ': ' + (d.case_id || '') + ' — ' + (TRANSFER_STATES[d.state] || d.state || '') +
      '（' + (d.from_center || '') + ' → ' + (d.to_center || '') + '）');
    loadTransfers();
    if (d.state === 'accepted') loadCases(null);
  }
  // The cursor moves only past an event handled (or one this page does not show).
  if (id != null) conn.lastId = id;
}

/** One line of the live feed, newest first; `at` the event's time as the gateway recorded it. */
function notify(kind, caseId, at, text) {
  const feed = $('feed');
  feed.prepend(el('li', { 'data-kind': kind, 'data-case': caseId || '' }, el('time', {}, fmtTime(at)), ' ', text));
  while (feed.children.length > 50) feed.lastChild.remove();
}

/** One page of the case's disclosures of one kind: `opened` or `listed`. */
function disclosures(kind, after) {
  const q = new URLSearchParams({ kind });
  if (after != null) q.set('after', after);
  return api('GET', `/v1/centers/${encodeURIComponent(state.center)}/cases/${encodeURIComponent(state.caseId)}/disclosures?${q}`);
}

async function showSeen(c, focus = true) {
  state.caseId = c.case_id;
  state.caseName = c.child_name;
  for (const tr of document.querySelectorAll('#cases tr[data-case]')) tr.classList.toggle('selected', tr.dataset.case === c.case_id);
  $('seen').hidden = false;
  $('seen-title').textContent = c.case_id + '（' + (c.child_name || '') + '）を見た記録';
  fill($('opened'));
  fill($('listed'));
  // Every opening, page after page: they are few, and the one thing a center must not miss.
  const opened = [];
  let after = null;
  for (;;) {
    const r = await disclosures('opened', after);
    if (!r.ok) { fill($('opened'), problemNode(r)); return; }
    opened.push(...r.data.disclosures);
    after = r.data.next_after;
    if (after == null) break;
  }
  fill($('opened'), opened.length
    ? disclosureTable('開封（' + opened.length + '件）', opened, 'opened')
    : el('p', { class: 'muted' }, '開封の記録はありません。'));
  await loadListed(null);
  if (focus) $('seen-title').focus();
}

async function loadListed(after) {
  const r = await disclosures('listed', after);
  if (!r.ok) { fill($('listed'), problemNode(r)); return; }
  const existing = $('listed').querySelector('tbody');
  if (after == null || !existing) {
    fill($('listed'), r.data.disclosures.length
      ? disclosureTable('一覧表示', r.data.disclosures, 'listed')
      : el('p', { class: 'muted' }, '一覧表示の記録はありません。'));
  } else {
    existing.append(...r.data.disclosures.map(disclosureRow));
  }
  state.nextListed = r.data.next_after ?? null;
  $('more-listed').hidden = state.nextListed == null;
}

function disclosureTable(caption, rows, kind) {
  const t = table(caption, ['日時', '警察署', '端末', '職員', '経路', '項目', '根拠条項', '監査記録'], [], { class: 'disclosures ' + kind });
  t.querySelector('tbody').append(...rows.map(disclosureRow));
  return t;
}

function disclosureRow(d) {
  const agreement = d.agreement && typeof d.agreement === 'object' ? d.agreement : {};
  const clause = typeof d.clause === 'string' ? d.clause : agreement.clause;
  const terminal = String(d.terminal || '').split(':').slice(-2).join(' ');
  const proofOut = el('div', {});
  const check = el('button', { type: 'button', class: 'secondary' }, '包含証明を確認');
  check.addEventListener('click', () => verify(d, proofOut, check));
  return el('tr', { class: OPENED.has(d.channel) ? 'opened' : null, 'data-index': String(d.audit_index) },
    el('td', {}, fmtTime(d.time)),
    el('td', {}, state.stations[d.station] || d.station || ''),
    el('td', { class: 'mono' }, terminal),
    el('td', { class: 'mono' }, d.officer || ''),
    el('td', {}, (CHANNELS[d.channel] || d.channel || '') + (d.set === 'summary' ? '（一覧項目）' : '')),
    el('td', {}, fieldList(d.fields)),
    el('td', { class: 'mono' }, clause || ''),
    el('td', {}, el('details', {}, el('summary', {}, '#' + d.audit_index), el('pre', { class: 'entry' }, d.line), check, proofOut)));
}

// ---- the receipt: an RFC 9162 inclusion proof against the latest signed checkpoint ----------

const sha256 = async (bytes) => new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
const concat = (...parts) => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return out;
};
const b64 = (s) => Uint8Array.from(atob(s), (ch) => ch.charCodeAt(0));

/** RFC 9162 §2.1.3.2: the root the proof leads to from leaf `index` of a tree of `size`. */
async function rootFrom(index, size, leaf, proof) {
  let fn = index;
  let sn = size - 1;
  let r = leaf;
  for (const p of proof) {
    if (sn === 0) return null;
    if (fn % 2 === 1 || fn === sn) {
      r = await sha256(concat(Uint8Array.of(1), p, r));
      if (fn % 2 === 0) while (fn % 2 === 0 && fn !== 0) { fn = Math.floor(fn / 2); sn = Math.floor(sn / 2); }
    } else {
      r = await sha256(concat(Uint8Array.of(1), r, p));
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 ? r : null;
}

/**
 * Checks the record's receipt: the entry's inclusion proof against the signed checkpoint the
 * answer carried, or, in the instant before a checkpoint covered it, against the latest one.
 */
async function verify(d, out, button) {
  button.disabled = true;
  let cp = d.receipt && d.receipt.checkpoint;
  let proof = d.receipt && d.receipt.inclusion_proof;
  if (!cp) {
    cp = await fetch('/v1/audit/checkpoint', { cache: 'no-store' }).then((r) => (r.ok ? r.text() : null)).catch(() => null);
  }
  const lines = cp ? cp.split('\n') : [];
  const size = Number(lines[1]);
  if (!cp || !Number.isSafeInteger(size) || size <= d.audit_index) {
    fill(out, el('p', { class: 'error' }, '署名付きチェックポイントを取得できません。'));
    button.disabled = false;
    return;
  }
  if (!Array.isArray(proof)) {
    const r = await api('GET', `/v1/audit/proof/inclusion?index=${d.audit_index}&size=${size}`);
    if (!r.ok) { fill(out, problemNode(r)); button.disabled = false; return; }
    proof = r.data.proof;
  }
  const leaf = await sha256(concat(Uint8Array.of(0), new TextEncoder().encode(d.line)));
  const root = await rootFrom(d.audit_index, size, leaf, proof.map(b64));
  const ok = root && btoa(String.fromCharCode(...root)) === lines[2];
  fill(out,
    el('p', { class: ok ? 'ok' : 'error', 'data-verified': ok ? 'yes' : 'no' }, ok
      ? '確認済み: この記録は署名付きチェックポイント（記録数 ' + size + '）の監査ログに含まれています。'
      : '一致しません: この記録はチェックポイントの監査ログに含まれていることを確認できません。'),
    el('p', { class: 'note' }, 'チェックポイントの署名は公開鍵で確認できます（cgc-gateway audit verify-receipt）。'),
    el('pre', { class: 'checkpoint' }, cp));
}

init();
