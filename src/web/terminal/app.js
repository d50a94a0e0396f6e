// The officer's web terminal: a live list ordered by urgency, a detail pane filled only when
// the officer opens a case (GET /v1/terminal/cases/{ref}, its own audit entry), missing-child
// alerts, police responses, an audited print layout, an honest connection state and an idle
// lock. Case data is only ever inserted as text (never as HTML). The officer's token lives in
// an HttpOnly cookie set by POST /v1/terminal/session; the stream is read with fetch() so that
// its heartbeats and its refusals (problem+json) are visible to the page.
'use strict';

const SEX = { male: '男', female: '女', unknown: '不明' };
const STATUS = {
  intake: '受理', investigating: '調査中', temporary_protection: '一時保護', in_care: '施設入所・里親委託',
  returned_home: '家庭復帰', closed: '終結',
};
const ABUSE = { physical: '身体的虐待', neglect: 'ネグレクト', sexual: '性的虐待', psychological: '心理的虐待' };
const RISK = { high: '高', medium: '中', low: '低' };
const RISK_RANK = { high: 0, medium: 1, low: 2 };
const REL = {
  mother: '母', father: '父', stepmother: '継母', stepfather: '継父', grandparent: '祖父母',
  partner: '交際相手', other: 'その他',
};
const RESPONSE_KINDS = [
  ['visited', '臨場'], ['safety_confirmed', '安全確認'], ['protected', '保護'], ['found', '所在判明'], ['other', 'その他'],
];
const RESPONSE_FIELDS = { '/kind': '種別', '/at': '日時', '/note': 'メモ' };
const H48 = 48 * 3600 * 1000;

// Japanese for every refusal the gateway answers (problem+json `type`), never its English text.
const PROBLEMS = {
  'token-expired': 'トークンの有効期限が切れました。再度サインインしてください。',
  'officer-revoked': 'この職員のアクセス権は管理者により取り消されています。所属の管理者に連絡してください。',
  'terminal-revoked': 'この端末は管理者により失効処理されています。別の端末を使用し、管理者に連絡してください。',
  unauthorized: '認証できません。トークンが無効か、この端末用に発行されたものではありません。',
  forbidden: 'この操作は許可されていません。',
  'not-found': '該当する事案がありません（閲覧できなくなった可能性があります）。',
  'method-not-allowed': 'このゲートウェイはこの機能に対応していません。',
  'rate-limited': '要求が多すぎます。しばらく待ってから再試行してください。',
  'audit-unavailable': 'ゲートウェイが閲覧記録（監査ログ）を書き込めないため、事案を表示できません。復旧を待っています。',
  'store-unavailable': 'ゲートウェイのデータベースが一時的に利用できません。復旧を待っています。',
  internal: 'ゲートウェイでエラーが発生しました。',
  'invalid-request': '入力に誤りがあります。',
  'too-large': '送信内容が大きすぎます。',
  'ambiguous-case': '事案番号が複数の事案に該当します。',
};
// Refusals that end the session: whoever signed in may not go on from this terminal.
const FATAL = new Set(['token-expired', 'officer-revoked', 'terminal-revoked', 'unauthorized']);
const END_REASONS = { token_expired: 'token-expired', officer_revoked: 'officer-revoked' };

function problemSlug(p) {
  const t = (p && typeof p.type === 'string') ? p.type : '';
  return t.startsWith('urn:cgc-gateway:problem:') ? t.slice('urn:cgc-gateway:problem:'.length) : '';
}

/** The Japanese message for a failed answer (`status` 0: no answer at all). */
function problemText(status, p) {
  const known = PROBLEMS[problemSlug(p)];
  if (known) return known;
  if (status === 0) return 'ゲートウェイに接続できません（ネットワークまたはサーバーの停止）。';
  if (status === 401) return PROBLEMS.unauthorized;
  if (status === 403) return PROBLEMS.forbidden;
  if (status === 404) return PROBLEMS['not-found'];
  if (status === 405) return PROBLEMS['method-not-allowed'];
  if (status >= 500) return 'ゲートウェイでエラーが発生しました（HTTP ' + status + '）。';
  return '要求が受け付けられませんでした（HTTP ' + status + '）。';
}

// ---- state --------------------------------------------------------------------------------

const state = {
  session: null,            // {officer, station, station_name, area}
  centers: new Map(),       // center id -> {name, phone, after_hours_phone}
  municipalities: new Map(),// code -> name
  live: new Map(),          // ref -> item: what the gateway says now
  shown: new Map(),         // ref -> item: what the list shows (changes wait in `pending`)
  pending: new Set(),       // refs whose new or changed item waits for the 「新着」 bar
  synced: false,            // the first full view has arrived
  resetting: false,         // a `reset` came: the full view is arriving again
  hits: new Map(),          // search results by ref; null when not searching
  searching: false,
  active: null,             // ref of the listbox's active option
  detail: null,             // {ref, data, gone, error, seq}
  alerts: new Map(),        // ref -> alert data
};
let conn = { state: 'off', ctl: null, lastByte: 0, lastSynced: 0, retry: 0, timer: null, reason: '', everLive: false };
let config = { dev_sign_in: false, idle_lock_seconds: 600, heartbeat_seconds: 15 };
let lastActivity = Date.now();
let detailSeq = 0;

// ---- small helpers ------------------------------------------------------------------------

const caseOf = (d) => (d && (d.case || d.summary)) || {};
const obj = (v) => (v && typeof v === 'object' ? v : {});

function pad2(n) { return String(n).padStart(2, '0'); }

function hms(ms) {
  const s = Math.floor(Math.abs(ms) / 1000);
  return Math.floor(s / 3600) + ':' + pad2(Math.floor(s / 60) % 60) + ':' + pad2(s % 60);
}

function since(iso) {
  const t = Date.parse(iso);
  if (isNaN(t)) return '';
  const s = Math.max(0, Math.round((Date.now() - t) / 1000));
  if (s < 60) return s + '秒前';
  if (s < 3600) return Math.floor(s / 60) + '分前';
  if (s < 86400) return Math.floor(s / 3600) + '時間前';
  return Math.floor(s / 86400) + '日前';
}

function fmtTime(iso) {
  const t = new Date(iso);
  return isNaN(t) ? '' : t.toLocaleString('ja-JP', { dateStyle: 'medium', timeStyle: 'short' });
}

/** The child's age as an officer says it: 生後N日 / 生後Nか月 for babies, N歳Mか月 under 3. */
function age(birth) {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(birth || '');
  if (!m) return '';
  const b = new Date(+m[1], +m[2] - 1, +m[3]);
  const now = new Date();
  let months = (now.getFullYear() - b.getFullYear()) * 12 + now.getMonth() - b.getMonth();
  if (now.getDate() < b.getDate()) months -= 1;
  if (months < 0) return '';
  if (months < 1) return '生後' + Math.max(0, Math.floor((now - b) / 86400000)) + '日';
  if (months < 12) return '生後' + months + 'か月';
  const y = Math.floor(months / 12);
  return y < 3 ? y + '歳' + (months % 12) + 'か月' : y + '歳';
}

/**
 * The 48-hour rule: from intake until safety is confirmed. `null` when the item does not say
 * (the times are not shared with this audience).
 */
function deadline(d) {
  const c = caseOf(d);
  if (!c.intake_at) return null;
  // An absent confirmation means "not yet" only if the field is shared at all.
  if (Array.isArray(d.allowed) && !d.allowed.includes('safety_confirmed_at')) return null;
  if (c.safety_confirmed_at) return { confirmed: true };
  const left = Date.parse(c.intake_at) + H48 - Date.now();
  return isNaN(left) ? null : { confirmed: false, left };
}

function countdownText(d) {
  const dl = deadline(d);
  if (!dl) return null;
  if (dl.confirmed) return ['安全確認済', 'cd-ok'];
  if (dl.left > 0) return ['48時間まで 残り ' + hms(dl.left), dl.left < 6 * 3600 * 1000 ? 'cd-soon' : 'cd-run'];
  return ['48時間超過 +' + hms(dl.left), 'cd-over'];
}

const isMissing = (d) => obj(caseOf(d).flags).missing === true;
const isOverdue = (d) => { const dl = deadline(d); return !!dl && !dl.confirmed && dl.left <= 0; };

/** Badges, each for one fact: risk, status, DV, missing, and every abuse type on its own. */
function badges(d) {
  const c = caseOf(d);
  const out = [];
  const flags = obj(c.flags);
  if (flags.missing === true) out.push(['所在不明', 'b-missing']);
  if (RISK[c.risk_level]) out.push(['リスク' + RISK[c.risk_level], 'b-risk-' + c.risk_level]);
  if (STATUS[c.status]) out.push([STATUS[c.status], c.status === 'returned_home' ? 'b-home' : 'b-status']);
  if (flags.dv === true) out.push(['DV', 'b-dv']);
  const a = obj(c.abuse);
  for (const t of Array.isArray(a.types) ? a.types : []) if (ABUSE[t]) out.push([ABUSE[t], 'b-abuse']);
  if (a.injury === true) out.push(['外傷あり', 'b-injury']);
  return out.map(([t, cls]) => el('span', { class: 'badge ' + cls }, t));
}

function municipalityName(code) {
  return state.municipalities.get(code) || code;
}

function centerOf(d) {
  const id = d.center_id || String(d.ref || '').split(':')[0];
  return { id, ...(state.centers.get(id) || {}) };
}

// ---- the list -----------------------------------------------------------------------------

function urgency(d) {
  const dl = deadline(d);
  return [
    isMissing(d) ? 0 : 1,
    isOverdue(d) ? 0 : 1,
    RISK_RANK[caseOf(d).risk_level] ?? 3,
    dl && !dl.confirmed ? dl.left : Infinity,
    -(Date.parse(d.updated_at) || 0),
  ];
}

function byUrgency(a, b) {
  const x = urgency(a);
  const y = urgency(b);
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return x[i] < y[i] ? -1 : 1;
  return String(a.ref).localeCompare(String(b.ref));
}

/** Whether the case is in the station's own area: its address is, or the agreement's
 * audience for it is the covering station (a DV case's address is never shown). */
function inArea(d) {
  const code = obj(obj(caseOf(d).child).address).municipality_code;
  if (code && state.session && (state.session.area || []).includes(code)) return true;
  const clause = obj(d.receipt).clause || '';
  return clause.endsWith('/covering_station');
}

function passes(d) {
  const c = caseOf(d);
  if ($('f-area').checked && !inArea(d)) return false;
  const risk = $('f-risk').value;
  if (risk === 'high' && c.risk_level !== 'high') return false;
  if (risk === 'medium' && !['high', 'medium'].includes(c.risk_level)) return false;
  const a = obj(c.abuse);
  const types = Array.isArray(a.types) ? a.types : [];
  switch ($('f-criterion').value) {
    case 'national': return a.injury === true || types.includes('neglect') || types.includes('sexual');
    case 'injury': return a.injury === true;
    case 'neglect': return types.includes('neglect');
    case 'sexual': return types.includes('sexual');
    case 'missing': return isMissing(d);
    default: return true;
  }
}

function optionId(list, ref) { return (list === 'results' ? 'hit-' : 'case-') + ref; }

function row(d, list) {
  const c = caseOf(d);
  const child = obj(c.child);
  const cd = countdownText(d);
  const center = centerOf(d);
  const li = el('li', {
    role: 'option', id: optionId(list, d.ref), 'data-ref': d.ref,
    'aria-selected': String(state.detail != null && state.detail.ref === d.ref),
  },
  el('div', { class: 'row1' },
    el('span', { class: 'name' }, child.name || '（氏名非共有）'),
    age(child.birth_date) ? el('span', { class: 'agey' }, age(child.birth_date)) : null,
    cd ? el('span', { class: 'countdown ' + cd[1], 'data-cd': '' }, cd[0]) : null),
  el('div', { class: 'row2' }, ...badges(d)),
  el('div', { class: 'row3' },
    el('span', {}, center.name || center.id || ''),
    el('span', { class: 'ref' }, d.ref),
    d.updated_at ? el('span', { class: 'updated', 'data-updated': d.updated_at }, '更新 ' + since(d.updated_at)) : null));
  if (state.pending.has(d.ref) && list === 'list') li.classList.add('has-pending');
  li.addEventListener('click', () => { setActive(d.ref, list); openCase(d.ref); });
  return li;
}

function renderList() {
  const items = [...state.shown.values()].filter(passes).sort(byUrgency);
  const list = $('list');
  list.replaceChildren(...items.map((d) => row(d, 'list')));
  if (state.active && !$(optionId('list', state.active)) && !state.searching) state.active = null;
  syncActive();
  // An empty listbox is no listbox: the note says why instead.
  if (!state.searching) list.hidden = items.length === 0;
  $('empty').hidden = items.length > 0 || !state.synced || state.searching;
  updateCount();
}

function updateCount() {
  if (state.searching) return; // a search's count stays until the officer leaves the search
  const shown = $('list').querySelectorAll('li[data-ref]').length;
  $('count').textContent = shown === state.shown.size
    ? '共有事案 ' + state.shown.size + '件'
    : '表示 ' + shown + '件 / 共有事案 ' + state.shown.size + '件';
}

function updateNewBar() {
  const bar = $('newbar');
  const n = state.pending.size;
  bar.hidden = n === 0 || !state.synced || state.searching;
  bar.textContent = '新着 ' + n + '件 — クリックして一覧に反映';
  if (n > 0) announceSoon('新着 ' + n + '件');
}

/** Applies the waiting new and changed cases: the only time rows move. */
function applyPending() {
  for (const ref of state.pending) {
    const d = state.live.get(ref);
    if (d) state.shown.set(ref, d);
  }
  state.pending.clear();
  updateNewBar();
  renderList();
  announce('一覧を更新しました。共有事案 ' + state.shown.size + '件');
}

let announceTimer = null;
function announce(text) {
  clearTimeout(announceTimer);
  $('announce').textContent = text;
}
/** Coalesces bursts (a feed pushing many cases) into one announcement. */
function announceSoon(text) {
  clearTimeout(announceTimer);
  announceTimer = setTimeout(() => { $('announce').textContent = text; }, 1500);
}

function visibleList() { return state.searching ? 'results' : 'list'; }

function setActive(ref, list) {
  state.active = ref;
  syncActive(list);
}

function syncActive(which) {
  for (const name of ['list', 'results']) {
    const box = $(name);
    const li = state.active ? $(optionId(name, state.active)) : null;
    for (const o of box.querySelectorAll('li.active')) o.classList.remove('active');
    if (li) {
      li.classList.add('active');
      box.setAttribute('aria-activedescendant', li.id);
      if (which === name) li.scrollIntoView({ block: 'nearest' });
    } else {
      box.removeAttribute('aria-activedescendant');
    }
  }
}

function markSelected() {
  const ref = state.detail && state.detail.ref;
  for (const li of document.querySelectorAll('.cases li[role="option"]')) {
    li.setAttribute('aria-selected', String(li.dataset.ref === ref));
  }
}

function moveActive(delta) {
  const name = visibleList();
  const items = [...$(name).querySelectorAll('li[data-ref]')];
  if (items.length === 0) return;
  let i = items.findIndex((li) => li.dataset.ref === state.active);
  if (delta === 'first') i = 0;
  else if (delta === 'last') i = items.length - 1;
  else i = i < 0 ? 0 : Math.min(items.length - 1, Math.max(0, i + delta));
  setActive(items[i].dataset.ref, name);
}

// ---- the detail pane: always the full view from GET /v1/terminal/cases/{ref} ---------------

async function openCase(ref, refresh) {
  const seq = ++detailSeq;
  if (!refresh || !state.detail || state.detail.ref !== ref) {
    state.detail = { ref, data: null, gone: false, error: '' };
    markSelected();
    renderDetail();
  }
  const r = await api('GET', '/v1/terminal/cases/' + encodeURIComponent(ref));
  if (seq !== detailSeq || !state.detail || state.detail.ref !== ref) return;
  if (r.ok) {
    state.detail = { ref, data: r.json, gone: false, error: '' };
  } else if (r.status === 404) {
    state.detail = { ref, data: null, gone: true, error: '' };
  } else {
    state.detail.error = problemText(r.status, r.problem);
  }
  renderDetail();
}

let refreshTimer = null;
function refreshDetailSoon() {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(() => { if (state.detail && !state.detail.gone) openCase(state.detail.ref, true); }, 250);
}

function field(dl, label, value) {
  if (value == null || value === '') return;
  dl.append(el('dt', {}, label), el('dd', {}, String(value)));
}

/** The case's fields as a definition list (the detail pane and the printout share it). */
function caseFields(d) {
  const c = caseOf(d);
  const child = obj(c.child);
  const dl = el('dl', { class: 'fields' });
  field(dl, '事案番号', d.ref);
  field(dl, '氏名（カナ）', child.name_kana);
  field(dl, '性別', SEX[child.sex] || child.sex);
  if (child.birth_date) field(dl, '生年月日', child.birth_date + (age(child.birth_date) ? '（' + age(child.birth_date) + '）' : ''));
  const addr = obj(child.address);
  if (addr.municipality_code || addr.text) {
    field(dl, '住所', [addr.municipality_code ? municipalityName(addr.municipality_code) : '', addr.text].filter(Boolean).join(' '));
  }
  if (Array.isArray(c.guardians) && c.guardians.length) {
    field(dl, '保護者', c.guardians.map((g) => (g.name || '（氏名非共有）') + (g.relationship ? '（' + (REL[g.relationship] || g.relationship) + '）' : '')).join('、'));
  }
  const a = obj(c.abuse);
  if (Array.isArray(a.types) || a.injury != null) {
    field(dl, '虐待種別', (a.types || []).map((t) => ABUSE[t] || t).join('、') + (a.injury ? '（外傷あり）' : ''));
  }
  field(dl, 'リスク', RISK[c.risk_level]);
  field(dl, '状況', STATUS[c.status] || c.status);
  if (c.intake_at) field(dl, '受理日時', fmtTime(c.intake_at));
  const dlv = deadline(d);
  if (dlv) field(dl, '安全確認', dlv.confirmed ? fmtTime(c.safety_confirmed_at) : '未確認');
  const flags = obj(c.flags);
  if (flags.missing != null) field(dl, '所在', flags.missing ? '所在不明' : '所在確認済み');
  if (flags.dv != null) field(dl, 'DV', flags.dv ? 'DV事案（住所は提供されません）' : 'なし');
  field(dl, '家族の状況', c.household);
  field(dl, '保育所等・就学', c.care_setting);
  field(dl, '版', d.version);
  if (d.updated_at) field(dl, '更新日時', fmtTime(d.updated_at));
  return dl;
}

/** Whom to call: the center by its Japanese name, day and after-hours numbers, the worker. */
function contacts(d) {
  const c = caseOf(d);
  const center = centerOf(d);
  const box = el('div', { class: 'contacts' }, el('h3', {}, '連絡先'));
  const dl = el('dl', { class: 'fields' });
  field(dl, '児童相談所', center.name || center.id);
  field(dl, '電話（日中）', center.phone);
  field(dl, '電話（夜間・休日）', center.after_hours_phone);
  const w = obj(c.center_contact);
  if (w.name || w.phone) field(dl, '担当者', [w.name, w.phone].filter(Boolean).join('　'));
  box.append(dl);
  return box;
}

function receiptBox(d, label) {
  const r = obj(d.receipt);
  const cp = String(r.checkpoint || '').split('\n');
  return el('div', { class: 'receipt', id: 'receipt' },
    el('div', {}, label + ' 監査ログ番号 ', el('strong', {}, String(r.audit_index ?? '—'))),
    el('div', {}, '根拠条項 ', el('code', {}, r.clause || '')),
    // The checkpoint note's second and third lines: the tree size and root it signs.
    el('div', {}, '署名付きチェックポイント ', el('code', {}, 'size ' + (cp[1] || '?') + ' root ' + (cp[2] || '').slice(0, 16) + '…')),
    el('div', {}, '包含証明 ', el('code', {}, String((r.inclusion_proof || []).length) + ' hashes')));
}

function renderDetail() {
  const pane = $('detail');
  const s = state.detail;
  pane.removeAttribute('aria-labelledby');
  if (!s) {
    pane.replaceChildren(el('p', { class: 'muted' }, '事案を選択してください（↑↓で移動、Enterで表示、/で検索）。'));
    return;
  }
  if (s.gone) {
    pane.replaceChildren(el('div', { class: 'gone', id: 'gone' },
      el('h2', {}, 'この事案は閲覧できなくなりました'),
      el('p', {}, '事案 ' + s.ref + ' は、共有への同意の撤回や共有期間の終了などにより、この端末への提供が終了しました。表示していた内容は消去しました。'),
      el('p', {}, '必要な場合は、児童相談所に直接確認してください。')));
    return;
  }
  if (!s.data) {
    fill(pane,
      el('p', { class: 'muted' }, s.error ? '' : '読み込み中…'),
      s.error ? el('p', { class: 'error', role: 'alert' }, s.error) : null);
    return;
  }
  const d = s.data;
  const child = obj(caseOf(d).child);
  const cd = countdownText(d);
  fill(pane,
    el('h2', { id: 'detail-title' }, child.name || '（氏名非共有）',
      age(child.birth_date) ? el('span', { class: 'agey' }, ' ' + age(child.birth_date)) : null),
    el('div', { class: 'badges' }, ...badges(d), cd ? el('span', { class: 'countdown ' + cd[1], 'data-cd': '' }, cd[0]) : null),
    s.error ? el('p', { class: 'error', role: 'alert' }, s.error) : null,
    contacts(d),
    caseFields(d),
    el('div', { class: 'actions' },
      el('button', { type: 'button', id: 'printbtn' }, '印刷（印刷は記録されます）'),
      el('span', { id: 'print-status', class: 'muted', role: 'status' })),
    responseForm(d.ref),
    receiptBox(d, '閲覧記録'));
  pane.setAttribute('aria-labelledby', 'detail-title');
  $('printbtn').addEventListener('click', () => printCase(d.ref));
}

/** The police response sent back to the CGC (臨場・安全確認・保護・所在判明・その他). */
function responseForm(ref) {
  const now = new Date();
  const local = now.getFullYear() + '-' + pad2(now.getMonth() + 1) + '-' + pad2(now.getDate()) + 'T' + pad2(now.getHours()) + ':' + pad2(now.getMinutes());
  const kind = el('select', { id: 'resp-kind', required: true },
    ...RESPONSE_KINDS.map(([v, label]) => el('option', { value: v }, label)));
  const at = el('input', { id: 'resp-at', type: 'datetime-local', value: local, required: true });
  const note = el('textarea', { id: 'resp-note', rows: '2', maxlength: '200', spellcheck: 'false' });
  const result = el('p', { id: 'resp-result', class: 'resp-result', role: 'status' });
  const form = el('form', { class: 'response', id: 'response' },
    el('h3', {}, '対応の記録（児童相談所へ送信）'),
    el('div', { class: 'resp-grid' },
      el('label', { for: 'resp-kind' }, '種別'), kind,
      el('label', { for: 'resp-at' }, '日時'), at,
      el('label', { for: 'resp-note' }, 'メモ（200字以内）'), note),
    el('button', { type: 'submit' }, '対応を記録'),
    result);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const when = new Date(at.value);
    if (isNaN(when)) { result.textContent = '日時を入力してください。'; result.dataset.state = 'error'; return; }
    result.textContent = '送信中…';
    result.dataset.state = '';
    const r = await api('POST', '/v1/terminal/cases/' + encodeURIComponent(ref) + '/responses',
      { kind: kind.value, at: when.toISOString(), note: note.value.trim() });
    if (r.ok) {
      const idx = obj(obj(r.json).receipt).audit_index ?? obj(r.json).audit_index;
      result.textContent = '対応を記録しました（' + RESPONSE_KINDS.find(([v]) => v === kind.value)[1] + '・' + fmtTime(when.toISOString()) + '）。' + (idx != null ? '監査ログ番号 ' + idx : '');
      result.dataset.state = 'ok';
      note.value = '';
    } else {
      let text = r.status === 404
        ? 'この事案には対応を記録できません（見つからないか、閲覧できなくなりました）。'
        : r.status === 405 ? 'このゲートウェイは対応の記録に対応していません。' : problemText(r.status, r.problem);
      const bad = (obj(r.problem).errors || []).map((x) => RESPONSE_FIELDS[x.pointer]).filter(Boolean);
      if (bad.length) text += '（' + bad.join('・') + 'を確認してください）';
      result.textContent = text;
      result.dataset.state = 'error';
    }
  });
  return form;
}

// ---- printing: itself a disclosure (POST .../print, channel `print`) ------------------------

async function printCase(ref) {
  const status = $('print-status');
  status.textContent = '印刷を記録しています…';
  const r = await api('POST', '/v1/terminal/cases/' + encodeURIComponent(ref) + '/print');
  if (!r.ok) {
    // Fail closed: without its audit entry nothing is printed.
    status.textContent = (r.status === 404 || r.status === 405)
      ? '印刷できません: このゲートウェイは印刷の記録に対応していません。'
      : '印刷できません: ' + problemText(r.status, r.problem);
    return;
  }
  renderPrintout(r.json);
  status.textContent = '印刷を記録しました。';
  window.print();
}

function renderPrintout(d) {
  const child = obj(caseOf(d).child);
  const s = state.session || {};
  $('printout').replaceChildren(
    el('header', { class: 'p-head' },
      el('div', { class: 'p-mark' }, '取扱注意'),
      el('h1', {}, '児童虐待事案 共有情報'),
      el('div', {}, '出力 ' + new Date().toLocaleString('ja-JP') + '　' + (s.station_name || s.station || '') + '　職員 ' + (s.officer || ''))),
    el('h2', {}, child.name || '（氏名非共有）', age(child.birth_date) ? '　' + age(child.birth_date) : ''),
    el('div', { class: 'badges' }, ...badges(d)),
    contacts(d),
    caseFields(d),
    receiptBox(d, '印刷記録'),
    el('footer', { class: 'p-foot' },
      '本書の出力は監査ログに記録されています。目的外の利用・複写を禁じます。用済み後は所定の方法で廃棄してください。'));
}

// ---- search -------------------------------------------------------------------------------

async function search(q) {
  const r = await api('GET', '/v1/terminal/search?q=' + encodeURIComponent(q));
  const results = $('results');
  const note = $('results-note');
  note.textContent = '';
  state.hits.clear();
  let n = 0;
  if (!r.ok) {
    const first = (obj(r.problem).errors || [])[0];
    results.replaceChildren();
    note.textContent = '検索できません: ' +
      (first && first.pointer === '/q' ? '検索語を確認してください。' : problemText(r.status, r.problem));
  } else {
    const body = obj(r.json);
    const found = Array.isArray(body.cases) ? body.cases : [];
    for (const d of found) state.hits.set(d.ref, d);
    n = found.length;
    results.replaceChildren(...found.map((d) => row(d, 'results')));
    if (n === 0) note.textContent = '該当する事案はありません。';
    if (body.truncated) note.textContent = '該当が多すぎます（先頭' + n + '件を表示）。条件を絞ってください。';
  }
  state.searching = true;
  results.hidden = n === 0;
  note.hidden = note.textContent === '';
  $('list').hidden = true;
  $('newbar').hidden = true;
  $('empty').hidden = true;
  $('clearsearch').hidden = false;
  $('count').textContent = '検索結果 ' + n + '件';
  announce('検索結果 ' + n + '件');
}

function clearSearch() {
  $('q').value = '';
  state.searching = false;
  state.hits.clear();
  $('results').replaceChildren();
  $('results').hidden = true;
  $('results-note').hidden = true;
  $('clearsearch').hidden = true;
  updateNewBar();
  renderList();
}

// ---- the gateway --------------------------------------------------------------------------

/** One request; `problem` is the problem+json of a refusal. Fatal refusals sign out. */
async function api(method, path, body) {
  let r;
  try {
    r = await fetch(path, {
      method, cache: 'no-store',
      headers: body === undefined ? {} : { 'Content-Type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (_) {
    return { ok: false, status: 0, json: null, problem: null };
  }
  const text = await r.text().catch(() => '');
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch (_) { json = null; }
  const out = { ok: r.ok, status: r.status, json: r.ok ? json : null, problem: r.ok ? null : json };
  if (!r.ok && state.session && FATAL.has(problemSlug(json)) && !path.startsWith('/v1/terminal/session')) {
    endSession(problemText(r.status, json));
  }
  return out;
}

function setConn(next, reason) {
  conn.state = next;
  conn.reason = reason || '';
  const label = { live: 'ライブ接続', connecting: '接続中…', down: '切断', off: '未接続' }[next];
  $('conn').dataset.state = next;
  $('conn').textContent = label;
  document.body.dataset.conn = next;
  const signedIn = state.session != null;
  const banner = $('banner');
  if (signedIn && next !== 'live') {
    banner.hidden = false;
    banner.dataset.state = next;
    const msg = next === 'connecting' && !conn.everLive
      ? 'ゲートウェイに接続しています…'
      : 'ライブ接続が切れています。表示中の情報は最新ではありません。' + (conn.reason ? '（' + conn.reason + '）' : '') + ' 自動的に再接続します。';
    if ($('banner-msg').textContent !== msg) $('banner-msg').textContent = msg;
  } else {
    banner.hidden = true;
    $('banner-msg').textContent = '';
  }
  tick();
}

function connect() {
  clearTimeout(conn.timer);
  if (conn.ctl) conn.ctl.abort();
  const ctl = new AbortController();
  conn.ctl = ctl;
  if (conn.state !== 'down') setConn('connecting', conn.reason);
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

async function readStream(ctl) {
  const opened = await openSse('/v1/terminal/stream', conn.lastId, ctl.signal);
  const r = opened.response;
  if (!r) {
    if (ctl !== conn.ctl) return;
    if (opened.status === 401 || opened.status === 403) {
      conn.ctl = null;
      endSession(problemText(opened.status, opened.problem));
      return;
    }
    scheduleReconnect(problemText(opened.status, opened.problem), opened.retryAfter);
    return;
  }
  conn.lastByte = Date.now();
  let fatal = null;
  try {
    await readSse(r.body, () => ctl === conn.ctl, () => { conn.lastByte = Date.now(); }, (frame) => {
      const result = handleFrame(frame);
      if (result) fatal = result;
    });
  } catch (_) { /* cut: reconnect below */ }
  if (ctl !== conn.ctl) return; // aborted by us (watchdog, sign-out)
  if (fatal) {
    conn.ctl = null;
    endSession(PROBLEMS[fatal]);
    return;
  }
  scheduleReconnect('接続が切断されました');
}

/** One SSE frame. Returns a problem slug when the gateway ended the session. */
function handleFrame({ event, id, data: d }) {
  if (id != null) conn.lastId = id;
  if (d == null) return null;
  switch (event) {
    case 'reset': onReset(); break;
    case 'case': onCase(d); break;
    case 'withdraw': onWithdraw(d.ref); break;
    case 'synced': onSynced(); break;
    case 'alert': onAlert(d); break;
    case 'end': return END_REASONS[d.reason] || 'token-expired';
    default: break;
  }
  return null;
}

function onReset() {
  state.resetting = true;
  state.live = new Map();
}

function onCase(d) {
  if (!d || !d.ref) return;
  state.live.set(d.ref, d);
  // A resumed stream re-sends changed cases, not the alerts that ended meanwhile.
  if (state.alerts.has(d.ref) && obj(obj(d.case).flags).missing === false) endAlert(d.ref);
  if (!state.synced) {
    state.shown.set(d.ref, d);
  } else {
    const was = state.shown.get(d.ref);
    if (!was || was.version !== d.version || was.updated_at !== d.updated_at) {
      state.pending.add(d.ref);
      updateNewBar();
      markPending(d.ref);
    }
  }
  if (state.detail && state.detail.ref === d.ref && !state.detail.gone) refreshDetailSoon();
}

function markPending(ref) {
  const li = $(optionId('list', ref));
  if (li) li.classList.add('has-pending');
}

function onWithdraw(ref) {
  if (!ref) return;
  state.live.delete(ref);
  // A case that left this terminal's view goes at once, wherever it is shown.
  state.pending.delete(ref);
  const had = state.shown.delete(ref);
  const hit = $(optionId('results', ref));
  if (hit) hit.remove();
  state.hits.delete(ref);
  if (state.alerts.has(ref)) endAlert(ref);
  if (state.detail && state.detail.ref === ref) {
    state.detail = { ref, data: null, gone: true, error: '' };
    clearTimeout(refreshTimer);
    detailSeq++;
    renderDetail();
    announce('表示中の事案は閲覧できなくなりました');
  }
  if (had) renderList();
  updateNewBar();
}

function onSynced() {
  conn.retry = 0;
  conn.lastSynced = Date.now();
  if (state.resetting) {
    state.resetting = false;
    for (const ref of [...state.shown.keys()]) if (!state.live.has(ref)) onWithdraw(ref);
    for (const ref of [...state.pending]) if (!state.live.has(ref)) state.pending.delete(ref);
    updateNewBar();
    if (!state.synced) for (const [ref, d] of state.live) state.shown.set(ref, d);
  }
  if (!state.synced) {
    state.synced = true;
    renderList();
    announce('共有事案 ' + state.shown.size + '件を表示しました');
  }
  setConn('live');
}

// ---- missing-child alerts -----------------------------------------------------------------

function onAlert(d) {
  if (!d || d.kind !== 'missing' || !d.ref) return;
  if (d.state === 'ended') { endAlert(d.ref); return; }
  if (d.state !== 'raised') return;
  state.alerts.set(d.ref, d);
  const c = caseOf(d);
  const child = obj(c.child);
  const center = centerOf(d);
  const stop = el('button', { type: 'button', class: 'alert-ack' }, '確認（音を止める）');
  const open = el('button', { type: 'button', class: 'alert-open' }, '事案を開く');
  const box = el('div', { class: 'alert', role: 'alert', 'data-ref': d.ref },
    el('strong', {}, '行方不明児童アラート'),
    el('span', {}, (child.name || '（氏名非共有）') + (age(child.birth_date) ? '（' + age(child.birth_date) + '）' : '')),
    el('span', {}, center.name || center.id || ''),
    el('span', { class: 'ref' }, d.ref),
    open, stop);
  const old = $('alerts').querySelector('.alert[data-ref="' + CSS.escape(d.ref) + '"]');
  if (old) old.remove();
  $('alerts').prepend(box);
  $('alerts').hidden = false;
  open.addEventListener('click', () => { stopSiren(); openCase(d.ref); });
  stop.addEventListener('click', () => { stopSiren(); box.classList.add('acked'); });
  if (playSiren()) box.dataset.sound = 'played';
}

function endAlert(ref) {
  state.alerts.delete(ref);
  const box = $('alerts').querySelector('.alert[data-ref="' + CSS.escape(ref) + '"]');
  if (box) box.remove();
  $('alerts').hidden = state.alerts.size === 0;
  if (state.alerts.size === 0) stopSiren();
  announce('行方不明アラート解除: ' + ref);
}

let audio = null;
let siren = [];
function audioContext() {
  if (!audio) {
    const Ctx = window.AudioContext || window.webkitAudioContext;
    if (!Ctx) return null;
    audio = new Ctx();
  }
  if (audio.state === 'suspended') audio.resume().catch(() => {});
  return audio;
}

/** A two-tone siren (960/770 Hz, three cycles): unlike any other sound of the page. */
function playSiren() {
  const ctx = audioContext();
  if (!ctx) return false;
  stopSiren();
  const gain = ctx.createGain();
  gain.gain.value = 0.2;
  gain.connect(ctx.destination);
  const osc = ctx.createOscillator();
  osc.type = 'square';
  const t0 = ctx.currentTime + 0.05;
  for (let i = 0; i < 6; i++) osc.frequency.setValueAtTime(i % 2 ? 770 : 960, t0 + i * 0.45);
  osc.connect(gain);
  osc.start(t0);
  osc.stop(t0 + 2.7);
  siren = [osc, gain];
  return ctx.state === 'running';
}

function stopSiren() {
  for (const n of siren) { try { if (n.stop) n.stop(); n.disconnect(); } catch (_) { /* already stopped */ } }
  siren = [];
}

// ---- session ------------------------------------------------------------------------------

async function startSession(s) {
  state.session = s;
  $('station').textContent = (s.station_name || s.station) + ' / 職員 ' + s.officer;
  $('signin').hidden = true;
  $('app').hidden = false;
  $('signout').hidden = false;
  $('signin-error').textContent = '';
  lastActivity = Date.now();
  const r = await api('GET', '/v1/terminal/reference');
  if (r.ok && r.json) {
    state.centers = new Map(Object.entries(obj(r.json.centers)));
    state.municipalities = new Map(Object.entries(obj(r.json.municipalities)));
  }
  connect();
}

async function signInWith(token) {
  audioContext(); // a user gesture: lets the alert siren play later
  let r;
  try {
    r = await fetch('/v1/terminal/session', { method: 'POST', headers: { Authorization: 'Bearer ' + token }, cache: 'no-store' });
  } catch (_) {
    throw new Error(problemText(0, null));
  }
  if (!r.ok) throw new Error(problemText(r.status, await r.json().catch(() => null)));
  $('token').value = '';
  await startSession(await r.json());
}

async function devSignIn() {
  $('signin-error').textContent = '';
  try {
    const r = await fetch('/v1/dev/token', {
      method: 'POST', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ subject: $('officer').value.trim() }),
    }).catch(() => null);
    if (!r) throw new Error(problemText(0, null));
    if (!r.ok) {
      const p = await r.json().catch(() => null);
      const bad = (obj(p).errors || []).some((e) => e.pointer === '/subject');
      throw new Error(bad ? '職員番号は英数字と - _ . の64文字以内で入力してください。' : problemText(r.status, p));
    }
    await signInWith((await r.json()).token);
  } catch (e) {
    $('signin-error').textContent = 'サインインできません: ' + e.message;
  }
}

/** Forgets everything this page showed or holds: memory, DOM, storage, the stream. */
function wipe() {
  clearTimeout(conn.timer);
  clearTimeout(refreshTimer);
  if (conn.ctl) conn.ctl.abort();
  conn = { state: 'off', ctl: null, lastByte: 0, lastSynced: 0, retry: 0, timer: null, reason: '', everLive: false };
  detailSeq++;
  state.session = null;
  state.live = new Map();
  state.shown = new Map();
  state.pending = new Set();
  state.hits = new Map();
  state.alerts = new Map();
  state.synced = false;
  state.resetting = false;
  state.searching = false;
  state.active = null;
  state.detail = null;
  stopSiren();
  for (const id of ['list', 'results', 'printout', 'alerts']) $(id).replaceChildren();
  for (const id of ['list', 'results']) $(id).removeAttribute('aria-activedescendant');
  renderDetail();
  $('alerts').hidden = true;
  $('results').hidden = true;
  $('results-note').hidden = true;
  $('list').hidden = false;
  $('clearsearch').hidden = true;
  $('newbar').hidden = true;
  for (const id of ['q', 'token']) $(id).value = '';
  $('officer').value = $('officer').defaultValue;
  for (const id of ['count', 'fresh', 'station', 'announce']) $(id).textContent = '';
  $('f-area').checked = false;
  $('f-risk').value = '';
  $('f-criterion').value = '';
  try { localStorage.clear(); sessionStorage.clear(); } catch (_) { /* storage disabled */ }
}

/** Back to the sign-in screen with `message` (the session cookie is deleted by the gateway). */
function endSession(message, title) {
  const wasSignedIn = state.session != null;
  wipe();
  if (wasSignedIn) fetch('/v1/terminal/session', { method: 'DELETE', cache: 'no-store' }).catch(() => {});
  $('app').hidden = true;
  $('signin').hidden = false;
  $('signout').hidden = true;
  $('signin-title').textContent = title || '警察官サインイン';
  $('signin-error').textContent = message || '';
  setConn('off');
}

function lock() {
  const minutes = Math.round(config.idle_lock_seconds / 60);
  endSession(minutes + '分間操作がなかったため画面をロックし、表示していた情報を消去しました。再度サインインしてください。', '画面ロック');
}

// ---- every second: freshness, countdowns, the watchdog, the idle lock ----------------------

function tick() {
  const now = Date.now();
  if (state.session) {
    const age = conn.lastByte ? Math.round((now - conn.lastByte) / 1000) : null;
    $('fresh').textContent = age == null ? '' : '最終受信 ' + age + '秒前';
    $('banner-age').textContent = conn.lastSynced ? '最後に同期 ' + since(new Date(conn.lastSynced).toISOString()) : '';
  }
  for (const s of document.querySelectorAll('.updated[data-updated]')) s.textContent = '更新 ' + since(s.dataset.updated);
  for (const s of document.querySelectorAll('[data-cd]')) {
    const li = s.closest('[data-ref]');
    const d = li ? (state.shown.get(li.dataset.ref) || state.hits.get(li.dataset.ref)) : state.detail && state.detail.data;
    const cd = d ? countdownText(d) : null;
    if (cd) { s.textContent = cd[0]; s.className = 'countdown ' + cd[1]; }
  }
}

function everySecond() {
  const now = Date.now();
  if (conn.state === 'live') conn.everLive = true;
  // The stream carries a heartbeat every `heartbeat_seconds`: silence for much longer means
  // a dead connection that the browser has not noticed.
  const silentFor = (2 * config.heartbeat_seconds + 5) * 1000;
  if (state.session && conn.state === 'live' && conn.ctl && now - conn.lastByte > silentFor) {
    conn.ctl.abort();
    conn.ctl = null;
    scheduleReconnect('ゲートウェイからの応答が途絶えました');
  }
  if (state.session && config.idle_lock_seconds > 0 && now - lastActivity >= config.idle_lock_seconds * 1000) lock();
  tick();
}

// ---- wiring -------------------------------------------------------------------------------

document.addEventListener('keydown', (e) => {
  if ($('app').hidden) return;
  const typing = e.target instanceof HTMLInputElement || e.target instanceof HTMLTextAreaElement || e.target instanceof HTMLSelectElement;
  if (e.key === '/' && !typing) { e.preventDefault(); $('q').focus(); return; }
  if (e.key === 'Escape' && state.searching) { clearSearch(); $('list').focus(); return; }
  const inList = e.target === $('list') || e.target === $('results');
  if (!inList) return;
  if (e.key === 'ArrowDown' || e.key === 'j') { e.preventDefault(); moveActive(1); }
  if (e.key === 'ArrowUp' || e.key === 'k') { e.preventDefault(); moveActive(-1); }
  if (e.key === 'Home') { e.preventDefault(); moveActive('first'); }
  if (e.key === 'End') { e.preventDefault(); moveActive('last'); }
  if ((e.key === 'Enter' || e.key === ' ') && state.active) { e.preventDefault(); openCase(state.active); }
});

for (const ev of ['keydown', 'pointerdown', 'pointermove', 'wheel', 'touchstart']) {
  document.addEventListener(ev, () => { lastActivity = Date.now(); }, { passive: true, capture: true });
}

window.addEventListener('afterprint', () => { $('printout').replaceChildren(); });

document.addEventListener('DOMContentLoaded', async () => {
  $('devsignin').addEventListener('click', devSignIn);
  $('tokensignin').addEventListener('click', () => {
    $('signin-error').textContent = '';
    signInWith($('token').value.trim()).catch((e) => { $('signin-error').textContent = 'サインインできません: ' + e.message; });
  });
  $('signout').addEventListener('click', () => endSession('サインアウトしました。表示していた情報は消去されました。'));
  $('searchform').addEventListener('submit', (e) => { e.preventDefault(); if ($('q').value.trim()) search($('q').value); });
  $('clearsearch').addEventListener('click', clearSearch);
  $('newbar').addEventListener('click', applyPending);
  for (const id of ['f-area', 'f-risk', 'f-criterion']) $(id).addEventListener('change', renderList);
  $('list').addEventListener('focus', () => { if (!state.active) moveActive(0); });
  try {
    const r = await fetch('/terminal/config.json', { cache: 'no-store' });
    if (r.ok) config = { ...config, ...(await r.json()) };
  } catch (_) { /* defaults; the token field still works */ }
  $('dev').hidden = !config.dev_sign_in;
  setInterval(everySecond, 1000);
  // A session cookie from earlier may still be valid.
  try {
    const r = await fetch('/v1/terminal/session', { cache: 'no-store' });
    if (r.ok) { await startSession(await r.json()); return; }
    const p = await r.json().catch(() => null);
    const slug = problemSlug(p);
    // No token at all is the ordinary first visit: no message.
    endSession(slug && slug !== 'unauthorized' ? problemText(r.status, p) : '');
  } catch (_) {
    endSession(problemText(0, null));
  }
});
