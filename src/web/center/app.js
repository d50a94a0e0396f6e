// The CGC's page: the center's own cases, and for each who saw it — opened (an officer opened
// it: detail or print) apart from listed (it was in a list, a search or the live stream) — by
// station, officer, fields and the agreement clause, each with its audit entry and an
// inclusion proof checked here against the log's signed checkpoint. The center's certificate
// is the only credential: no token.
'use strict';

const STATUS = {
  intake: '受理', investigating: '調査中', temporary_protection: '一時保護', in_care: '施設入所・里親委託',
  returned_home: '家庭復帰', closed: '終結',
};

const state = { center: null, stations: {}, nextCases: null, caseId: null, nextListed: null };

async function init() {
  $('more').addEventListener('click', () => loadCases(state.nextCases));
  $('more-listed').addEventListener('click', () => loadListed(state.nextListed));
  const r = await api('GET', '/v1/center/session');
  if (!r.ok) { $('error').textContent = problemText(r.status, r.problem); return; }
  state.center = r.data.center_id;
  state.stations = r.data.stations || {};
  $('who').textContent = (r.data.name || r.data.center_id) + '（' + r.data.center_id + '）';
  await loadCases(null);
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

/** One page of the case's disclosures of one kind: `opened` or `listed`. */
function disclosures(kind, after) {
  const q = new URLSearchParams({ kind });
  if (after != null) q.set('after', after);
  return api('GET', `/v1/centers/${encodeURIComponent(state.center)}/cases/${encodeURIComponent(state.caseId)}/disclosures?${q}`);
}

async function showSeen(c) {
  state.caseId = c.case_id;
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
  $('seen-title').focus();
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
