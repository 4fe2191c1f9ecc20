// The browser end to end test of the web page (issue 4), run by
// t-browser.sh: Debian's chromium driven by playwright-core (from the
// build's web-npm/node_modules), never a downloaded browser.
//
// Environment (set by t-browser.sh):
//   VCD_BUILD     build directory (web-npm/node_modules/playwright-core)
//   VCD_URL       the daemon's page, http://127.0.0.1:PORT/
//   VCD_TOKEN     a token for every guest (virtconsolectl token --all)
//   VCD_TOKEN2    another: offered by a cross-site page's image, frame and
//                 script (must stay unspent), then opened directly
//   VCD_TOKEN3    another: the cross-site page's link to the console page
//   VCD_TOKEN4    another: signed in, then Sign out
//   VCD_LOG       the daemon's log (login lines are counted)
//   VCD_CONF      the daemon's configuration file and
//   VCD_PID       its pid: the network cut runs under capture = always,
//                 set by a reload
//   VCD_GUEST     the lab guest to open (its serial0 console)
//   VCD_SOCK_DIR  the daemon's socket_dir (the guest's unix socket: a
//                 raw client that prints on the console before the page
//                 opens it)
//   VCD_PROFILE   a fresh, empty --user-data-dir
//   VCD_SHOT      where to save the screenshot
//   CHROMIUM      the browser (default /usr/bin/chromium)
//
// Output: "ok - ..." / "not ok - ..." lines and "# " diagnostics, which
// t-browser.sh numbers into TAP.  Exit status 0 when every check passed.
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { diag, env, finish, mark, ok, playwrightChromium, sleep, until } from './browserlib.mjs';

const BUILD = env('VCD_BUILD');
const URL0 = env('VCD_URL');
const TOKEN = env('VCD_TOKEN');
const TOKEN2 = env('VCD_TOKEN2');
const TOKEN3 = env('VCD_TOKEN3');
const TOKEN4 = env('VCD_TOKEN4');
const LOG = env('VCD_LOG');
const CONF = env('VCD_CONF');
const PID = Number(env('VCD_PID'));
const GUEST = env('VCD_GUEST');
const SOCK_DIR = env('VCD_SOCK_DIR');
const PROFILE = env('VCD_PROFILE');
const SHOT = env('VCD_SHOT');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

const chromium = playwrightChromium(BUILD);



// Token text never goes to the output: T, T2, T3, T4 instead.
function scrub(s) {
  return String(s).replaceAll(TOKEN, 'T').replaceAll(TOKEN2, 'T2')
    .replaceAll(TOKEN3, 'T3').replaceAll(TOKEN4, 'T4');
}

// How many lines of the daemon's log match re so far (-1: unreadable).
function logLines(re) {
  try {
    return fs.readFileSync(LOG, 'utf8').split('\n').filter((l) => re.test(l)).length;
  } catch (e) {
    return -1;
  }
}
// Its "login token=ID session=ID" lines.
const loginLines = () => logLines(/ web: peer=\S+ login token=[0-9a-f]{32} session=[0-9a-f]{32}$/);
// Its refusals of a ?token= request that is not a top-level navigation.
const notPageLines = () => logLines(/ web: peer=\S+ listener=\S+ status=403 why=.*a token link must be opened as a page/);

// The "management application": another site (localhost, not the daemon's
// 127.0.0.1) whose page offers token T2 to an image, a frame and a script,
// and links a person to the console page with T3.
const mgmt = http.createServer((req, res) => {
  if (req.url !== '/') { res.writeHead(404); res.end(); return; }
  const t2 = `${URL0}?token=${encodeURIComponent(TOKEN2)}`;
  res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store' });
  res.end(`<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>management</title>
<script>window.__mgmt = {};</script></head><body>
<h1>management</h1>
<img id="img" src="${t2}" onload="__mgmt.img='load'" onerror="__mgmt.img='error'">
<iframe id="frame" src="${t2}" onload="__mgmt.frame='load'"></iframe>
<script src="${t2}" onload="__mgmt.script='load'" onerror="__mgmt.script='error'"></script>
<p><a id="open" href="${URL0}?token=${encodeURIComponent(TOKEN3)}">open the console</a></p>
</body></html>
`);
});
await new Promise((resolve, reject) => {
  mgmt.once('error', reject);
  mgmt.listen(0, '127.0.0.1', resolve);
});
// localhost: another site than 127.0.0.1 (SameSite, Sec-Fetch-Site).
const MGMT_URL = `http://localhost:${mgmt.address().port}/`;

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
    // null when the browser shows something else than the page
    empty: document.getElementById('guests-empty')?.textContent ?? null,
    tableHidden: document.getElementById('guest-table')?.hidden ?? null,
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

async function sessionCookie() {
  return (await context.cookies()).find((c) => c.name === 'vcd_session');
}

function chainOf(resp) {
  const chain = [];
  for (let r = resp?.request(); r; r = r.redirectedFrom()) chain.unshift(scrub(r.url()));
  return chain;
}

// The guest list shows the guest's serial0 button (busy or not).
async function listShown(page, ms) {
  return until(async () => (await consoleButton(page).count()) === 1, ms, 250);
}

// Open /?token=TOK directly: the daemon's page, signed in.
async function signIn(page, tok, name, label) {
  const resp = await page.goto(`${URL0}?token=${encodeURIComponent(tok)}`, { waitUntil: 'load' });
  const chain = chainOf(resp);
  const ck = await sessionCookie();
  const good = resp && resp.status() === 200;
  const shown = good && await listShown(page, 15000);
  return ok(good && page.url() === URL0 && chain.length === 2 && ck && shown,
    `${label}: /?token=${name} signs in (redirected to ${page.url()}, a vcd_session cookie, the guest list shows ${GUEST})`,
    `requests: ${chain.join(' -> ')}; status ${resp && resp.status()}; cookie: ${ck ? 'yes' : 'no'}` +
    (good || !resp ? '' : `; body: ${scrub(await resp.text().catch(() => '?')).trim()}`),
    `guest list: ${JSON.stringify(await guestsState(page))}`);
}

// The page's own view: every line of xterm.js's buffer (scrollback too),
// and where it stands (run, offset, replaying, answers dropped).
const bufText = (page) => page.evaluate(() => window.virtconsoled.text());
const vstate = (page) => page.evaluate(() => window.virtconsoled.state());
// The daemon's "ended" lines for the guest.
function endedLines() {
  try {
    return fs.readFileSync(LOG, 'utf8').split('\n')
      .filter((l) => l.includes(`guest=${GUEST} dev=serial0: ended reason=`));
  } catch (e) {
    return [];
  }
}

// A raw client of the guest's unix socket (another client than the page).
function unixClient() {
  const s = net.connect(path.join(SOCK_DIR, GUEST));
  const c = { s, buf: '', closed: false, err: null };
  s.on('data', (d) => { c.buf += d.toString('latin1'); });
  s.on('error', (e) => { c.err = e; });
  s.on('close', () => { c.closed = true; });
  return c;
}

// A TCP proxy between the page and the daemon whose WebSocket connections
// the test cuts: the browser's side is reset (the page sees 1006), the
// daemon's side is kept open and unread, as after a real network cut the
// daemon has not noticed yet.  Host and Origin are rewritten to the
// daemon's, so that its Host and Origin checks see its own address.
async function startProxy(target) {
  const pairs = new Set();
  let ws = 0;
  const server = net.createServer((client) => {
    const up = net.connect(target, '127.0.0.1');
    const pair = { client, up, ws: false, cut: false };
    pairs.add(pair);
    let head = Buffer.alloc(0);
    let done = false;
    client.on('data', (d) => {
      if (done) { up.write(d); return; }
      head = Buffer.concat([head, d]);
      const i = head.indexOf('\r\n\r\n');
      if (i < 0) return;
      done = true;
      let h = head.subarray(0, i).toString('latin1');
      pair.ws = /^upgrade: *websocket/mi.test(h);
      if (pair.ws) ws++;
      const self = `127.0.0.1:${server.address().port}`;
      h = h.replace(/^Host: .*$/mi, `Host: 127.0.0.1:${target}`)
        .replace(new RegExp(`^Origin: http://${self.replace(/\./g, '\\.')}$`, 'mi'),
          `Origin: http://127.0.0.1:${target}`);
      up.write(Buffer.concat([Buffer.from(h, 'latin1'), head.subarray(i)]));
    });
    up.on('data', (d) => { if (!pair.cut) client.write(d); });
    client.on('error', () => {});
    up.on('error', () => {});
    client.on('close', () => { if (!pair.cut) up.destroy(); });
    up.on('close', () => { client.destroy(); pairs.delete(pair); });
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  return {
    url: `http://127.0.0.1:${server.address().port}/`,
    wsCount: () => ws,
    // Cut the live WebSocket connections; how many.
    cut() {
      let n = 0;
      for (const p of pairs) {
        if (!p.ws || p.cut || p.client.destroyed) continue;
        p.cut = true;
        p.up.pause();
        p.client.resetAndDestroy();
        n++;
      }
      return n;
    },
    close() {
      for (const p of pairs) { p.client.destroy(); p.up.destroy(); }
      server.close();
    },
  };
}

// D. History on open (the history issue): what another client saw is
// replayed, a query in it is not answered, the loss where the console was
// reopened is marked; then the download.
async function history(page) {
  const label = 'history';
  const u = unixClient();
  let prompt = false;
  for (let i = 0; i < 40 && !prompt && !u.err; i++) {
    u.s.write('\r');
    prompt = await until(() => u.buf.includes('# '), 700);
  }
  if (!ok(prompt, `${label}: a raw client of the guest's unix socket gets the shell prompt`,
    `error: ${u.err}; got: ${JSON.stringify(u.buf.slice(-300))}`)) { u.s.destroy(); return; }
  // The output holds MARK-42 and a cursor position request, ESC[6n,
  // which the raw client does not answer.
  u.buf = '';
  u.s.write("printf 'MARK-%s\\033[6n\\n' $((6*7))\r");
  // (busybox's line editing asks ESC[6n after each prompt itself)
  const printed = await until(() => u.buf.includes('MARK-42\x1b[6n') && /# (\x1b\[6n)?$/.test(u.buf), 10000);
  ok(printed, `${label}: it prints MARK-42 and ESC[6n on the console, then leaves`,
    `got: ${JSON.stringify(u.buf.slice(-300))}`);
  u.s.destroy();
  if (!await attach(page, `${label}: the page opens the console afterwards`)) return;
  const t = await until(async () => {
    const x = await bufText(page);
    return x.includes('MARK-42') ? x : null;
  }, 10000);
  ok(t, `${label}: MARK-42, printed before the page opened, is in the terminal (tail= replay)`,
    `terminal: ${JSON.stringify((await bufText(page)).slice(-600))}`);
  const gapMark = '[virtconsoled: output lost here]';
  const t2 = await until(async () => {
    const x = await bufText(page);
    return x.lastIndexOf(gapMark) > x.lastIndexOf('MARK-42') && x.includes('MARK-42') ? x : null;
  }, 10000);
  ok(t2, `${label}: after it, the marker '${gapMark}' (the console was reopened for the page: an unknown gap)`,
    `terminal: ${JSON.stringify((await bufText(page)).slice(-600))}`);
  const st = await until(async () => {
    const v = await vstate(page);
    return v.replaying === false ? v : null;
  }, 5000);
  ok(st && st.dropped >= 1 && st.rule === 'history',
    `${label}: replay over where the history route said it ended (rule ${st && st.rule}), the page dropped xterm.js's answer to the replayed ESC[6n (${st && st.dropped} dropped)`,
    `state: ${JSON.stringify(await vstate(page))}`);
  // Anything sent would reach the guest within this second.
  await sleep(1000);
  // The page's sessions only (the unix client's end may be logged late).
  const pageEnded = () => endedLines().filter((l) => / peer=127\.0\.0\.1:\d+ /.test(l));
  const ended0 = pageEnded().length;
  await page.click('#disconnect');
  const ended = await until(() => pageEnded().length > ended0 ? pageEnded() : null, 10000);
  const last = ended ? ended[ended.length - 1] : '';
  ok(/ peer=127\.0\.0\.1:\d+ .* bytes_in=0 /.test(last),
    `${label}: Disconnect: the daemon logs the page's session with bytes_in=0 (nothing was typed into the guest)`,
    `last ended line: ${last}`);

  // Download history: the daemon's bytes, under its file name.
  const run = (await vstate(page)).run;
  let dl = null;
  try {
    [dl] = await Promise.all([
      page.waitForEvent('download', { timeout: 20000 }),
      page.click('#download'),
    ]);
  } catch (e) {
    diag(`download: ${e.message.split('\n')[0]}`);
  }
  const file = dl ? await dl.path().catch(() => null) : null;
  const body = file ? fs.readFileSync(file).toString('latin1') : '';
  const name = dl ? dl.suggestedFilename() : '';
  ok(dl && new RegExp(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}-serial0-${run}\\.log$`).test(name),
    `${label}: Download history saves a file named UUID-serial0-RUN.log, RUN the page's run ${run} (${name})`);
  ok(body.includes('MARK-42\x1b[6n\r\n') && body.includes('echo hi-$((6*7))') && body.includes('hi-42\r\n') &&
    body.includes(gapMark),
    `${label}: it holds the console's raw bytes (MARK-42 ESC[6n, the first visit's echo hi-42) and the loss markers (${body.length} bytes)`,
    `file: ${JSON.stringify(body.slice(-400))}`);
}

// E. A network cut while the guest prints numbered lines: the page
// reconnects by itself (from=, resume=) and every line is there once.
// Under capture = always: under attached, the daemon closes the console
// between the old session and the resumed one (docs/WEB.md), and what the
// guest prints meanwhile is lost, an unknown gap.
async function networkCut(page) {
  const label = 'network cut';
  const port = Number(new URL(URL0).port);
  const n0 = logLines(/: configuration reloaded$/);
  const conf = fs.readFileSync(CONF, 'utf8').replace(/^capture *=.*\n/m, '');
  fs.writeFileSync(CONF, conf + 'capture = always\n');
  process.kill(PID, 'SIGHUP');
  const reloaded = await until(() => logLines(/: configuration reloaded$/) > n0, 10000);
  if (!ok(reloaded, `${label}: 'capture = always' added to the configuration, SIGHUP: the daemon reloaded`)) return;
  const proxy = await startProxy(port);
  try {
    await page.goto(proxy.url, { waitUntil: 'load' });
    if (!await attach(page, `${label}: the page through a TCP proxy`)) return;
    if (!ok(await waitPrompt(page, 40000), `${label}: the shell prompt appears`,
      `terminal: ${JSON.stringify((await bufText(page)).slice(-600))}`)) return;
    const N = 200;
    await page.keyboard.type(`for i in $(seq 1 ${N}); do echo N$i; sleep 0.02; done; echo DONE-$((6*7))`);
    await page.keyboard.press('Enter');
    const nums = (x) => (x.match(/^N\d+$/mg) || []).map((l) => Number(l.slice(1)));
    const seen = await until(async () => nums(await bufText(page)).includes(40), 20000, 50);
    const before = nums(await bufText(page));
    const n = seen ? proxy.cut() : 0;
    ok(seen && n === 1 && before.length < N,
      `${label}: at line ${before.length} of ${N} the proxy resets the page's WebSocket (${n} cut)`);
    const st = await until(async () => {
      const s = await statusText(page);
      return /reconnecting in \d+ s/.test(s) ? s : null;
    }, 5000, 20);
    ok(st, `${label}: the status says so (${st})`, `status: ${await statusText(page)}`);
    const done = await until(async () => (await bufText(page)).includes('DONE-42'), 40000);
    const att = await until(async () => (await statusText(page)) === 'attached', 5000);
    ok(done && att && proxy.wsCount() === 2,
      `${label}: the page reconnected by itself (${proxy.wsCount()} WebSocket connections) and the loop finished (DONE-42)`,
      `status: ${await statusText(page)}`);
    const text = await bufText(page);
    diag(`${label}: the page after the reconnect: ${JSON.stringify(await vstate(page))}`);
    const got = nums(text);
    const want = Array.from({ length: N }, (_, i) => i + 1);
    const bad = got.findIndex((v, i) => v !== i + 1);
    ok(got.length === N && bad < 0,
      `${label}: the terminal holds N1..N${N}, each exactly once, in order (${got.length} lines)`,
      bad >= 0 ? `line ${bad + 1} is N${got[bad]}` : `got ${got.length} of ${want.length}`,
      `terminal: ${JSON.stringify(text.slice(-800))}`);
    const from1 = text.lastIndexOf('\nN1\n');
    const marks = from1 < 0 ? [] : text.slice(from1).split('\n').filter((l) => l.startsWith('[virtconsoled:'));
    ok(from1 >= 0 && marks.length === 0, `${label}: no marker line among them (capture = always: nothing lost)`,
      `markers: ${JSON.stringify(marks)}`);
    ok(logLines(new RegExp(`guest=${GUEST} dev=serial0: resumes session \\d+$`)) >= 1,
      `${label}: the daemon logged that the new session resumes the old one (resume=)`);

    // A query in live output is answered: the shell reads the answer.
    await page.keyboard.type("printf '\\033[6n'; read x; echo \"CPR-$((6*7))-${#x}\"");
    await page.keyboard.press('Enter');
    // The tty echoes the answer as ^[[ROW;COLR once it arrives.
    const echoed = await until(async () => /\^\[\[\d+;\d+R/.test(await bufText(page)), 5000);
    await page.keyboard.press('Enter');
    const m = await until(async () => /CPR-42-(\d+)/.exec(await bufText(page)), 10000);
    ok(echoed && m && Number(m[1]) >= 6,
      `${label}: live, 'printf ESC[6n; read x' gets xterm.js's answer (${m ? m[1] : '?'} bytes)`,
      `terminal: ${JSON.stringify((await bufText(page)).slice(-400))}`);
  } finally {
    proxy.close();
  }
  await page.goto(URL0, { waitUntil: 'load' });
}

// F. Watch (the viewers issue): a writer in one page, a viewer in a
// second page of the same browser.  The viewer shows the writer's output,
// sends nothing when the person types (the daemon's count of the viewer's
// input stays 0 and it never sends its notice), and says so once itself.
async function watch(page) {
  const label = 'watch';
  if (!await attach(page, `${label}: the writer page`)) return;
  if (!ok(await waitPrompt(page, 40000), `${label}: the writer's shell prompt appears`,
    `terminal: ${JSON.stringify((await bufText(page)).slice(-600))}`)) return;
  const roleText = (p) => p.evaluate(() => document.getElementById('role').textContent);
  const wrole = await until(async () => /^role: writer .*viewers: 0$/.test(await roleText(page)), 5000);
  ok(wrole, `${label}: the writer page shows its role and no viewers (${await roleText(page)})`);
  const viewer = await context.newPage();
  viewer.setDefaultTimeout(20000);
  viewer.on('pageerror', (e) => page_errors.push(`viewer: ${e}`));
  try {
    await viewer.goto(URL0, { waitUntil: 'load' });
    const wbtn = viewer.locator(`#guest-table button.watch[data-guest="${GUEST}"][data-alias="serial0"]`);
    if (!ok(await until(async () => (await wbtn.count()) === 1, 15000, 250),
      `${label}: the second page's guest list has a watch button beside ${GUEST} serial0`,
      `guest list: ${JSON.stringify(await guestsState(viewer))}`)) return;
    const n0 = logLines(new RegExp(`guest=${GUEST} dev=serial0: client peer=.* role=viewer`));
    const viewerEnded = () => endedLines().filter((x) => / role=viewer /.test(x));
    const ve0 = viewerEnded().length;
    await wbtn.click();
    const st = await until(async () => {
      const s = await statusText(viewer);
      return s === 'attached' || s.startsWith('disconnected') || s.startsWith('cannot') ? s : null;
    }, 15000);
    if (!ok(st === 'attached', `${label}: click watch -> status 'attached'`, `status: ${await statusText(viewer)}`))
      return;
    // The viewer must be attached before the writer's output is made.
    const vrole = await until(async () => {
      const t = await roleText(viewer);
      return /^role: viewer .*writer: yes .*viewers: 1$/.test(t) ? t : null;
    }, 10000);
    ok(vrole, `${label}: the watching page shows role viewer, writer: yes, viewers: 1 (${await roleText(viewer)})`);
    const wr1 = await until(async () => {
      const t = await roleText(page);
      return /^role: writer .*viewers: 1$/.test(t) ? t : null;
    }, 10000);
    ok(wr1, `${label}: the writer page shows viewers: 1 (${await roleText(page)})`);
    ok(logLines(new RegExp(`guest=${GUEST} dev=serial0: client peer=.* role=viewer`)) === n0 + 1,
      `${label}: the daemon logged one viewer session (mode=view)`);
    const vs = await vstate(viewer);
    ok(vs.view && vs.role === 'viewer',
      `${label}: the page knows it watches (${JSON.stringify({ view: vs.view, role: vs.role })})`);

    // The writer's command output reaches the viewer.
    await page.click('#terminal');
    await page.keyboard.type('echo watched-$((6*7))');
    await page.keyboard.press('Enter');
    const seen = await until(async () => (await bufText(viewer)).includes('watched-42'), 10000);
    ok(seen, `${label}: the watching page shows the writer's output (watched-42)`,
      `viewer terminal: ${JSON.stringify((await bufText(viewer)).slice(-600))}`);
    // Let the prompt's ESC[6n reach the viewer and be answered there: an
    // answer is not typing, and must not bring the indication.
    await until(async () => /watched-42\n.*#/.test(await bufText(viewer)), 5000);
    const localMark = `[virtconsoled: view only: input is not sent to the guest]`;
    const daemonNotice = '[virtconsoled] view only: input is not sent to the guest';
    ok(!(await bufText(viewer)).includes(localMark),
      `${label}: before anyone types, the watching page says nothing about input`);

    // Typing into the viewer: nothing is sent, the page says so once.
    await viewer.click('#terminal');
    await viewer.keyboard.type('touch /tmp/watch-wrote');
    await viewer.keyboard.press('Enter');
    const told = await until(async () => (await bufText(viewer)).includes(localMark), 5000);
    await viewer.keyboard.type('echo more');
    await viewer.keyboard.press('Enter');
    const vs2 = await vstate(viewer);
    const vtext = await bufText(viewer);
    ok(told && vtext.split(localMark).length === 2,
      `${label}: the watching page says once '${localMark}' (${vtext.split(localMark).length - 1} times)`,
      `viewer terminal: ${JSON.stringify(vtext.slice(-600))}`);
    ok(vs2.ignored >= 2, `${label}: the page kept the keystrokes to itself (${vs2.ignored} inputs not sent)`);

    // The writer: the viewer's command never ran.
    await page.click('#terminal');
    await page.keyboard.type('ls /tmp/watch-wrote; echo ls-status-$?');
    await page.keyboard.press('Enter');
    const m = await until(async () => /ls-status-(\d+)/.exec(await bufText(page)), 10000);
    const wtext = await bufText(page);
    ok(m && m[1] !== '0' && /No such file/.test(wtext) && !/touch \/tmp\/watch-wrote/.test(wtext),
      `${label}: the writer's 'ls /tmp/watch-wrote' says No such file (status ${m && m[1]}): the viewer's command never ran`,
      `writer terminal: ${JSON.stringify(wtext.slice(-600))}`);
    const seen2 = await until(async () => /ls-status-\d+/.test(await bufText(viewer)), 10000);
    ok(seen2 && !(await bufText(viewer)).includes(daemonNotice),
      `${label}: the viewer sees that too, and never got the daemon's notice (it was sent no input)`);

    // Reconnect keeps watching (mode=view, the viewer's resume id).
    await viewer.click('#reconnect');
    const again = await until(async () => (await statusText(viewer)) === 'attached' &&
      /^role: viewer .*viewers: 1$/.test(await roleText(viewer)) && viewerEnded().length === ve0 + 1, 15000);
    ok(again && (await vstate(viewer)).view,
      `${label}: the watching page's Reconnect attaches again as a viewer (${await roleText(viewer)})`,
      `status: ${await statusText(viewer)}`);

    // The daemon's word for it: the viewer's sessions took no input.
    await viewer.click('#disconnect');
    const ended = await until(() => viewerEnded().length === ve0 + 2 ? viewerEnded().slice(ve0) : null, 10000);
    ok(ended && ended.every((l) => / bytes_in=0 .* bytes_ignored=0$/.test(l)),
      `${label}: Disconnect: the daemon logs both viewer sessions (before and after Reconnect) with bytes_in=0 and bytes_ignored=0`,
      `ended lines: ${JSON.stringify(ended || viewerEnded().slice(ve0))}`);
    const wr0 = await until(async () => /^role: writer .*viewers: 0$/.test(await roleText(page)), 10000);
    ok(wr0, `${label}: the writer page is back to viewers: 0 (${await roleText(page)})`);
  } finally {
    await viewer.close().catch(() => {});
  }
  await page.click('#disconnect');
  await until(async () => (await statusText(page)).startsWith('disconnected'), 10000);
}

// B. Without a session the page says why the console cannot be opened.
async function cannotOpen(page) {
  const label = 'no session cookie';
  const btn = consoleButton(page);
  if (!ok(await listShown(page, 15000), `${label}: signed in, the guest list shows ${GUEST} serial0`,
    `guest list: ${JSON.stringify(await guestsState(page))}`)) return;
  await context.clearCookies();
  ok(!(await sessionCookie()), `${label}: context.clearCookies() removed the vcd_session cookie`);
  // A synthetic click: the list's 5 s refresh may meet the 401 and hide
  // the table before a pointer click lands; the button's handler is the same.
  await btn.dispatchEvent('click');
  const notice = '[virtconsoled] cannot open the console: ';
  await until(async () => (await statusText(page)).startsWith('cannot open: ') &&
    (await termText(page)).includes(notice), 15000);
  const st = await statusText(page);
  const tt = await termText(page);
  ok(st.startsWith('cannot open: ') && tt.includes(notice),
    `${label}: click ${GUEST} serial0 -> status 'cannot open: ...' and '${notice.trim()}' in the terminal`,
    `status: ${st}; terminal: ${JSON.stringify(tt.slice(-400))}`);
  const why = st.slice('cannot open: '.length);
  // A long line wraps over rows: compare without the row breaks.
  const flat = tt.replace(/\n/g, '');
  ok(/^401 Unauthorized: no token or session cookie$/.test(why) && flat.includes(notice + why),
    `${label}: the reason is the daemon's 401 answer (${why}), the same in the status and the terminal`,
    `status: ${st}; terminal: ${JSON.stringify(tt.slice(-400))}`);
  ok(tt.trim() !== '', `${label}: the terminal is not blank`);
}

// C. Sign out: the session is revoked, the cookie cleared, back to the page.
async function signOut(page) {
  const label = 'Sign out';
  if (!await signIn(page, TOKEN4, 'T4', label)) return;
  const before = await sessionCookie();
  const href = await page.getAttribute('#logout', 'href');
  ok(href === 'logout', `${label}: the page has a Sign out link (#logout, href '${href}')`);
  const [resp] = await Promise.all([
    page.waitForNavigation({ waitUntil: 'load' }),
    page.click('#logout'),
  ]);
  const chain = chainOf(resp);
  ok(resp && resp.status() === 200 && page.url() === URL0 && chain.length === 2 && chain[0] === `${URL0}logout`,
    `${label}: click -> GET logout redirects to ${page.url()}, the page loads (${resp && resp.status()})`,
    `requests: ${chain.join(' -> ')}`);
  const gone = await until(async () => {
    const gs = await guestsState(page);
    return gs.empty.startsWith('Not signed in') && gs.tableHidden;
  }, 10000);
  ok(gone, `${label}: the guest list says 'Not signed in' and the table is hidden`,
    `guest list: ${JSON.stringify(await guestsState(page))}`);
  ok(!(await sessionCookie()), `${label}: the browser no longer holds the vcd_session cookie`,
    JSON.stringify((await context.cookies()).map((c) => ({ ...c, value: '...' }))));
  // The old cookie is dead in the daemon too, not just dropped here.
  if (before) {
    await context.addCookies([before]);
    const [status, text] = await page.evaluate(async () => {
      const r = await fetch('api/guests', { credentials: 'same-origin' });
      return [r.status, await r.text()];
    });
    ok(status === 401 && /session revoked/.test(text),
      `${label}: the signed-out cookie, put back, is refused (${status} ${text.trim()})`);
    await context.clearCookies();
  }
}

// A. Another site: its image, frame and script cannot spend a token; its
// link to the page signs the person in.
async function crossSite(page) {
  const label = 'cross-site';
  await context.clearCookies();
  const t2 = [];
  const onResp = (r) => {
    if (r.url().includes(encodeURIComponent(TOKEN2)) || r.url().includes(TOKEN2))
      t2.push(`${r.request().resourceType()} ${r.status()}`);
  };
  // What each of those requests says it is (the daemon's rule reads it).
  const t2req = [];
  const onReq2 = async (r) => {
    if (!r.url().includes(TOKEN2)) return;
    const h = await r.allHeaders().catch(() => ({}));
    // playwright may know only the provisional headers of a no-cors
    // subresource: no Sec-Fetch-* there does not mean none were sent.
    t2req.push(h['sec-fetch-mode'] ? `${r.resourceType()}: Sec-Fetch-Site ${h['sec-fetch-site']}, ` +
      `Mode ${h['sec-fetch-mode']}, Dest ${h['sec-fetch-dest']}` : `${r.resourceType()} (headers not reported)`);
  };
  page.on('response', onResp);
  page.on('request', onReq2);
  const n0 = loginLines();
  const r0 = notPageLines();
  const resp = await page.goto(MGMT_URL, { waitUntil: 'load' });
  ok(resp && resp.status() === 200, `${label}: the management page loads from ${MGMT_URL} (${resp && resp.status()})`);
  const ev = await until(async () => {
    const m = await page.evaluate(() => window.__mgmt);
    return m && m.img && m.frame && m.script ? m : null;
  }, 10000);
  ok(ev, `${label}: its <img>, <iframe> and <script> of ${URL0}?token=T2 are done (${JSON.stringify(ev)})`,
    `events: ${JSON.stringify(await page.evaluate(() => window.__mgmt))}`);
  page.off('response', onResp);
  page.off('request', onReq2);
  for (const x of t2req) diag(`${label}: request of ?token=T2 by the ${x}`);
  // playwright does not report every subresource response (ORB): the
  // daemon's log counts them.
  ok(t2.every((x) => / 403$/.test(x)),
    `${label}: what the browser reports of the daemon's answers is 403 (${t2.join(', ') || 'none'})`);
  const r1 = await until(() => notPageLines() - r0 >= 3 ? notPageLines() : null, 5000);
  ok(r0 >= 0 && r1 && r1 - r0 >= 3,
    `${label}: the daemon refused all three, 403 'a token link must be opened as a page' (${(r1 || notPageLines()) - r0} logged)`);
  const n1 = loginLines();
  ok(n0 >= 0 && n1 === n0, `${label}: the daemon logged no login meanwhile (${n0} login lines before, ${n1} after)`);
  ok(!(await sessionCookie()), `${label}: the browser holds no vcd_session cookie from them`);
  // T2 was not spent: it still signs in.
  if (await signIn(page, TOKEN2, 'T2', `${label}: T2 opened directly afterwards (so it was not spent)`)) {
    ok(loginLines() === n1 + 1, `${label}: and only now the daemon logs a login (${loginLines() - n1} new)`);
  }

  // The management page's link, followed by a person: signed in.
  await context.clearCookies();
  await page.goto(MGMT_URL, { waitUntil: 'load' });
  let guestsReq = null;
  const onReq = async (r) => {
    if (guestsReq || !r.url().startsWith(`${URL0}api/guests`)) return;
    guestsReq = 'pending';
    const h = await r.allHeaders().catch(() => ({}));
    guestsReq = `Cookie: ${h.cookie ? 'vcd_session=...' : '(none)'}, Sec-Fetch-Site: ${h['sec-fetch-site'] ?? '(none)'}`;
  };
  page.on('request', onReq);
  const [r3] = await Promise.all([
    page.waitForNavigation({ waitUntil: 'load' }),
    page.click('#open'),
  ]);
  const chain = chainOf(r3);
  ok(r3 && r3.status() === 200 && page.url() === URL0 && chain.length === 2 && chain[0] === `${URL0}?token=T3`,
    `${label}: clicking the link to /?token=T3 lands on ${page.url()} (no token in the address bar)`,
    `requests: ${chain.join(' -> ')}; status ${r3 && r3.status()}`);
  const ck = await sessionCookie();
  ok(ck && ck.sameSite === 'Strict', `${label}: the browser holds the vcd_session cookie (SameSite=${ck && ck.sameSite}) set on that cross-site navigation`);
  const shown = await listShown(page, 15000);
  page.off('request', onReq);
  diag(`${label}: the page's first GET api/guests after the link: ${guestsReq ?? '(not seen)'}`);
  ok(shown, `${label}: the page is signed in: the guest list shows ${GUEST}`,
    `guest list: ${JSON.stringify(await guestsState(page))}`);
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
    if (r.status() >= 400) bad_responses.push([scrub(r.url()), r.status()]);
  });
  await page.addInitScript(() => {
    window.__csp = [];
    document.addEventListener('securitypolicyviolation', (e) =>
      window.__csp.push(`${e.violatedDirective} ${e.blockedURI}`));
  });

  // 1. Sign in with the token: a cookie, and the token leaves the URL.
  const resp = await page.goto(`${URL0}?token=${encodeURIComponent(TOKEN)}`, { waitUntil: 'load' });
  const chain = [];
  for (let r = resp?.request(); r; r = r.redirectedFrom()) chain.unshift(scrub(r.url()));
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
  mark('first visit done');

  // 3. Reload: the cookie keeps the session.
  await page.reload({ waitUntil: 'load' });
  ok(true, 'page reloaded');
  if (await attach(page, 'after reload')) await echo(page, 'after reload', 'again');
  mark('after reload done');

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
  mark('Reconnect, escape key done');

  await history(page);
  mark('history done');
  await networkCut(page);
  mark('network cut done');
  await watch(page);
  mark('watch done');
  await cannotOpen(page);
  mark('no session cookie done');
  await signOut(page);
  mark('Sign out done');
  await crossSite(page);
  mark('cross-site done');

  ok(page_errors.length === 0, `no uncaught errors in the page (${page_errors.length})`, ...page_errors);
  for (const [url, status] of bad_responses) diag(`HTTP ${status} for ${url}`);
} catch (e) {
  ok(false, `unexpected: ${e && e.message ? e.message.split('\n')[0] : e}`, e && e.stack);
} finally {
  for (const [ty, tx] of console_msgs) diag(`console ${ty}: ${scrub(tx)}`);
  await context.close().catch(() => {});
  mgmt.close();
}
diag(`browser part: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
finish();
