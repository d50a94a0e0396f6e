// What the administrator's console (/admin/) and the CGC's page (/center/) share: tables built
// with text only (data is never inserted as HTML), calling the API, and saying every refusal
// (problem+json) in Japanese. Loaded after /shared/dom.js, before each page's own script.
'use strict';

/** A table: `head` the column titles, `rows` arrays of cells (strings or nodes). */
function table(caption, head, rows, attrs) {
  return el('table', attrs || {},
    caption ? el('caption', {}, caption) : null,
    el('thead', {}, el('tr', {}, ...head.map((h) => el('th', { scope: 'col' }, h)))),
    el('tbody', {}, ...rows.map((r) => el('tr', {}, ...r.map((c) => el('td', {}, c == null ? '' : c))))));
}

function fmtTime(iso) {
  const t = new Date(iso);
  return iso && !isNaN(t) ? t.toLocaleString('ja-JP', { dateStyle: 'medium', timeStyle: 'medium' }) : '';
}

// Japanese for every refusal the gateway answers (problem+json `type`), never its English text.
const PROBLEMS = {
  'token-expired': 'トークンの有効期限が切れました。再度サインインしてください。',
  unauthorized: '認証できません。トークンが無効か、この証明書用に発行されたものではありません。',
  forbidden: 'この操作は許可されていません（権限のある管理者・機関のみ）。',
  'not-found': '対象が見つかりません。',
  'method-not-allowed': 'このゲートウェイはこの機能に対応していません。',
  'rate-limited': '要求が多すぎます。しばらく待ってから再試行してください。',
  'audit-unavailable': '監査ログに記録できないため、何も変更していません。復旧後に再試行してください。',
  'store-unavailable': 'データベースが一時的に利用できないため、何も変更していません。',
  internal: 'ゲートウェイでエラーが発生しました。',
  'invalid-request': '入力に誤りがあります。',
  'invalid-policy': '協定文書に誤りがあります。',
  'state-conflict': '現在の状態と矛盾するため実行できません。',
  'too-large': '送信内容が大きすぎます。',
};

function problemSlug(p) {
  const t = (p && typeof p.type === 'string') ? p.type : '';
  return t.startsWith('urn:cgc-gateway:problem:') ? t.slice('urn:cgc-gateway:problem:'.length) : '';
}

/** The Japanese message for a failed answer (`status` 0: no answer at all). */
function problemText(status, p) {
  const slug = problemSlug(p);
  let text = PROBLEMS[slug];
  if (!text) {
    if (status === 0) return 'ゲートウェイに接続できません（ネットワークまたはサーバーの停止）。';
    if (status === 401) text = PROBLEMS.unauthorized;
    else if (status === 403) text = PROBLEMS.forbidden;
    else if (status === 404) text = PROBLEMS['not-found'];
    else if (status === 405) text = PROBLEMS['method-not-allowed'];
    else if (status >= 500) text = 'ゲートウェイでエラーが発生しました（HTTP ' + status + '）。';
    else text = '要求が受け付けられませんでした（HTTP ' + status + '）。';
  }
  if (slug === 'invalid-policy' && Number.isInteger(p.line)) text += '（' + p.line + '行目）';
  if (slug === 'state-conflict' && Number.isInteger(p.latest_version)) text += '（最新の版: ' + p.latest_version + '）';
  return text;
}

/** A refusal as a node: the Japanese message, and for a document the gateway's own words. */
function problemNode(r) {
  const slug = problemSlug(r.problem);
  const detail = r.problem && typeof r.problem.detail === 'string' ? r.problem.detail : '';
  return el('div', { class: 'error', role: 'alert' },
    el('p', {}, problemText(r.status, r.problem)),
    (slug === 'invalid-policy' || slug === 'state-conflict') && detail
      ? el('details', {}, el('summary', {}, '技術的な詳細（英語）'), el('pre', { lang: 'en' }, detail)) : null);
}

/**
 * Calls the API: `{ok, status, data, problem}`; `status` 0 when no answer came. `token` adds
 * the bearer token; a string `body` is sent as `type`, an object as JSON.
 */
async function api(method, path, { token, body, type } = {}) {
  const headers = {};
  if (token) headers.authorization = 'Bearer ' + token;
  let payload;
  if (typeof body === 'string') { payload = body; headers['content-type'] = type || 'text/plain; charset=utf-8'; }
  else if (body !== undefined) { payload = JSON.stringify(body); headers['content-type'] = 'application/json'; }
  let res;
  try {
    res = await fetch(path, { method, headers, body: payload, credentials: 'same-origin', cache: 'no-store' });
  } catch (_) {
    return { ok: false, status: 0, data: null, problem: null };
  }
  let data = null;
  try { data = await res.json(); } catch (_) { /* an empty or non-JSON answer */ }
  return res.ok ? { ok: true, status: res.status, data, problem: null } : { ok: false, status: res.status, data: null, problem: data };
}

// Labels of what agreements and the audit log name.
const AUDIENCES = { covering_station: '管轄署', prefecture_stations: '県内他署', hq: '本部' };
const CHANNELS = { list: '一覧', search: '検索', stream: 'ライブ配信', detail: '詳細表示', print: '印刷' };
const OPENED = new Set(['detail', 'print']);
const FIELDS = {
  'child.name': '氏名', 'child.name_kana': 'ふりがな', 'child.sex': '性別', 'child.birth_date': '生年月日',
  'child.address': '住所', 'child.address.municipality_code': '市区町村', 'child.address.text': '住所（市区町村以下）',
  'abuse.types': '虐待種別', 'abuse.injury': '外傷の有無', 'guardians.name': '保護者氏名', 'guardians.relationship': '続柄',
  'guardians.employer': '保護者勤務先', household: '世帯状況', care_setting: '養育環境', upbringing: '生育歴',
  welfare_services: '福祉サービス', abuse: '虐待種別', risk_level: 'リスク', status: '状況', intake_at: '受理日時',
  safety_confirmed_at: '安全確認日時', 'flags.missing': '所在不明', 'flags.dv': 'DV', assessment: '所見・方針',
  center_contact: '児相担当者',
};
const fieldLabel = (f) => FIELDS[f] || FIELDS[String(f).split('.')[0]] || f;
const fieldList = (fields) => (Array.isArray(fields) ? fields.map(fieldLabel).join('、') : '');
