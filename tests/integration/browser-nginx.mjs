// The browser part of t-nginx.py (issue 19, several hypervisors): two
// daemons behind one nginx, daemon A under /a/ and daemon B under /b/ of
// one origin.  One Debian chromium, driven by playwright-core from the
// build's web-npm/node_modules (never a downloaded browser), signs in to
// both with their tokens, holds both cookies (each scoped to its prefix),
// and types into both consoles at once; then A's token and A's cookie are
// refused by B.
//
// Environment (set by t-nginx.py):
//   VCD_BUILD     build directory (web-npm/node_modules/playwright-core)
//   NGX_URL       nginx's origin, http://127.0.0.1:PORT/
//   TOKEN_A       a token of daemon A for GUEST_A
//   TOKEN_A2      another of A's, offered to B
//   TOKEN_B       a token of daemon B for GUEST_B
//   GUEST_A       the guest of A's lab (its serial0 console is opened)
//   GUEST_B       the guest of B's lab
//   COOKIE_A      A's cookie_name, COOKIE_B B's
//   VCD_PROFILE   a fresh, empty --user-data-dir
//   CHROMIUM      the browser (default /usr/bin/chromium)
//
// Output: "ok - ..." / "not ok - ..." lines and "# " diagnostics, which
// t-nginx.py numbers into its TAP.  Exit status 0 when every check passed.
import path from 'node:path';
import { diag, env, finish, mark, ok, playwrightChromium, sleep, until } from './browserlib.mjs';

const BUILD = env('VCD_BUILD');
const URL0 = env('NGX_URL');
const TOKEN_A = env('TOKEN_A');
const TOKEN_A2 = env('TOKEN_A2');
const TOKEN_B = env('TOKEN_B');
const GUEST_A = env('GUEST_A');
const GUEST_B = env('GUEST_B');
const COOKIE_A = env('COOKIE_A');
const COOKIE_B = env('COOKIE_B');
const PROFILE = env('VCD_PROFILE');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

const chromium = playwrightChromium(BUILD);



// Token text never goes to the output.
function scrub(s) {
  return String(s).replaceAll(TOKEN_A, 'TA').replaceAll(TOKEN_A2, 'TA2')
    .replaceAll(TOKEN_B, 'TB').replaceAll(encodeURIComponent(TOKEN_A), 'TA')
    .replaceAll(encodeURIComponent(TOKEN_A2), 'TA2')
    .replaceAll(encodeURIComponent(TOKEN_B), 'TB');
}

const termText = (page) => page.evaluate(() => window.virtconsoled.text());
const statusText = (page) => page.evaluate(() => document.getElementById('status').textContent);
const listed = (page) => page.evaluate(() =>
  Array.from(document.querySelectorAll('#guest-table button.console'))
    .map((b) => `${b.dataset.guest}/${b.dataset.alias}`));
const guestsEmpty = (page) => page.evaluate(() => document.getElementById('guests-empty')?.textContent ?? null);

function chainOf(resp) {
  const chain = [];
  for (let r = resp?.request(); r; r = r.redirectedFrom()) chain.unshift(scrub(r.url()));
  return chain;
}

async function cookies() {
  return (await context.cookies()).filter((c) => c.name === COOKIE_A || c.name === COOKIE_B);
}
const showCookies = (cs) => JSON.stringify(cs.map((c) => `${c.name} path=${c.path} domain=${c.domain}` +
  ` httpOnly=${c.httpOnly} sameSite=${c.sameSite}`));

// Open PREFIX/?token=TOK: a 302 to PREFIX/ (./ resolved under the prefix),
// the page, its guest list from PREFIX/api/guests with GUEST only.
async function signIn(page, prefix, tok, name, guest, other) {
  const label = `${prefix}: /${prefix}/?token=${name}`;
  const resp = await page.goto(`${URL0}${prefix}/?token=${encodeURIComponent(tok)}`, { waitUntil: 'load' });
  const chain = chainOf(resp);
  ok(resp && resp.status() === 200 && page.url() === `${URL0}${prefix}/` && chain.length === 2,
    `${label} through nginx: redirected to ${page.url()} (./ under the prefix), the page loads (${resp && resp.status()})`,
    `requests: ${chain.join(' -> ')}; status ${resp && resp.status()}` +
    (resp && resp.status() !== 200 ? `; body: ${scrub(await resp.text().catch(() => '?')).trim()}` : ''));
  const shown = await until(async () => (await listed(page)).includes(`${guest}/serial0`), 20000, 250);
  const l = await listed(page);
  ok(shown && !l.some((x) => x.startsWith(`${other}/`)),
    `${prefix}: the guest list (${prefix}/api/guests) shows ${guest}, not ${other}: ${JSON.stringify(l)}`,
    `guests-empty: ${await guestsEmpty(page)}`);
}

// Click GUEST's serial0 button; the page's WebSocket goes to
// PREFIX/console/GUEST through nginx; status 'attached'.
async function attach(page, prefix, guest) {
  const label = `${prefix}: ${guest} serial0`;
  const wsUrl = new Promise((resolve) => page.once('websocket', (ws) => resolve(ws.url())));
  await page.locator(`#guest-table button.console[data-guest="${guest}"][data-alias="serial0"]`).click();
  const st = await until(async () => {
    const s = await statusText(page);
    return s === 'attached' || s.startsWith('disconnected') || s.startsWith('cannot') ? s : null;
  }, 15000);
  const u = await Promise.race([wsUrl, sleep(2000).then(() => '(none seen)')]);
  const want = `${URL0.replace(/^http/, 'ws')}${prefix}/console/${guest}/serial0?`;
  ok(u.startsWith(want), `${label}: the page's WebSocket URL is under the prefix (${u})`, `expected it to start with ${want}`);
  return ok(st === 'attached', `${label}: click -> status 'attached' (${st})`, `status: ${await statusText(page)}`);
}

// Press Enter until '# ' shows, then type WORD's echo and see WORD-42.
async function echo(page, label, word, promptMs = 40000) {
  await page.bringToFront();
  const end = Date.now() + promptMs;
  let prompt = false;
  while (!prompt && Date.now() < end) {
    await page.keyboard.press('Enter');
    prompt = await until(async () => /# /.test(await termText(page)), 700);
  }
  if (!ok(prompt, `${label}: the shell prompt appears in the terminal`,
    `terminal: ${JSON.stringify((await termText(page)).slice(-400))}`)) return false;
  const t0 = Date.now();
  await page.keyboard.type(`echo ${word}-$((6*7))`);
  await page.keyboard.press('Enter');
  const seen = await until(async () => (await termText(page)).includes(`${word}-42`), 10000);
  return ok(seen, `${label}: typing 'echo ${word}-$((6*7))' shows ${word}-42 (${Date.now() - t0} ms)`,
    `terminal: ${JSON.stringify((await termText(page)).slice(-400))}`);
}

const t0 = Date.now();
const context = await chromium.launchPersistentContext(PROFILE, {
  executablePath: CHROMIUM,
  headless: true,
  viewport: { width: 1000, height: 600 },
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic',
    '--disable-background-networking', '--disable-component-update',
    '--disable-sync', '--no-first-run'],
  timeout: 60000,
});
ok(true, `chromium ${context.browser()?.version() ?? ''} started from ${CHROMIUM} (${Date.now() - t0} ms)`);

const pageErrors = [];
try {
  const pageA = context.pages()[0] || await context.newPage();
  pageA.setDefaultTimeout(20000);
  pageA.on('pageerror', (e) => pageErrors.push(`a: ${e}`));

  // A under /a/.
  await signIn(pageA, 'a', TOKEN_A, 'TA', GUEST_A, GUEST_B);
  const csA = await cookies();
  const ckA = csA.find((c) => c.name === COOKIE_A);
  ok(ckA && ckA.path === '/a' && ckA.httpOnly && ckA.sameSite === 'Strict' && csA.length === 1,
    `a: the browser holds ${COOKIE_A}, scoped to Path /a (no Path in Set-Cookie: the page's directory), HttpOnly, SameSite=Strict`,
    `cookies: ${showCookies(csA)}`);
  if (await attach(pageA, 'a', GUEST_A)) await echo(pageA, `a: ${GUEST_A}`, 'nga');
  mark('a done');

  // B under /b/, in another tab of the same browser.
  const pageB = await context.newPage();
  pageB.setDefaultTimeout(20000);
  pageB.on('pageerror', (e) => pageErrors.push(`b: ${e}`));
  await signIn(pageB, 'b', TOKEN_B, 'TB', GUEST_B, GUEST_A);
  const cs = await cookies();
  const a2 = cs.find((c) => c.name === COOKIE_A);
  const b2 = cs.find((c) => c.name === COOKIE_B);
  ok(a2 && b2 && a2.path === '/a' && b2.path === '/b' && a2.value === ckA?.value && cs.length === 2,
    `one browser holds both cookies: ${COOKIE_A} (Path /a, unchanged) and ${COOKIE_B} (Path /b)`,
    `cookies: ${showCookies(cs)}`);
  if (await attach(pageB, 'b', GUEST_B)) await echo(pageB, `b: ${GUEST_B}`, 'ngb');
  mark('b done');

  // Both consoles at once: A's tab is still attached and still echoes.
  await pageA.bringToFront();
  ok(await statusText(pageA) === 'attached', `a: still attached while b is (${await statusText(pageA)})`);
  await echo(pageA, `a: ${GUEST_A} again, beside b`, 'nga2', 5000);
  const ta = await termText(pageA);
  const tb = await termText(pageB);
  ok(!ta.includes('ngb-42') && !tb.includes('nga-42') && !tb.includes('nga2-42'),
    'each terminal holds only its own echoes (no ngb-42 in a, no nga-42 or nga2-42 in b)');
  mark('both done');

  // Refusals: A's token on B's path, then A's cookie under B's name.
  const pageC = await context.newPage();
  pageC.setDefaultTimeout(20000);
  const r = await pageC.goto(`${URL0}b/?token=${encodeURIComponent(TOKEN_A2)}`, { waitUntil: 'load' });
  const body = r ? (await r.text().catch(() => '')).trim() : '';
  const cs3 = await cookies();
  ok(r && r.status() === 403 && /wrong audience/.test(body) &&
    cs3.find((c) => c.name === COOKIE_B)?.value === b2?.value,
    `A's token TA2 opened as /b/?token=TA2: B answers ${r && r.status()} '${body}', ${COOKIE_B} unchanged`);
  await pageC.close();
  if (ckA && b2) {
    await context.addCookies([{ ...ckA, name: COOKIE_B, path: '/b' }]);
    const [status, text] = await pageB.evaluate(async () => {
      const res = await fetch('api/guests', { credentials: 'same-origin' });
      return [res.status, (await res.text()).trim()];
    });
    ok(status === 401 && /wrong audience/.test(text),
      `A's session cookie, put in the browser as ${COOKIE_B} (Path /b): b's fetch('api/guests') gets ${status} '${text}'`);
    await context.addCookies([b2]);
    const [status2] = await pageB.evaluate(async () => {
      const res = await fetch('api/guests', { credentials: 'same-origin' });
      return [res.status];
    });
    ok(status2 === 200, `B's own cookie put back: ${status2}`);
  }
  ok(pageErrors.length === 0, `no uncaught errors in the pages (${pageErrors.length})`, ...pageErrors);
} catch (e) {
  ok(false, `unexpected: ${e && e.message ? scrub(e.message.split('\n')[0]) : e}`, scrub(e && e.stack));
} finally {
  await context.close().catch(() => {});
}
diag(`browser part: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
finish();
