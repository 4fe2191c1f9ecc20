// The browser end to end test of the web page (issue 4), run by
// t-browser.sh: Debian's chromium driven by playwright-core (from the
// build's web-npm/node_modules), never a downloaded browser.
//
// Environment (set by t-browser.sh):
//   VCD_BUILD     build directory (web-npm/node_modules/playwright-core)
//   VCD_URL       the daemon's page, http://127.0.0.1:PORT/
//   VCD_TOKEN     a token for every guest (virtconsolectl token --all)
//   VCD_GUEST     the lab guest to open (its serial0 console)
//   VCD_PROFILE   a fresh, empty --user-data-dir
//   VCD_SHOT      where to save the screenshot
//   CHROMIUM      the browser (default /usr/bin/chromium)
//
// Output: "ok - ..." / "not ok - ..." lines and "# " diagnostics, which
// t-browser.sh numbers into TAP.  Exit status 0 when every check passed.
import { createRequire } from 'node:module';
import path from 'node:path';

const env = (name) => {
  const v = process.env[name];
  if (!v) { console.log(`not ok - ${name} is not set`); process.exit(1); }
  return v;
};
const BUILD = env('VCD_BUILD');
const URL0 = env('VCD_URL');
const TOKEN = env('VCD_TOKEN');
const GUEST = env('VCD_GUEST');
const PROFILE = env('VCD_PROFILE');
const SHOT = env('VCD_SHOT');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

const require = createRequire(import.meta.url);
const { chromium } = require(path.join(BUILD, 'web-npm', 'node_modules', 'playwright-core'));

let failed = 0;
function ok(cond, desc, ...diags) {
  console.log(`${cond ? 'ok' : 'not ok'} - ${desc}`);
  if (!cond) {
    failed++;
    for (const d of diags) diag(d);
  }
  return !!cond;
}
function diag(msg) {
  for (const line of String(msg ?? '').split('\n')) console.log(`# ${line}`);
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Poll fn() until it is truthy or ms pass; its last value.
async function until(fn, ms, every = 100) {
  const end = Date.now() + ms;
  for (;;) {
    let v;
    try { v = await fn(); } catch (e) { v = null; }
    if (v || Date.now() >= end) return v;
    await sleep(every);
  }
}

const console_msgs = [];   // [type, text]
const bad_responses = [];  // [url, status] of responses >= 400
const page_errors = [];

async function termText(page) {
  return page.evaluate(() => {
    const rows = document.querySelector('#terminal .xterm-rows');
    return rows ? Array.from(rows.children).map((r) => r.textContent).join('\n') : '';
  });
}

async function statusText(page) {
  return page.evaluate(() => document.getElementById('status').textContent);
}

async function guestsState(page) {
  return page.evaluate(() => ({
    empty: document.getElementById('guests-empty').textContent,
    tableHidden: document.getElementById('guest-table').hidden,
    buttons: Array.from(document.querySelectorAll('#guest-table button.console'))
      .map((b) => `${b.dataset.guest}/${b.dataset.alias}${b.classList.contains('busy') ? ' (busy)' : ''}`),
  }));
}

function consoleButton(page) {
  return page.locator(`#guest-table button.console[data-guest="${GUEST}"][data-alias="serial0"]`);
}

// Press Enter until the shell prompt shows in the terminal.
async function waitPrompt(page, ms) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    await page.keyboard.press('Enter');
    const t = await until(async () => /# /.test(await termText(page)), 700);
    if (t) return true;
  }
  return false;
}

// Click the console button; wait for the status line to say attached.
async function attach(page, label) {
  const btn = consoleButton(page);
  const shown = await until(async () => (await btn.count()) === 1 && !(await btn.evaluate((b) => b.classList.contains('busy'))), 15000, 250);
  const gs = await guestsState(page);
  if (!ok(shown, `${label}: the guest list shows ${GUEST} with a free serial0 button`,
    `guest list: ${JSON.stringify(gs)}`)) return false;
  await btn.click();
  const st = await until(async () => {
    const s = await statusText(page);
    return s === 'attached' || s.startsWith('disconnected') ? s : null;
  }, 15000);
  return ok(st === 'attached', `${label}: click ${GUEST} serial0 -> status 'attached'`, `status: ${await statusText(page)}`);
}

async function echo(page, label, word) {
  if (!ok(await waitPrompt(page, 40000), `${label}: the shell prompt '# ' appears in the terminal`,
    `terminal: ${JSON.stringify((await termText(page)).slice(-600))}`)) return false;
  await page.keyboard.type(`echo ${word}-$((6*7))`);
  await page.keyboard.press('Enter');
  const seen = await until(async () => (await termText(page)).includes(`${word}-42`), 10000);
  return ok(seen, `${label}: typing 'echo ${word}-$((6*7))' + Enter shows ${word}-42`,
    `terminal: ${JSON.stringify((await termText(page)).slice(-600))}`);
}

const t0 = Date.now();
// The fresh profile goes in as launchPersistentContext's userDataDir
// (playwright passes it as --user-data-dir and refuses it in args).
const context = await chromium.launchPersistentContext(PROFILE, {
  executablePath: CHROMIUM,
  headless: true,
  viewport: { width: 1100, height: 700 },
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic',
    '--disable-background-networking', '--disable-component-update',
    '--disable-sync', '--no-first-run'],
  timeout: 60000,
});
ok(true, `chromium ${context.browser()?.version() ?? ''} started from ${CHROMIUM} (${Date.now() - t0} ms)`);

try {
  const page = context.pages()[0] || await context.newPage();
  page.setDefaultTimeout(20000);
  page.on('console', (m) => console_msgs.push([m.type(), m.text()]));
  page.on('pageerror', (e) => page_errors.push(String(e)));
  // What the page's guest-list fetch carries (the daemon's Origin rule
  // depends on it): told once.
  let toldApi = false;
  page.on('request', async (r) => {
    if (toldApi || !r.url().includes('/api/guests')) return;
    toldApi = true;
    const h = await r.allHeaders().catch(() => ({}));
    diag(`the page's GET api/guests carries: Origin: ${h.origin ?? '(none)'}, ` +
      `Sec-Fetch-Site: ${h['sec-fetch-site'] ?? '(none)'}, Sec-Fetch-Mode: ${h['sec-fetch-mode'] ?? '(none)'}, ` +
      `Cookie: ${h.cookie ? 'vcd_session=...' : '(none)'}`);
  });
  page.on('response', (r) => {
    if (r.status() >= 400) bad_responses.push([r.url().replace(TOKEN, 'T'), r.status()]);
  });
  await page.addInitScript(() => {
    window.__csp = [];
    document.addEventListener('securitypolicyviolation', (e) =>
      window.__csp.push(`${e.violatedDirective} ${e.blockedURI}`));
  });

  // 1. Sign in with the token: a cookie, and the token leaves the URL.
  const resp = await page.goto(`${URL0}?token=${encodeURIComponent(TOKEN)}`, { waitUntil: 'load' });
  const chain = [];
  for (let r = resp?.request(); r; r = r.redirectedFrom()) chain.unshift(r.url().replace(TOKEN, 'T'));
  ok(resp && resp.status() === 200 && !page.url().includes('token'),
    `/?token=T redirects to ${page.url()} (no token in the address bar), the page loads (${resp && resp.status()})`,
    `requests: ${chain.join(' -> ')}`);
  const cookies = await context.cookies();
  const ck = cookies.find((c) => c.name === 'vcd_session');
  ok(ck && ck.httpOnly && ck.sameSite === 'Strict' && !ck.secure,
    'the browser holds the vcd_session cookie: HttpOnly, SameSite=Strict', JSON.stringify(cookies.map((c) => ({ ...c, value: '...' }))));
  ok(!(await page.evaluate(() => document.cookie)).includes('vcd_session'),
    'the page script cannot read the cookie (document.cookie)');

  // 2. The guest list, the console, an echo round trip.
  if (await attach(page, 'first visit')) await echo(page, 'first visit', 'hi');

  // 3. Reload: the cookie keeps the session.
  await page.reload({ waitUntil: 'load' });
  ok(true, 'page reloaded');
  if (await attach(page, 'after reload')) await echo(page, 'after reload', 'again');

  // 4. The Reconnect button, then the escape key through the page.
  const attached = (await statusText(page)) === 'attached';
  if (!attached) {
    ok(false, 'the Reconnect button and the escape key: not tried, no console is attached',
      `status: ${await statusText(page)}`);
  } else {
    await page.click('#reconnect');
    const st = await until(async () => {
      const s = await statusText(page);
      return s === 'attached' || s.startsWith('disconnected') ? s : null;
    }, 15000);
    ok(st === 'attached', 'the Reconnect button attaches again', `status: ${await statusText(page)}`);
    if (st === 'attached') await echo(page, 'after Reconnect', 'recon');
  }

  await page.screenshot({ path: SHOT, fullPage: true });
  ok(true, `screenshot saved: ${SHOT}`);

  if (attached) {
    await page.keyboard.press('Control+q');
    // The status and the terminal are two renderings: wait for both (the
    // page sets the status only after the notice is rendered, but this
    // test reads them one after the other).
    const notice = '[virtconsoled] disconnected: escape key';
    await until(async () => (await statusText(page)).startsWith('disconnected') &&
      (await termText(page)).includes(notice), 10000);
    const st2 = await statusText(page);
    const tt = await termText(page);
    ok(st2 === 'disconnected: escape key' && tt.includes(notice),
      "Ctrl+Q: status 'disconnected: escape key' and the notice in the terminal",
      `status: ${st2}; terminal: ${JSON.stringify(tt.slice(-300))}`);
  }

  // 6. CSP: nothing the page does is blocked.
  const csp = await page.evaluate(() => window.__csp);
  const cspMsgs = console_msgs.filter(([, text]) => /Content Security Policy|Content-Security-Policy/i.test(text));
  ok(csp.length === 0 && cspMsgs.length === 0, 'no Content-Security-Policy violations and no console errors about CSP',
    ...csp, ...cspMsgs.map(([ty, tx]) => `${ty}: ${tx}`));
  ok(page_errors.length === 0, `no uncaught errors in the page (${page_errors.length})`, ...page_errors);
  for (const [url, status] of bad_responses) diag(`HTTP ${status} for ${url}`);
} catch (e) {
  ok(false, `unexpected: ${e && e.message ? e.message.split('\n')[0] : e}`, e && e.stack);
} finally {
  for (const [ty, tx] of console_msgs) diag(`console ${ty}: ${tx}`);
  await context.close().catch(() => {});
}
diag(`browser part: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
process.exit(failed ? 1 : 0);
