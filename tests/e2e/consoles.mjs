// End-to-end test of the administrator's console (/admin/) and the CGC's page (/center/) in
// Debian's Chromium, driven by playwright-core. Started by tests/api/e2e.rs, which runs the real
// gateway with the demo's token issuer and pushes E2E-C1 (Yokohama's central center, in
// 加賀町's area) before it starts.
import path from 'node:path';
import { ARTIFACTS, axe, expect, launch, pageAs, request, shot, step } from './lib.mjs';

const CASE = 'yokohama-central:E2E-C1';

/** A development token for a certificate of the dev PKI, as the pages' sign-in buttons get. */
async function devToken(who, subject) {
  const r = await request('POST', '/v1/dev/token', who, { subject });
  expect(r.status === 200, `dev token for ${who}: ${r.status} ${r.text}`);
  return JSON.parse(r.text).token;
}

async function adminSignIn(p, subject) {
  await p.goto('/admin/');
  await p.locator('#subject').fill(subject);
  await p.getByRole('button', { name: '開発用トークンでサインイン' }).click();
  await p.locator('article[data-agreement="kanagawa-2026"]').waitFor({ timeout: 5000 });
}

const browser = await launch();
let page;
try {
  // ---- the CGC's page: an officer opens the case first ----------------------------------
  await step('a terminal lists and opens E2E-C1 (the audit log records both)', async () => {
    const token = await devToken('terminal-kagacho-1', 'K-1234');
    const list = await request('GET', '/v1/terminal/cases', 'terminal-kagacho-1', null, token);
    expect(list.status === 200 && list.text.includes(CASE), `list: ${list.status}`);
    const one = await request('GET', `/v1/terminal/cases/${CASE}`, 'terminal-kagacho-1', null, token);
    expect(one.status === 200, `detail: ${one.status} ${one.text}`);
  });

  page = await pageAs(browser, 'center-yokohama-central');
  const center = page;
  await step('the center sees its own cases, newest first, and nobody else\'s', async () => {
    await center.goto('/center/');
    await center.locator('#who', { hasText: '横浜市中央児童相談所' }).waitFor({ timeout: 5000 });
    const row = center.locator('#cases tr[data-case="E2E-C1"]');
    await row.waitFor();
    const text = await row.innerText();
    for (const t of ['E2E-C1', '調査中', '山田　花子']) expect(text.includes(t), `case row lacks ${t}: ${text}`);
    expect(await center.locator('#cases tr[data-case="E2E-OTHER"]').count() === 0, 'another center\'s case is listed');
  });

  await step('who opened it: station, officer, fields and clause, apart from listings', async () => {
    await center.getByRole('button', { name: 'E2E-C1 の閲覧記録' }).click();
    const opened = center.locator('table.disclosures.opened tbody tr');
    await opened.first().waitFor({ timeout: 5000 });
    expect(await opened.count() === 1, `openings: ${await opened.count()}`);
    const text = await opened.first().innerText();
    for (const t of ['加賀町警察署', 'K-1234', '詳細表示', '氏名', 'kanagawa-2026@v1/providers/141003']) expect(text.includes(t), `opening lacks ${t}: ${text}`);
    const listed = center.locator('table.disclosures.listed tbody tr');
    await listed.first().waitFor();
    expect((await listed.first().innerText()).includes('一覧'), 'the listing is not shown as 一覧');
    const listedText = await center.locator('table.disclosures.listed').innerText();
    expect(!listedText.includes('詳細表示'), 'an opening is among the listings');
    // A list discloses the summary (the municipality), the opened case the full view (the address).
    expect(text.includes('住所') && !listedText.includes('住所') && listedText.includes('市区町村'), `fields: ${listedText}`);
  });

  await step('the receipt: the entry is in the signed checkpoint\'s log (checked in the page)', async () => {
    const first = center.locator('table.disclosures.opened tbody tr').first();
    await first.locator('summary').click();
    await first.getByRole('button', { name: '包含証明を確認' }).click();
    await first.locator('[data-verified="yes"]').waitFor({ timeout: 5000 });
    await shot(center, 'center-disclosures.png');
    await axe(center, 'center page');
  });

  // ---- the CGC's page live: openings, responses and transfers without reload ---------------
  await step('the page is live on its center stream; an opening appears without reload', async () => {
    await center.locator('#conn[data-state="live"]').waitFor({ timeout: 5000 });
    expect(await center.locator('#conn-banner').isHidden(), 'a banner while live');
    const token = await devToken('terminal-kagacho-1', 'K-1234');
    const one = await request('GET', `/v1/terminal/cases/${CASE}`, 'terminal-kagacho-1', null, token);
    expect(one.status === 200, `detail: ${one.status}`);
    const item = center.locator('#feed li[data-kind="opened"][data-case="E2E-C1"]');
    await item.waitFor({ timeout: 5000 });
    const text = await item.innerText();
    for (const t of ['加賀町警察署', 'K-1234', '詳細表示']) expect(text.includes(t), `opening lacks ${t}: ${text}`);
    // The records of the case on screen gain the second opening.
    await center.locator('table.disclosures.opened tbody tr:nth-child(2)').waitFor({ timeout: 5000 });
  });

  await step('a police response appears in the responses and the feed without reload', async () => {
    const token = await devToken('terminal-kagacho-1', 'K-1234');
    const r = await request('POST', `/v1/terminal/cases/${CASE}/responses`, 'terminal-kagacho-1',
      { kind: 'safety_confirmed', at: '2026-11-20T11:30:00+09:00', note: '本人と面会' }, token);
    expect(r.status === 201, `response: ${r.status} ${r.text}`);
    const row = center.locator('table.responses tbody tr[data-case="E2E-C1"]');
    await row.waitFor({ timeout: 5000 });
    const text = await row.innerText();
    for (const t of ['安全確認', '加賀町警察署', 'K-1234', '本人と面会']) expect(text.includes(t), `response lacks ${t}: ${text}`);
    await center.locator('#feed li[data-kind="response"]', { hasText: '安全確認' }).waitFor();
  });

  await step('a refused transfer request is said in Japanese, naming the field', async () => {
    await center.locator('#tr-case').fill('E2E-T1');
    await center.locator('#tr-to').fill('yokohama-central');
    await center.getByRole('button', { name: '転出を依頼' }).click();
    await center.locator('#transfer-result .error', { hasText: '転出先の児童相談所ID' }).waitFor({ timeout: 5000 });
  });

  const receiver = await pageAs(browser, 'center-kawasaki-central');
  await step('a transfer: requested here, accepted by the receiving center, seen live on both pages', async () => {
    await receiver.goto('/center/');
    await receiver.locator('#conn[data-state="live"]').waitFor({ timeout: 5000 });
    await center.locator('#tr-case').fill('E2E-T1');
    await center.locator('#tr-to').fill('kawasaki-central');
    await center.getByRole('button', { name: '転出を依頼' }).click();
    await center.locator('#transfer-result .ok', { hasText: 'E2E-T1' }).waitFor({ timeout: 5000 });
    await center.locator('table.transfers tr[data-direction="outgoing"]', { hasText: 'E2E-T1' }).waitFor();
    // The receiver's page hears of it on its stream, with the buttons for an incoming one.
    const incoming = receiver.locator('table.transfers tr[data-direction="incoming"]', { hasText: 'E2E-T1' });
    await incoming.waitFor({ timeout: 5000 });
    expect(await center.locator('table.transfers button[data-action]').count() === 0, 'the sender can decide its own transfer');
    await receiver.locator('#feed li[data-kind="transfer"]', { hasText: 'E2E-T1' }).waitFor();
    await shot(center, 'center.png');
    await axe(receiver, 'center page with an incoming transfer');
    await incoming.getByRole('button', { name: 'E2E-T1 を受け入れる' }).click();
    await receiver.locator('#transfer-result .ok', { hasText: '受け入れました' }).waitFor({ timeout: 5000 });
    await receiver.locator('#cases tr[data-case="E2E-T1"]').waitFor({ timeout: 5000 });
    // The sender's page, without reload: the feed says so, the case leaves its list.
    await center.locator('#feed li[data-kind="transfer"]', { hasText: '受入済' }).waitFor({ timeout: 5000 });
    await center.locator('#cases tr[data-case="E2E-T1"]').waitFor({ state: 'detached', timeout: 5000 });
    expect(await center.locator('table.transfers tr[data-transfer]').count() === 0, 'the accepted transfer is still pending');
  });
  await receiver.context().close();
  await center.context().close();

  // ---- the administrator's console -------------------------------------------------------
  page = await pageAs(browser, 'admin-14-pref-admin', { viewport: { width: 1366, height: 900 } });
  const pref = page;

  await step('the prefecture\'s administrator signs in and sees the agreement with its versions', async () => {
    await adminSignIn(pref, 'pref-admin');
    expect((await pref.locator('#who').innerText()).includes('神奈川県'), 'the header does not name the prefecture');
    const card = pref.locator('article[data-agreement="kanagawa-2026"]');
    const text = await card.innerText();
    for (const t of ['児童虐待事案に係る神奈川県警察との情報共有に関する協定', '現行版: v1', '横浜市（141003）', '川崎市（141305）', '打診中']) {
      expect(text.includes(t), `agreement card lacks ${t}`);
    }
    // The opt-in buttons are the city's: the prefecture sees none for a city that was asked.
    expect(await card.locator('button[data-action="consent"]').count() === 0, 'the prefecture sees a consent button');
    await shot(pref, 'admin-agreements.png');
  });

  await step('a widening proposal: the diff names the new access before it is submitted', async () => {
    const card = pref.locator('article[data-agreement="kanagawa-2026"]');
    await card.locator('details.proposal-tool summary').click();
    const text = card.locator('textarea.proposal');
    const v1 = await text.inputValue();
    expect(/^version = 2$/m.test(v1), 'the proposal does not start as the next version');
    // 県内他署 newly sees the child's address.
    await text.fill(v1.replace('prefecture_stations = [\n', 'prefecture_stations = [\n  "child.address",\n'));
    const submit = card.getByRole('button', { name: 'この版を提出' });
    expect(await submit.isDisabled(), 'a proposal can be submitted before its diff was seen');
    await card.getByRole('button', { name: '提出前に差分を確認' }).click();
    const verdict = card.locator('.proposal-result .verdict[data-verdict="new_access"]');
    await verdict.waitFor({ timeout: 5000 });
    expect((await verdict.innerText()).includes('新たなアクセスあり'), 'the verdict is not said in Japanese');
    const gains = await card.locator('.proposal-result table.gains').innerText();
    for (const t of ['県内他署', '住所', 'prefecture_stations']) expect(gains.includes(t), `gains lack ${t}: ${gains}`);
    await card.locator('.proposal-result').scrollIntoViewIfNeeded();
    await shot(pref, 'admin-diff.png');
    await axe(pref, 'admin console with a diff');
    // Changing the text after the check requires checking again.
    await text.press('End');
    await text.type('\n');
    expect(await submit.isDisabled(), 'an unchecked text can be submitted');
  });

  await step('what terminal T would see of case C', async () => {
    await pref.locator('#sim-center').fill('yokohama-central');
    await pref.locator('#sim-case').fill('E2E-C1');
    await pref.getByRole('button', { name: '判定' }).click();
    await pref.locator('#sim-result dd', { hasText: '表示される' }).waitFor({ timeout: 5000 });
    const result = await pref.locator('#sim-result').innerText();
    for (const t of ['kanagawa-2026@v1/providers/141003', '氏名']) expect(result.includes(t), `simulation lacks ${t}: ${result}`);
  });

  await step('the administrator revokes a terminal and sees it listed', async () => {
    await pref.locator('#rt-station').fill('tsurumi');
    await pref.locator('#rt-no').fill('1');
    await pref.getByRole('button', { name: '端末を失効させる' }).click();
    await pref.getByRole('button', { name: '失効を確定（取り消せません）' }).click();
    await pref.locator('#revoke-result', { hasText: '失効させました' }).waitFor({ timeout: 5000 });
    const listed = await pref.locator('table.revoked').innerText();
    expect(listed.includes('tsurumi 1番') && listed.includes('端末'), `revocations: ${listed}`);
    await pref.locator('#revocations').scrollIntoViewIfNeeded();
    await shot(pref, 'admin-revocations.png');
  });

  await step('the checked proposal is submitted; the two versions compare as the proposal did', async () => {
    const card = pref.locator('article[data-agreement="kanagawa-2026"]');
    await card.getByRole('button', { name: '提出前に差分を確認' }).click();
    const submit = card.getByRole('button', { name: 'この版を提出' });
    await card.locator('button.danger:not([disabled])', { hasText: 'この版を提出' }).waitFor({ timeout: 5000 });
    await submit.click();
    await pref.locator('#status', { hasText: 'v2 を提出しました' }).waitFor({ timeout: 5000 });
    const status = await pref.locator('#status').innerText();
    expect(status.includes('141003') && status.includes('142018'), `the cities asked again are not named: ${status}`);
    const fresh = pref.locator('article[data-agreement="kanagawa-2026"]');
    expect((await fresh.innerText()).includes('現行版: v2'), 'v2 is not in force');
    // The comparison of the stored versions (v1 → v2 by default).
    await fresh.getByRole('button', { name: '差分を表示' }).click();
    const verdict = fresh.locator('.diff-tool .verdict[data-verdict="new_access"]');
    await verdict.waitFor({ timeout: 5000 });
    expect((await verdict.innerText()).startsWith('v1 → v2'), `verdict: ${await verdict.innerText()}`);
    expect((await fresh.locator('.diff-tool table.gains').innerText()).includes('閲覧項目（県内他署）'), 'the clause is not named');
  });

  // ---- the city's side of the opt-in ------------------------------------------------------
  const city = await pageAs(browser, 'admin-141305-city-admin');
  await step('the city\'s administrator sees the consent button for its own city only, and consents', async () => {
    await adminSignIn(city, 'kawasaki-admin');
    const card = city.locator('article[data-agreement="kanagawa-2026"]');
    const consent = card.locator('button[data-action="consent"]');
    expect(await consent.count() === 1, `consent buttons: ${await consent.count()}`);
    expect(await consent.getAttribute('data-operator') === '141305', 'a consent button for another city');
    expect(await card.locator('button[data-action="confirm"]').count() === 0, 'the city sees the prefecture\'s confirm');
    expect(await city.locator('#revoke-denied').isVisible(), 'a city is offered revocations');
    expect(await city.locator('#sim-form').isHidden(), 'a city is offered the simulation');
    await axe(city, 'admin console (city)');
    await shot(city, 'admin-city.png');
    await consent.click();
    await city.locator('#status', { hasText: '同意しました' }).waitFor({ timeout: 5000 });
    await card.locator('table.providers', { hasText: '同意済（県の確認待ち）' }).waitFor();
  });

  await step('the prefecture then confirms; Kawasaki shares', async () => {
    await adminSignIn(pref, 'pref-admin');
    const confirm = pref.locator('button[data-action="confirm"][data-operator="141305"]');
    await confirm.click();
    await pref.locator('#status', { hasText: '確認しました' }).waitFor({ timeout: 5000 });
    await pref.locator('table.providers tr', { hasText: '川崎市' }).filter({ hasText: '共有中（確認済）' }).waitFor();
    expect(await pref.locator('button[data-operator="141305"]').count() === 0, 'buttons left for a confirmed city');
  });
} catch (e) {
  if (page) await page.screenshot({ path: path.join(ARTIFACTS, 'consoles-failure.png') }).catch(() => {});
  console.error(e.stack || String(e));
  process.exitCode = 1;
} finally {
  await browser.close();
}
