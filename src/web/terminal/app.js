// The web terminal: a live list over Server-Sent Events, a detail pane with the audit receipt,
// and name search. Case data is only ever inserted as text (never as HTML). The officer's
// token lives in an HttpOnly cookie set by POST /v1/terminal/session, because EventSource
// cannot send an Authorization header; the token stays bound to this terminal's certificate.
'use strict';

const $ = (id) => document.getElementById(id);
const cases = new Map(); // ref -> case event data
let selected = null;     // ref shown in the detail pane
let source = null;
let synced = false;

const SEX = { male: '男', female: '女', unknown: '不明' };
const STATUS = {
  intake: '受理', investigating: '調査中', temporary_protection: '一時保護', in_care: '施設入所・里親委託',
  returned_home: '家庭復帰', closed: '終結',
};
const ABUSE = { physical: '身体的虐待', neglect: 'ネグレクト', sexual: '性的虐待', psychological: '心理的虐待' };
const RISK = { high: '高', medium: '中', low: '低' };
const REL = {
  mother: '母', father: '父', stepmother: '継母', stepfather: '継父', grandparent: '祖父母',
  partner: '交際相手', other: 'その他',
};
const H48 = 48 * 3600 * 1000;

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'class') e.className = v; else e.setAttribute(k, v);
  }
  for (const c of children) if (c != null) e.append(c);
  return e;
}

// Badges are computed only from fields the agreement let this terminal see; `allowed` says
// whether an absent safety confirmation is "not set" or merely "not shared".
function badges(d) {
  const c = d.case || {};
  const out = [];
  const a = c.abuse;
  if (a && (a.injury || (a.types || []).some((t) => t === 'neglect' || t === 'sexual'))) {
    out.push(['外傷・ネグレクト・性的虐待', 'b-ins']);
  }
  const allowed = d.allowed || [];
  if (c.intake_at && allowed.includes('safety_confirmed_at') && !c.safety_confirmed_at
      && Date.now() - Date.parse(c.intake_at) >= H48) {
    out.push(['48時間未確認', 'b-48']);
  }
  if (c.status === 'returned_home') out.push(['家庭復帰', 'b-home']);
  if (c.flags && c.flags.missing === true) out.push(['所在不明', 'b-missing']);
  return out.map(([t, cls]) => el('span', { class: 'badge ' + cls }, t));
}

function since(iso) {
  const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  if (s < 60) return s + '秒前';
  if (s < 3600) return Math.floor(s / 60) + '分前';
  if (s < 86400) return Math.floor(s / 3600) + '時間前';
  return Math.floor(s / 86400) + '日前';
}

function fmtTime(iso) {
  const t = new Date(iso);
  return isNaN(t) ? iso : t.toLocaleString('ja-JP', { dateStyle: 'medium', timeStyle: 'short' });
}

function row(d, fresh) {
  const c = d.case || {};
  const child = c.child || {};
  const li = el('li', { role: 'option', id: 'case-' + d.ref, 'data-ref': d.ref, 'aria-selected': String(d.ref === selected) },
    el('div', { class: 'row1' },
      el('span', { class: 'name' }, child.name || '（氏名非共有）'),
      child.name_kana ? el('span', { class: 'kana' }, child.name_kana) : null,
      el('span', { class: 'age', 'data-updated': d.updated_at, title: fmtTime(d.updated_at) }, '更新 ' + since(d.updated_at))),
    el('div', { class: 'row2' }, ...badges(d), el('span', {}, d.ref)));
  if (fresh) li.classList.add('fresh');
  li.addEventListener('click', () => select(d.ref));
  return li;
}

function sorted() {
  return [...cases.values()].sort((a, b) => Date.parse(b.updated_at) - Date.parse(a.updated_at));
}

function renderList(freshRef) {
  const list = $('list');
  list.replaceChildren(...sorted().map((d) => row(d, d.ref === freshRef)));
  $('count').textContent = '共有事案 ' + cases.size + '件';
  $('empty').hidden = cases.size > 0 || !synced || !$('results').hidden;
}

function field(dl, label, value) {
  if (value == null || value === '') return;
  dl.append(el('dt', {}, label), el('dd', {}, String(value)));
}

function renderDetail(d) {
  const pane = $('detail');
  if (!d) {
    pane.replaceChildren(el('p', { class: 'muted' }, '事案を選択してください（↑↓で移動、Enterで表示、/で検索）。'));
    return;
  }
  const c = d.case || {};
  const child = c.child || {};
  const dl = el('dl');
  field(dl, '事案番号', d.ref);
  field(dl, '氏名（カナ）', child.name_kana);
  field(dl, '性別', SEX[child.sex] || child.sex);
  field(dl, '生年月日', child.birth_date);
  if (child.address) {
    field(dl, '住所', [child.address.municipality_code, child.address.text].filter(Boolean).join(' '));
  }
  if (c.guardians) {
    field(dl, '保護者', c.guardians.map((g) => g.name + (g.relationship ? '（' + (REL[g.relationship] || g.relationship) + '）' : '')).join('、'));
  }
  if (c.abuse) {
    field(dl, '虐待種別', (c.abuse.types || []).map((t) => ABUSE[t] || t).join('、') + (c.abuse.injury ? '（外傷あり）' : ''));
  }
  field(dl, 'リスク', RISK[c.risk_level]);
  field(dl, '状況', STATUS[c.status] || c.status);
  if (c.intake_at) field(dl, '受理日時', fmtTime(c.intake_at));
  if ((d.allowed || []).includes('safety_confirmed_at')) {
    field(dl, '安全確認', c.safety_confirmed_at ? fmtTime(c.safety_confirmed_at) : '未確認');
  }
  if (c.flags && c.flags.missing != null) field(dl, '所在', c.flags.missing ? '所在不明' : '所在確認済み');
  if (c.flags && c.flags.dv != null) field(dl, 'DV', c.flags.dv ? 'DV事案（住所は非提供）' : 'なし');
  field(dl, '家族の状況', c.household);
  field(dl, '保育所等・就学', c.care_setting);
  if (c.center_contact) field(dl, '児童相談所 担当', c.center_contact.name + '　' + c.center_contact.phone);
  field(dl, '版', d.version);
  if (d.updated_at) field(dl, '更新日時', fmtTime(d.updated_at) + '（' + since(d.updated_at) + '）');
  const r = d.receipt || {};
  const receipt = el('div', { class: 'receipt', id: 'receipt' },
    el('div', {}, '開示記録（監査ログ） 番号 ', el('strong', {}, String(r.audit_index))),
    el('div', {}, '根拠条項 ', el('code', {}, r.clause || '')),
    // The checkpoint note's second and third lines: the tree size and root it signs.
    el('div', {}, '署名付きチェックポイント ', el('code', {},
      'size ' + ((r.checkpoint || '').split('\n')[1] || '?') + ' root ' +
      ((r.checkpoint || '').split('\n')[2] || '').slice(0, 16) + '…')),
    el('div', {}, '包含証明 ', el('code', {}, String((r.inclusion_proof || []).length) + ' hashes')));
  pane.replaceChildren(
    el('h2', {}, child.name || '（氏名非共有）'),
    el('div', { class: 'badges' }, ...badges(d)),
    dl, receipt);
}

function select(ref, focus) {
  selected = ref;
  for (const li of document.querySelectorAll('.cases li')) {
    li.setAttribute('aria-selected', String(li.dataset.ref === ref));
  }
  const li = document.getElementById('case-' + ref);
  if (li && focus !== false) li.scrollIntoView({ block: 'nearest' });
  renderDetail(cases.get(ref) || searchHits.get(ref));
}

function setConn(state, text) {
  const c = $('conn');
  c.dataset.state = state;
  c.textContent = text;
}

function showSignIn(message) {
  $('app').hidden = true;
  $('signin').hidden = false;
  $('signout').hidden = true;
  $('signin-error').textContent = message || '';
  setConn('off', '未接続');
}

function connect() {
  if (source) source.close();
  let opened = false;
  setConn('connecting', '接続中…');
  source = new EventSource('/v1/terminal/stream');
  source.onopen = () => {
    opened = true;
    $('signin').hidden = true;
    $('app').hidden = false;
    $('signout').hidden = false;
    setConn('live', 'ライブ接続');
  };
  source.onerror = () => {
    if (source.readyState === EventSource.CLOSED) {
      // Refused (401/503): the session is gone or the gateway cannot record disclosures.
      source = null;
      showSignIn(opened ? '接続が切れました。再度サインインしてください。' : '');
    } else {
      setConn('connecting', '再接続中…');
    }
  };
  source.addEventListener('reset', () => { cases.clear(); synced = false; });
  source.addEventListener('case', (e) => {
    const d = JSON.parse(e.data);
    cases.set(d.ref, d);
    if (synced) renderList(d.ref);
    if (d.ref === selected) renderDetail(d);
  });
  source.addEventListener('withdraw', (e) => {
    const { ref } = JSON.parse(e.data);
    cases.delete(ref);
    searchHits.delete(ref);
    const hit = document.querySelector('#results li[data-ref="' + CSS.escape(ref) + '"]');
    if (hit) hit.remove();
    if (ref === selected) { selected = null; renderDetail(null); }
    renderList();
  });
  source.addEventListener('synced', () => {
    synced = true;
    $('synced').textContent = '同期 ' + new Date().toLocaleTimeString('ja-JP');
    renderList();
    if (selected && !cases.has(selected)) { selected = null; renderDetail(null); }
  });
  source.addEventListener('end', () => {
    source.close();
    source = null;
    showSignIn('トークンの有効期限が切れました。再度サインインしてください。');
  });
}

async function signInWith(token) {
  const r = await fetch('/v1/terminal/session', { method: 'POST', headers: { Authorization: 'Bearer ' + token } });
  if (!r.ok) {
    const p = await r.json().catch(() => ({}));
    throw new Error(p.detail || p.title || ('HTTP ' + r.status));
  }
  const s = await r.json();
  $('station').textContent = s.station + ' / ' + s.officer;
  connect();
}

async function devSignIn() {
  $('signin-error').textContent = '';
  try {
    const r = await fetch('/v1/dev/token', {
      method: 'POST', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ subject: $('officer').value.trim() }),
    });
    if (!r.ok) throw new Error('HTTP ' + r.status);
    await signInWith((await r.json()).token);
  } catch (e) {
    $('signin-error').textContent = 'サインインできません: ' + e.message;
  }
}

const searchHits = new Map();

async function search(q) {
  const r = await fetch('/v1/terminal/search?q=' + encodeURIComponent(q));
  const results = $('results');
  searchHits.clear();
  if (!r.ok) {
    const p = await r.json().catch(() => ({}));
    results.replaceChildren(el('li', {}, '検索できません: ' + ((p.errors && p.errors[0] && p.errors[0].detail) || p.title || r.status)));
  } else {
    const body = await r.json();
    for (const d of body.cases) searchHits.set(d.ref, d);
    const items = body.cases.map((d) => row(cases.get(d.ref) || d, false));
    if (items.length === 0) items.push(el('li', { class: 'muted' }, '該当する事案はありません。'));
    if (body.truncated) items.push(el('li', { class: 'muted' }, '該当が多すぎます。条件を絞ってください。'));
    results.replaceChildren(...items);
  }
  results.hidden = false;
  $('list').hidden = true;
  $('clearsearch').hidden = false;
  $('count').textContent = '検索結果 ' + searchHits.size + '件';
}

function clearSearch() {
  $('q').value = '';
  $('results').hidden = true;
  $('list').hidden = false;
  $('clearsearch').hidden = true;
  renderList();
}

function visibleList() {
  return $('results').hidden ? $('list') : $('results');
}

function moveSelection(delta) {
  const items = [...visibleList().querySelectorAll('li[data-ref]')];
  if (items.length === 0) return;
  let i = items.findIndex((li) => li.dataset.ref === selected);
  i = i < 0 ? 0 : Math.min(items.length - 1, Math.max(0, i + delta));
  select(items[i].dataset.ref);
}

document.addEventListener('keydown', (e) => {
  if ($('app').hidden) return;
  const typing = e.target instanceof HTMLInputElement || e.target instanceof HTMLTextAreaElement;
  if (e.key === '/' && !typing) { e.preventDefault(); $('q').focus(); return; }
  if (e.key === 'Escape') { clearSearch(); visibleList().focus(); return; }
  if (typing) return;
  if (e.key === 'ArrowDown' || e.key === 'j') { e.preventDefault(); moveSelection(1); }
  if (e.key === 'ArrowUp' || e.key === 'k') { e.preventDefault(); moveSelection(-1); }
});

document.addEventListener('DOMContentLoaded', async () => {
  $('devsignin').addEventListener('click', devSignIn);
  $('tokensignin').addEventListener('click', () => {
    signInWith($('token').value.trim()).catch((e) => { $('signin-error').textContent = 'サインインできません: ' + e.message; });
  });
  $('signout').addEventListener('click', async () => {
    if (source) source.close();
    source = null;
    await fetch('/v1/terminal/session', { method: 'DELETE' });
    cases.clear();
    selected = null;
    renderDetail(null);
    showSignIn('サインアウトしました。');
  });
  $('searchform').addEventListener('submit', (e) => { e.preventDefault(); search($('q').value); });
  $('clearsearch').addEventListener('click', clearSearch);
  setInterval(() => {
    for (const s of document.querySelectorAll('.age[data-updated]')) s.textContent = '更新 ' + since(s.dataset.updated);
  }, 30000);
  try {
    const cfg = await (await fetch('/terminal/config.json')).json();
    $('dev').hidden = !cfg.dev_sign_in;
  } catch (_) { /* the token field still works */ }
  // A session cookie from earlier may still be valid: try the stream; it falls back to sign-in.
  connect();
});
