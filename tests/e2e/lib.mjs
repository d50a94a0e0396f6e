// What the browser tests share: the gateway and PKI from the environment (set by
// tests/api/e2e.rs), requests with a client certificate, Debian's Chromium with a client
// certificate per page, steps, screenshots and axe-core.
import { chromium } from 'playwright-core';
import fs from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import { createRequire } from 'node:module';

const AXE = fs.readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

export const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`missing ${k}`);
  return v;
};
export const GATEWAY = env('E2E_GATEWAY');
export const PKI = env('E2E_PKI');
export const ARTIFACTS = env('E2E_ARTIFACTS');
fs.mkdirSync(ARTIFACTS, { recursive: true });

const ca = fs.readFileSync(path.join(PKI, 'ca/server-ca.pem'));
const client = (name) => ({
  cert: fs.readFileSync(path.join(PKI, `clients/${name}.pem`)),
  key: fs.readFileSync(path.join(PKI, `clients/${name}-key.pem`)),
});

/** One request as `who` (a client certificate of the dev PKI): `{status, text}`. */
export function request(method, urlPath, who, body, token) {
  const url = new URL(urlPath, GATEWAY);
  const data = body == null ? null : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
  return new Promise((resolve, reject) => {
    const req = https.request({
      method, hostname: url.hostname, port: url.port, path: url.pathname + url.search, ca, ...client(who),
      headers: {
        ...(data ? { 'content-type': 'application/json', 'content-length': data.length } : {}),
        ...(token ? { authorization: `Bearer ${token}` } : {}),
      },
    }, (res) => {
      let text = '';
      res.on('data', (c) => { text += c; });
      res.on('end', () => resolve({ status: res.statusCode, text }));
    });
    req.on('error', reject);
    if (data) req.write(data);
    req.end();
  });
}

export const step = async (name, fn) => {
  const t = Date.now();
  await fn();
  console.error(`ok  ${name} (${Date.now() - t} ms)`);
};
export const shot = (p, name) => p.screenshot({ path: path.join(ARTIFACTS, name), fullPage: true });
export const expect = (cond, message) => { if (!cond) throw new Error(message); };
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** axe-core in the page (evaluated through the driver, so the page's CSP stays strict). */
export async function axe(p, label) {
  await p.evaluate(AXE);
  const violations = await p.evaluate(async () => (await window.axe.run(document, { resultTypes: ['violations'] })).violations
    .map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 3).map((n) => n.target.join(' ')) })));
  const bad = violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  for (const v of violations) console.error(`    axe ${label}: ${v.impact} ${v.id} ${v.nodes.join(', ')}`);
  expect(bad.length === 0, `axe (${label}): ${JSON.stringify(bad)}`);
}

export async function launch() {
  return chromium.launch({
    executablePath: process.env.E2E_CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--autoplay-policy=no-user-gesture-required', '--lang=ja-JP'],
  });
}

/** A page of a new browser context presenting `name`'s client certificate. */
export async function pageAs(browser, name, options = {}) {
  const context = await browser.newContext({
    viewport: options.viewport || { width: 1366, height: 768 },
    locale: 'ja-JP',
    timezoneId: 'Asia/Tokyo',
    ignoreHTTPSErrors: true,
    baseURL: GATEWAY,
    clientCertificates: [{
      origin: GATEWAY,
      certPath: path.join(PKI, `clients/${name}.pem`),
      keyPath: path.join(PKI, `clients/${name}-key.pem`),
    }],
  });
  const p = await context.newPage();
  p.on('console', (m) => { if (m.type() === 'error') console.error(`browser(${name}):`, m.text()); });
  if (options.clock) await p.clock.install();
  return p;
}
