// The administrator's console: sharing agreements with their versions, the difference between
// two versions or a proposed one (before it is submitted), the city opt-in as buttons that only
// the administrator who may press them sees, "what would terminal T see of case C", and the
// revocations of terminals and officers. The token is held in memory only: a reload signs out.
'use strict';

const CONSENT_STATES = {
  not_asked: '未打診', asked: '打診中（市の同意待ち）', consented: '同意済（県の確認待ち）',
  active: '共有中（確認済）', declined: '辞退', withdrawn: '撤回',
};
// What a difference's `consent` says of the combination.
const DIFF_CONSENT = { active: '市が同意・確認済', not_required: '同意不要（県の事案）' };
const STATE_CLASS = { active: 'b-active', consented: 'b-waiting', asked: 'b-waiting', declined: 'b-off', withdrawn: 'b-off' };
const KINDS = { prefecture: '県', designated_city: '指定都市', cgc_city: '児童相談所設置市' };
const CRITERIA = {
  all: '全件', injury_neglect_sexual: '外傷・ネグレクト・性的虐待', safety_unconfirmed_48h: '48時間以内に安全確認できない',
  return_home: '家庭復帰', missing: '所在不明',
};
// The actions of the opt-in, each taken by one side only (src/agreements).
const ACTIONS = {
  consent: ['同意する', 'city'], decline: ['辞退する', 'city'], withdraw: ['同意を撤回する', 'city'],
  confirm: ['同意を確認する', 'prefecture'],
};
const STEP_NAMES = { seed: '初期登録', consent: '同意', decline: '辞退', withdraw: '撤回', confirm: '確認', reask: '再打診（範囲拡大）' };

const state = { token: null, session: null, agreements: [], pendingRevoke: null };

// ---- sign-in --------------------------------------------------------------------------------

async function init() {
  $('devsignin').addEventListener('click', devSignIn);
  $('tokensignin').addEventListener('click', () => start($('token').value.trim()));
  $('signout').addEventListener('click', () => signOut('サインアウトしました。'));
  $('sim-form').addEventListener('submit', (e) => { e.preventDefault(); simulate(); });
  $('revoke-terminal').addEventListener('submit', (e) => {
    e.preventDefault();
    const station = $('rt-station').value.trim();
    const no = $('rt-no').value.trim();
    askRevoke('端末 ' + station + ' ' + no + '番 を失効させます。', `/v1/admin/terminals/${encodeURIComponent(station)}/${encodeURIComponent(no)}/revoke`);
  });
  $('revoke-officer').addEventListener('submit', (e) => {
    e.preventDefault();
    const id = $('ro-id').value.trim();
    askRevoke('職員 ' + id + ' を失効させます。', `/v1/admin/officers/${encodeURIComponent(id)}/revoke`);
  });
  $('revoke-yes').addEventListener('click', revoke);
  $('revoke-no').addEventListener('click', () => { state.pendingRevoke = null; $('revoke-confirm').hidden = true; });
  // The demo's development token button (the web terminal's page configuration says whether
  // this gateway was started by `demo`).
  const config = await api('GET', '/terminal/config.json');
  $('dev').hidden = !(config.ok && config.data && config.data.dev_sign_in);
}

async function devSignIn() {
  const r = await api('POST', '/v1/dev/token', { body: { subject: $('subject').value.trim() } });
  if (!r.ok) { $('signin-error').textContent = problemText(r.status, r.problem); return; }
  await start(r.data.token);
}

async function start(token) {
  $('signin-error').textContent = '';
  if (!token) { $('signin-error').textContent = 'トークンを入力してください。'; return; }
  const r = await api('GET', '/v1/admin/session', { token });
  if (!r.ok) { $('signin-error').textContent = problemText(r.status, r.problem); return; }
  state.token = token;
  state.session = r.data;
  $('token').value = '';
  const s = r.data;
  $('who').textContent = (s.name || s.jurisdiction) + '（' + (KINDS[s.kind] || '管轄外') + '）の管理者 ' + s.administrator;
  $('signin').hidden = true;
  $('app').hidden = false;
  $('nav').hidden = false;
  $('signout').hidden = false;
  // Revoking and simulating answer for a police force: the prefecture's administrators only.
  $('revoke-denied').hidden = s.may_revoke;
  $('revoke-tools').hidden = !s.may_revoke;
  $('sim-denied').hidden = s.may_revoke;
  $('sim-form').hidden = !s.may_revoke;
  await Promise.all([loadAgreements(), s.may_revoke ? loadRevocations() : null]);
}

function signOut(message) {
  state.token = null;
  state.session = null;
  state.agreements = [];
  state.pendingRevoke = null;
  for (const id of ['agreement-list', 'sim-result', 'revoke-result', 'revocation-list', 'who', 'status']) fill($(id));
  for (const f of document.querySelectorAll('#app form')) f.reset();
  $('revoke-confirm').hidden = true;
  $('app').hidden = true;
  $('nav').hidden = true;
  $('signout').hidden = true;
  $('signin').hidden = false;
  $('signin-error').textContent = message;
}

/** An API call with the administrator's token; a refused token ends the session. */
async function call(method, path, options = {}) {
  const r = await api(method, path, { ...options, token: state.token });
  if (r.status === 401) signOut(problemText(r.status, r.problem));
  return r;
}

// ---- agreements -----------------------------------------------------------------------------

async function loadAgreements() {
  const r = await call('GET', '/v1/admin/agreements');
  const list = $('agreement-list');
  if (!r.ok) { fill(list, problemNode(r)); return; }
  state.agreements = r.data.agreements;
  if (!state.agreements.length) { fill(list, el('p', { class: 'muted' }, '閲覧できる協定はありません。')); return; }
  fill(list, ...state.agreements.map(agreementCard));
}

function latestOf(a) {
  return a.versions.reduce((m, v) => (!m || v.version > m.version ? v : m), null);
}

function agreementCard(a) {
  const latest = latestOf(a);
  const card = el('article', { class: 'card', 'data-agreement': a.agreement_id, 'aria-label': '協定 ' + a.agreement_id });
  const mayWrite = state.session.jurisdiction === a.prefecture;
  fill(card,
    el('h2', {}, (latest ? latest.title : '') + '（' + a.agreement_id + '）'),
    el('p', {}, '現行版: ', a.current_version != null ? 'v' + a.current_version : 'なし', '　最新版: v' + a.latest_version,
      el('span', { class: 'muted' }, '　（' + fmtTime(a.as_of) + ' 時点）')),
    versionsTable(a),
    diffTool(a),
    providersTable(a),
    mayWrite ? proposalTool(a, latest) : null,
    historyDetails(a));
  return card;
}

function versionsTable(a) {
  return table('版', ['版', '表題', '効力発生', '効力終了', '状態', '提出者', '提出日時', '文面'],
    a.versions.map((v) => ['v' + v.version, v.title, fmtTime(v.effective_from), v.effective_until ? fmtTime(v.effective_until) : '—',
      v.in_force ? el('span', { class: 'badge b-active' }, '現行') : '', v.submitted_by, fmtTime(v.submitted_at),
      el('details', {}, el('summary', {}, '表示'), el('pre', { class: 'document' }, v.document),
        el('p', { class: 'note mono' }, 'SHA-256 ' + v.sha256))]));
}

function historyDetails(a) {
  const name = (op) => (a.providers.find((p) => p.operator === op) || {}).name || op;
  return el('details', {},
    el('summary', {}, '同意手続の履歴（' + a.consent_history.length + '件）'),
    table(null, ['#', '提供者', '手続', '変更前', '変更後', '実施者', '日時'],
      a.consent_history.map((h) => [String(h.seq), name(h.operator), STEP_NAMES[h.action] || h.action,
        CONSENT_STATES[h.from] || h.from, CONSENT_STATES[h.to] || h.to, h.actor, fmtTime(h.at)])));
}

// ---- the city opt-in ------------------------------------------------------------------------

/** The actions this administrator may take on a provider now (the others are not shown). */
function actionsFor(a, p) {
  if (p.kind === 'prefecture') return [];
  const me = state.session.jurisdiction;
  const side = me === p.operator ? 'city' : me === a.prefecture ? 'prefecture' : null;
  const st = p.state;
  const possible = {
    consent: st !== 'consented' && st !== 'active',
    decline: st === 'not_asked' || st === 'asked',
    withdraw: st === 'consented' || st === 'active' || p.confirmed_version != null,
    confirm: st === 'consented',
  };
  return Object.keys(ACTIONS).filter((k) => ACTIONS[k][1] === side && possible[k]);
}

function providersTable(a) {
  const rows = a.providers.map((p) => {
    const buttons = actionsFor(a, p).map((action) => el('button', {
      type: 'button', class: action === 'withdraw' || action === 'decline' ? 'secondary' : null,
      'data-action': action, 'data-operator': p.operator,
    }, ACTIONS[action][0]));
    for (const b of buttons) b.addEventListener('click', () => consentStep(a, p, b.dataset.action, b));
    return [
      p.name + '（' + p.operator + '）', KINDS[p.kind] || p.kind,
      el('span', { class: 'badge ' + (STATE_CLASS[p.state] || '') }, CONSENT_STATES[p.state] || p.state),
      p.sharing ? '共有中' : '共有なし',
      p.consented_version != null ? 'v' + p.consented_version : '—',
      p.confirmed_version != null ? 'v' + p.confirmed_version : '—',
      buttons.length ? el('div', { class: 'row' }, ...buttons) : el('span', { class: 'muted' }, '—'),
    ];
  });
  return table('提供者（市の参加手続）', ['提供者', '種別', '状態', '共有', '同意した版', '確認した版', '操作'], rows, { class: 'providers' });
}

async function consentStep(a, p, action, button) {
  button.disabled = true;
  const r = await call('POST', `/v1/admin/agreements/${encodeURIComponent(a.agreement_id)}/providers/${encodeURIComponent(p.operator)}/${action}`);
  if (!r.ok) {
    button.disabled = false;
    button.closest('td').append(problemNode(r));
    return;
  }
  await loadAgreements();
  $('status').textContent = p.name + ': ' + ACTIONS[action][0].replace(/する$/, '') + 'しました（状態: ' + (CONSENT_STATES[r.data.state] || r.data.state) + '）。';
}

// ---- differences between versions -----------------------------------------------------------

function diffTool(a) {
  const versions = a.versions.map((v) => v.version);
  const select = (label, chosen) => {
    const s = el('select', { 'aria-label': label });
    for (const v of versions) s.append(el('option', { value: String(v) }, 'v' + v));
    s.value = String(chosen);
    return s;
  };
  const from = select('比較元の版', versions.length > 1 ? versions[versions.length - 2] : versions[0]);
  const to = select('比較先の版', versions[versions.length - 1]);
  const out = el('div', { class: 'diff-result' });
  const go = el('button', { type: 'button' }, '差分を表示');
  go.addEventListener('click', async () => {
    const r = await call('GET', `/v1/admin/agreements/${encodeURIComponent(a.agreement_id)}/diff?from=${from.value}&to=${to.value}`);
    fill(out, r.ok ? diffView(r.data) : problemNode(r));
  });
  return el('div', { class: 'diff-tool' }, el('h3', {}, '版の比較'), el('div', { class: 'row' }, from, '→', to, go), out);
}

/** The part of an agreement a change comes from, in Japanese, with the clause as written. */
function clauseNode(clause) {
  const c = String(clause || '');
  const audience = (a) => AUDIENCES[a] || a;
  const provider = /^providers\[operator=([^\]]+)\]/.exec(c);
  let label = '';
  if (provider && c === provider[0]) label = '提供者 ' + provider[1] + ' の追加・削除';
  else if (provider && c.endsWith('.scope')) label = '提供者 ' + provider[1] + ' の共有範囲';
  else if (provider && c.includes('.predicates')) label = '提供者 ' + provider[1] + ' の共有条件';
  else if (c.startsWith('views.')) label = '閲覧項目（' + audience(c.slice(6)) + '）';
  else if (c.startsWith('summary.')) label = '一覧の項目（' + audience(c.slice(8)) + '）';
  else if (c === 'dv.address_audiences') label = 'DV事案の住所';
  else if (c === 'force') label = '警察本部';
  return el('span', {}, label ? label + ' ' : '', el('span', { class: 'mono' }, c));
}

/** A difference, readable: the verdict, then each combination that gains or loses access. */
function diffView(d) {
  const what = 'v' + d.from + ' → ' + (d.to == null ? '提出前の案' : 'v' + d.to);
  const gains = Array.isArray(d.gains) ? d.gains : [];
  const losses = Array.isArray(d.losses) ? d.losses : [];
  const verdict = d.verdict === 'no_new_access'
    ? '判定: 新たなアクセスなし — どの閲覧者も新しい項目・提供者を得ません'
    : '判定: 新たなアクセスあり — ' + gains.length + ' 通りの組合せで閲覧できる項目が増えます';
  const rows = (changes) => changes.map((c) => [
    (c.provider_name || '') + '（' + c.provider + '）', CRITERIA[c.criterion] || c.criterion, AUDIENCES[c.audience] || c.audience,
    c.dv === true ? 'DV事案' : c.dv === false ? 'DV以外' : String(c.dv ?? ''),
    DIFF_CONSENT[c.consent] || String(c.consent ?? ''), fieldList(c.fields), clauseNode(c.clause),
  ]);
  const head = ['提供者', '基準', '閲覧者', 'DV', '同意状態', '項目', '根拠条項'];
  return el('div', { class: 'diff' },
    el('p', { class: 'verdict', 'data-verdict': d.verdict }, what + '　' + verdict),
    gains.length ? table('増える閲覧（' + gains.length + '件）', head, rows(gains), { class: 'gains' }) : null,
    losses.length ? table('減る閲覧（' + losses.length + '件）', head, rows(losses), { class: 'losses' }) : null,
    !gains.length && !losses.length ? el('p', { class: 'muted' }, '閲覧範囲に変化はありません。') : null);
}

// ---- a proposed version ---------------------------------------------------------------------

function proposalTool(a, latest) {
  const text = el('textarea', { rows: '14', spellcheck: 'false', 'aria-label': '協定案（TOML）', class: 'proposal' });
  text.value = latest ? latest.document.replace(/^version\s*=\s*\d+/m, 'version = ' + (a.latest_version + 1)) : '';
  const out = el('div', { class: 'proposal-result' });
  const check = el('button', { type: 'button' }, '提出前に差分を確認');
  const submit = el('button', { type: 'button', class: 'danger', disabled: true }, 'この版を提出');
  let checked = null;
  text.addEventListener('input', () => { submit.disabled = text.value !== checked; });
  check.addEventListener('click', async () => {
    const body = text.value;
    const r = await call('POST', `/v1/admin/agreements/${encodeURIComponent(a.agreement_id)}/diff`, { body, type: 'application/toml' });
    fill(out, r.ok ? diffView(r.data) : problemNode(r));
    checked = r.ok ? body : null;
    submit.disabled = !r.ok || text.value !== checked;
  });
  submit.addEventListener('click', async () => {
    submit.disabled = true;
    const r = await call('PUT', `/v1/admin/agreements/${encodeURIComponent(a.agreement_id)}`, { body: text.value, type: 'application/toml' });
    if (!r.ok) { out.append(problemNode(r)); return; }
    const s = r.data;
    const reasked = (s.reasked || []).map((x) => x.operator).join('、');
    await loadAgreements();
    $('status').textContent = 'v' + s.version + ' を提出しました（監査記録 #' + s.audit_index + '）。' +
      (s.in_force ? '現行版になりました。' : '効力発生日から適用されます。') + (reasked ? '再打診: ' + reasked : '');
  });
  return el('details', { class: 'proposal-tool' },
    el('summary', {}, '新しい版を提出（提出前に差分を確認）'),
    el('p', { class: 'note' }, '提出は取り消せません。差分を確認した文面のみ提出できます。閲覧範囲が広がる市には再度同意を求めます。'),
    text, el('div', { class: 'row' }, check, submit), out);
}

// ---- what would terminal T see of case C ----------------------------------------------------

async function simulate() {
  const body = {
    station_id: $('sim-station').value.trim(),
    terminal_no: Number($('sim-terminal').value.trim()),
    center_id: $('sim-center').value.trim(),
    case_id: $('sim-case').value.trim(),
  };
  if ($('sim-proposal').checked) {
    const proposal = document.querySelector('textarea.proposal');
    if (proposal) body.document = proposal.value;
  }
  const r = await call('POST', '/v1/admin/simulate', { body });
  const out = $('sim-result');
  if (!r.ok) { fill(out, problemNode(r)); return; }
  const s = r.data;
  fill(out, el('dl', { class: 'sim' },
    el('dt', {}, '結果'), el('dd', {}, el('span', { class: 'badge ' + (s.visible ? 'b-waiting' : '') }, s.visible ? '表示される' : '表示されない')),
    s.clause ? el('dt', {}, '根拠条項') : null, s.clause ? el('dd', { class: 'mono' }, s.clause) : null,
    s.visible ? el('dt', {}, '詳細表示の項目') : null, s.visible ? el('dd', {}, fieldList(s.fields)) : null,
    s.visible ? el('dt', {}, '一覧の項目') : null, s.visible ? el('dd', {}, fieldList(s.summary_fields)) : null));
}

// ---- revocations ----------------------------------------------------------------------------

async function loadRevocations() {
  const r = await call('GET', '/v1/admin/revocations');
  const out = $('revocation-list');
  if (!r.ok) { fill(out, problemNode(r)); return; }
  const rows = r.data.revocations.map((x) => [
    x.kind === 'terminal' ? '端末' : '職員',
    x.kind === 'terminal' ? x.station_id + ' ' + x.terminal_no + '番' : x.officer_id,
    fmtTime(x.revoked_at), x.revoked_by,
  ]);
  fill(out, rows.length
    ? table('失効済み（' + rows.length + '件）', ['種別', '対象', '失効日時', '失効させた管理者'], rows, { class: 'revoked' })
    : el('p', { class: 'muted' }, '失効済みの端末・職員はありません。'));
}

function askRevoke(question, path) {
  state.pendingRevoke = path;
  $('revoke-question').textContent = question;
  fill($('revoke-result'));
  $('revoke-confirm').hidden = false;
  $('revoke-yes').focus();
}

async function revoke() {
  const path = state.pendingRevoke;
  if (!path) return;
  state.pendingRevoke = null;
  $('revoke-confirm').hidden = true;
  const r = await call('POST', path);
  if (!r.ok) { fill($('revoke-result'), problemNode(r)); return; }
  const d = r.data;
  for (const f of ['revoke-terminal', 'revoke-officer']) $(f).reset();
  await loadRevocations();
  fill($('revoke-result'), el('p', { class: 'ok', role: 'status' }, d.newly_revoked
    ? '失効させました（監査記録 #' + d.audit_index + '、切断した接続 ' + d.connections_cut + '件）。'
    : 'すでに失効しています。'));
}

init();
