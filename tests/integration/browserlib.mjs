// What the browser tests (browser.mjs for t-browser.sh, browser-nginx.mjs
// for t-nginx.py) share: their environment, "ok - "/"not ok - " lines and
// "# " diagnostics (numbered into TAP by their callers), waits, and
// Debian's chromium through playwright-core from the build's
// web-npm/node_modules, never a downloaded browser.
import { createRequire } from 'node:module';
import path from 'node:path';

// A variable the caller must set; without it the test cannot start.
export function env(name) {
  const v = process.env[name];
  if (!v) { console.log(`not ok - ${name} is not set`); process.exit(1); }
  return v;
}

let failed = 0;

export function diag(msg) {
  for (const line of String(msg ?? '').split('\n')) console.log(`# ${line}`);
}

export function ok(cond, desc, ...diags) {
  console.log(`${cond ? 'ok' : 'not ok'} - ${desc}`);
  if (!cond) {
    failed++;
    for (const d of diags) diag(d);
  }
  return !!cond;
}

// The exit status: 0 when every check passed.
export function finish() {
  process.exit(failed ? 1 : 0);
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Where the time goes (the machine is shared): "# [12.3 s] what".
const T_START = Date.now();
export const mark = (what) =>
  diag(`[${((Date.now() - T_START) / 1000).toFixed(1)} s] ${what}`);

// Poll fn() until it is truthy or ms pass; its last value.
export async function until(fn, ms, every = 100) {
  const end = Date.now() + ms;
  for (;;) {
    let v;
    try { v = await fn(); } catch (e) { v = null; }
    if (v || Date.now() >= end) return v;
    await sleep(every);
  }
}

// playwright-core's chromium, from the build directory's npm install.
export function playwrightChromium(build) {
  const require = createRequire(import.meta.url);
  return require(path.join(build, 'web-npm', 'node_modules',
    'playwright-core')).chromium;
}
