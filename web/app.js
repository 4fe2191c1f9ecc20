/*
 * The virtconsoled page: a guest list from api/guests and a terminal on
 * xterm.js bound to console/GUEST/ALIAS over a WebSocket that speaks the
 * virtconsole.v1 subprotocol (docs/WEB.md, "The page").  All URLs are
 * relative, so the page works under a sub-path behind a reverse proxy and
 * over HTTPS.  The session cookie (set when the page was opened with
 * ?token=) authenticates everything; nothing here handles the token.
 *
 * Opening a console asks for the last TAIL bytes of history, then live
 * output.  The page tracks the run and offset of the next byte, so that
 * after a network cut it reconnects by itself with from=RUN:OFFSET and
 * resume=ID: nothing lost, nothing twice.  xterm.js's answers to terminal
 * queries (ESC[6n, ESC[c, ...) found in replayed bytes are dropped: they
 * would type into the guest long after the query was asked.
 *
 * "watch" opens a console with mode=view: a viewer beside its writer.
 * Its terminal sends nothing at all (no input, no answers, no resize),
 * and says once, here, that typing is not sent; the role and who is
 * attached come from the hello and clients messages.
 */
'use strict';

(function () {
  const $ = (id) => document.getElementById(id);
  const statusEl = $('status');
  const titleEl = $('title');
  const term = new Terminal({ convertEol: false, cursorBlink: true,
    scrollback: 5000, fontSize: 14 });
  const fit = new FitAddon.FitAddon();

  const TAIL = 65536;          // history asked for on open (tail=)
  const QUIET_MS = 200;        // replay ends after this long quiet (fallback)
  const RETRY_CODES = [1006, 1001, 1011];  // closes worth a reconnect
  const BACKOFF_MIN = 1000;    // ms, doubling ...
  const BACKOFF_MAX = 30000;   // ... up to this
  const JITTER = 0.3;          // +-30 %
  const STABLE_MS = 10000;     // a connection this old resets the backoff
  const HISTORY_PAGE = 1048576;        // max= per history request
  const HISTORY_MAX = 8 * 1048576;     // a download stops here
  const MARK_ON = '\x1b[0;2;7m';       // dim inverse: the page's own lines
  const MARK_OFF = '\x1b[0m';
  const VIEW_ONLY = 'view only: input is not sent to the guest';

  let conn = null;      // the live connection (see connect())
  let current = null;   // { name, alias, view }: the console shown
  let pos = null;       // { run, offset }: the next byte's position
  let resumeId = null;  // the last hello's resume id
  let retry = null;     // { n, timer, tick, at }: a reconnect is planned
  let failures = 0;     // reconnect attempts since the last stable one
  let dropped = 0;      // automatic answers to replayed queries dropped
  let ignored = 0;      // a viewer's input not sent (typed or answers)
  let toldView = false; // the viewer was told its typing is not sent
  let credRole = null;  // the credential's role, from api/guests

  term.loadAddon(fit);
  term.open($('terminal'));
  fit.fit();
  window.addEventListener('resize', () => fit.fit());

  function setStatus(text, cls) {
    statusEl.textContent = text;
    statusEl.className = cls || '';
  }

  function base() {
    // The directory of this page: works under any sub-path.
    return location.pathname.replace(/[^/]*$/, '');
  }

  function consolePath(name, alias) {
    return encodeURIComponent(name) +
      (alias ? '/' + encodeURIComponent(alias) : '');
  }

  // The console's hypervisor (a name may be on several): sep is ? or &.
  function hvQuery(cur, sep) {
    return cur.hv ? sep + 'hv=' + encodeURIComponent(cur.hv) : '';
  }

  /*
   * Writing to the terminal, and what xterm.js says while it parses.
   *
   * xterm.js answers queries (cursor position, device attributes, ...)
   * through onData, synchronously while it parses the bytes that hold
   * them; typing reaches onData from a DOM event.  Every write goes
   * through write() with a callback, which xterm.js calls right after
   * parsing that chunk, in the same task.  onData output is held until
   * the end of the current task (a microtask): if a write callback comes
   * first, the output was made while parsing that chunk, and it is
   * dropped when the chunk is replayed history; otherwise (typing, or an
   * answer to live output) it is sent.
   */
  let held = [];
  let heldFlush = false;

  function viewing() {
    return !!(current && current.view);
  }

  /*
   * typed: from the keyboard, not xterm.js answering a query.  A viewer
   * sends nothing (the daemon would drop it and say so); the person who
   * types is told once, by the page itself.
   */
  function sendInput(d, typed) {
    if (!conn || conn.sock.readyState !== 1) return;
    if (viewing()) {
      ignored++;
      if (typed && !toldView) {
        toldView = true;
        mark(VIEW_ONLY);
      }
      return;
    }
    if (typeof d === 'string') {
      // Typed input: binary frames of UTF-8 (text frames are JSON
      // messages under virtconsole.v1).
      conn.sock.send(new TextEncoder().encode(d));
    } else {
      conn.sock.send(d);
    }
  }

  function hold(d) {
    held.push(d);
    if (heldFlush) return;
    heldFlush = true;
    queueMicrotask(() => {
      heldFlush = false;
      const h = held;
      held = [];
      h.forEach((d) => sendInput(d, true));
    });
  }

  function write(data, replay, cb) {
    term.write(data, () => {
      if (held.length) {
        const h = held;
        held = [];
        if (replay) dropped += h.length;
        else h.forEach((d) => sendInput(d, false));
      }
      if (cb) cb();
    });
  }

  term.onData((d) => hold(d));
  term.onBinary((d) => {
    const b = new Uint8Array(d.length);
    for (let i = 0; i < d.length; i++) b[i] = d.charCodeAt(i) & 0xff;
    hold(b);
  });

  // A line of the page's own, in the terminal, set apart from the guest's.
  function mark(text) {
    write('\r\n' + MARK_ON + '[virtconsoled: ' + text + ']' + MARK_OFF +
      '\r\n', false);
  }

  // A viewer's size is not the console's: only a writer's is recorded.
  function sendResize() {
    if (conn && conn.sock.readyState === 1 && conn.v1 && !viewing())
      conn.sock.send(JSON.stringify({ type: 'resize', cols: term.cols,
        rows: term.rows }));
  }
  term.onResize(sendResize);

  function cancelRetry() {
    if (!retry) return;
    clearTimeout(retry.timer);
    clearInterval(retry.tick);
    retry = null;
  }

  function stopConn() {
    cancelRetry();
    showRole(null);
    if (conn) {
      const c = conn;
      conn = null;
      clearTimeout(c.quiet);
      c.sock.onclose = null;
      c.sock.onmessage = null;
      if (c.sock.readyState <= 1) c.sock.close(1000, 'closed by the user');
    }
  }

  /*
   * While attached: the role hello gave and the clients messages'
   * counts; empty otherwise.
   */
  function showRole(c) {
    const el = $('role');
    if (!c || !c.role) {
      el.textContent = '';
      el.className = '';
      return;
    }
    let t = 'role: ' + c.role;
    if (c.clients) {
      t += ' \u00b7 writer: ' + (c.clients.writer ? 'yes' : 'no') +
        ' \u00b7 viewers: ' + c.clients.viewers;
    }
    el.textContent = t;
    el.className = c.role;
  }

  /*
   * Open the console afresh: a clean terminal, the last TAIL bytes.
   * view: watch it (mode=view) rather than write.
   */
  function open(name, alias, view, hv) {
    stopConn();
    current = { name: name, alias: alias, view: !!view, hv: hv || null };
    pos = null;
    resumeId = null;
    failures = 0;
    toldView = false;
    titleEl.textContent = name + (alias ? ' / ' + alias : '') +
      (view ? ' (watching)' : '');
    term.reset();
    $('download').disabled = false;
    connect(false);
  }

  /*
   * One connection.  again: a reconnect (from= the next byte, resume=
   * the last hello's id) rather than an open.
   */
  function connect(again) {
    const cur = current;
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    let q;
    if (pos) {
      q = '?from=' + encodeURIComponent(pos.run + ':' + pos.offset);
    } else {
      q = '?tail=' + TAIL;
    }
    if (resumeId) q += '&resume=' + encodeURIComponent(resumeId);
    // A viewer's resume id is matched against that console's viewers.
    if (cur.view) q += '&mode=view';
    q += hvQuery(cur, '&');
    const url = scheme + '//' + location.host + base() + 'console/' +
      consolePath(cur.name, cur.alias) + q;
    setStatus(again ? 'reconnecting' : 'connecting', 'connecting');
    const sock = new WebSocket(url, ['virtconsole.v1']);
    sock.binaryType = 'arraybuffer';
    const c = {
      sock: sock,
      again: again,
      opened: false,
      openedAt: 0,
      v1: false,
      replaying: false,
      replayEnd: null,   // { run, offset }: live from here (liveEnd())
      quiet: null,       // the quiet timer (when liveEnd() cannot tell)
      quietRule: false,  // liveEnd() could not tell: the quiet rule
      pastRun: false,    // a run began after replayEnd's run
      rule: null,        // how replay ends: history, quiet or none
      parsing: 0,        // replayed chunks not yet parsed
      end: null,         // the end message
      role: null,        // hello's
      clients: null,     // the last clients message: { writer, viewers }
    };
    conn = c;
    sock.onopen = () => {
      c.opened = true;
      c.openedAt = Date.now();
      c.v1 = sock.protocol === 'virtconsole.v1';
      setStatus('attached', 'attached');
      $('reconnect').disabled = false;
      $('disconnect').disabled = false;
      sendResize();
      term.focus();
    };
    sock.onmessage = (ev) => {
      if (conn !== c) return;
      if (typeof ev.data === 'string') message(c, ev.data);
      else bytes(c, new Uint8Array(ev.data));
    };
    sock.onclose = (ev) => closed(c, ev);
  }

  /*
   * The replay rule (docs/WEB.md, "The page").  The daemon does not say
   * where its history ends and live output begins, so once hello came
   * the page asks: HEAD api/history from hello's position, following
   * gaps and runs, until an empty answer, whose offset E is where the
   * history ended at that moment, after hello.  Every byte before E was
   * printed before the page asked (replay); every byte from E on was
   * printed after (live).  Until the answer comes, bytes count as
   * replay; bytes between the real switch and E are live ones counted
   * as replay (their answers dropped), never the other way round.
   * When the route cannot tell (a network error, another status), the
   * fallback is the quiet rule: replay until the connection has been
   * quiet for QUIET_MS after xterm.js parsed all it got (the daemon
   * sends history back to back).  Without the history claim (403) or
   * with nothing kept (404) the daemon replays nothing.
   */
  async function liveEnd(c, at) {
    const cur = current;
    const path = base() + 'api/history/' + consolePath(cur.name, cur.alias);
    let from = at.run + ':' + at.offset;
    try {
      for (let i = 0; i < 64; i++) {
        const r = await fetch(path + '?max=' + HISTORY_PAGE + '&from=' +
          encodeURIComponent(from) + hvQuery(cur, '&'), { method: 'HEAD',
          credentials: 'same-origin' });
        // 403: no history claim; 404: nothing kept: no replay at all.
        if (r.status === 403 || r.status === 404) return 'none';
        if (!r.ok) return null;
        const run = r.headers.get('X-Virtconsole-Run');
        const off = r.headers.get('X-Virtconsole-Offset');
        const next = r.headers.get('X-Virtconsole-Next');
        const nextRun = r.headers.get('X-Virtconsole-Next-Run');
        if (nextRun) {
          from = nextRun + ':0';
        } else if (!r.headers.get('X-Virtconsole-Gap') &&
            parseInt(next, 10) === Number(off)) {
          // Empty, no loss, no next run: the end (Next may carry the
          // ":1" of a loss told just before it).
          return { run: run, offset: Number(off) };
        } else {
          from = run + ':' + next;
        }
      }
    } catch (e) {
      return null;
    }
    return null;
  }

  // Whether the next byte is live, by the end liveEnd() found.
  function pastEnd(c) {
    return c.replayEnd !== null && pos !== null && (c.pastRun ||
      (pos.run === c.replayEnd.run && pos.offset >= c.replayEnd.offset));
  }

  function quietLater(c) {
    clearTimeout(c.quiet);
    c.quiet = null;
    if (!c.replaying || c.parsing > 0 || !c.quietRule) return;
    c.quiet = setTimeout(() => {
      c.quiet = null;
      c.replaying = false;
    }, QUIET_MS);
  }

  function bytes(c, b) {
    const replay = c.replaying;
    if (pos) pos.offset += b.length;
    // replaying says what the next byte is.
    if (c.replaying && pastEnd(c)) c.replaying = false;
    if (!replay) {
      write(b, false);
      return;
    }
    c.parsing++;
    clearTimeout(c.quiet);
    write(b, true, () => {
      c.parsing--;
      if (conn === c) quietLater(c);
    });
  }

  function message(c, text) {
    let m;
    try {
      m = JSON.parse(text);
    } catch (e) {
      return;
    }
    if (!m || typeof m !== 'object') return;
    if (c.replaying) quietLater(c);
    switch (m.type) {
    case 'hello':
      pos = { run: String(m.run), offset: Number(m.offset) };
      resumeId = m.resume;
      c.role = String(m.role || 'writer');
      showRole(c);
      c.replaying = true;
      liveEnd(c, pos).then((end) => {
        if (end === 'none') {
          c.rule = 'none';
          c.replaying = false;
        } else if (end === null) {
          c.rule = 'quiet';
          c.quietRule = true;
          quietLater(c);
        } else {
          c.rule = 'history';
          c.replayEnd = end;
          if (pastEnd(c)) c.replaying = false;
        }
      });
      break;
    case 'gap':
      if (pos) pos.offset = Number(m.to);
      if (c.replaying && pastEnd(c)) c.replaying = false;
      if (m.unknown) mark('output lost here');
      else mark((Number(m.to) - Number(m.from)) + ' bytes not kept');
      break;
    case 'run':
      if (c.replayEnd && pos && pos.run === c.replayEnd.run)
        c.pastRun = true;
      pos = { run: String(m.run), offset: 0 };
      if (c.replaying && pastEnd(c)) c.replaying = false;
      mark('the guest started again');
      break;
    case 'end':
      c.end = m;
      write('\r\n[virtconsoled] ' + m.kind + ': ' + m.reason + '\r\n', false);
      break;
    case 'notice':
      write('\r\n[virtconsoled] ' + m.text + '\r\n', false);
      break;
    case 'clients':
      c.clients = { writer: !!m.writer, viewers: Number(m.viewers) || 0 };
      showRole(c);
      break;
    default:
      break;  // types to come
    }
  }

  function closed(c, ev) {
    if (conn !== c) return;
    conn = null;
    clearTimeout(c.quiet);
    showRole(null);
    const code = ev.code;
    const why = (c.end && c.end.reason) || ev.reason ||
      (code === 1006 ? 'connection lost' : 'closed (' + code + ')');
    const lived = c.opened ? Date.now() - c.openedAt : 0;
    if (lived >= STABLE_MS) failures = 0;
    if (RETRY_CODES.indexOf(code) >= 0 && pos && resumeId &&
        (c.opened || c.again)) {
      // A cut (or a restart) after the console was open: go on from the
      // next byte.  A refusal before the upgrade is asked about first.
      if (c.opened) plan(why);
      else check(why);
      return;
    }
    $('disconnect').disabled = true;
    // term.write() only queues: the status changes once what came before
    // is parsed and the frame that renders it has run (xterm.js renders
    // in an animation frame requested while parsing; ours is requested
    // after it), so the status never says "disconnected" above a terminal
    // that lacks the reason.
    write('', false, () => requestAnimationFrame(() => {
      if (conn === null && !retry) setStatus('disconnected: ' + why,
        'disconnected');
    }));
    // Refused before the upgrade: a browser tells the page nothing
    // (1006), so ask the daemon what opening the console meets.
    if (!c.opened) explain();
    refresh();
  }

  // Reconnect later: backoff with jitter, a countdown in the status line.
  function plan(why) {
    cancelRetry();
    const d = Math.min(BACKOFF_MAX, BACKOFF_MIN * Math.pow(2, failures)) *
      (1 - JITTER + 2 * JITTER * Math.random());
    failures++;
    const r = { at: Date.now() + d, timer: null, tick: null };
    retry = r;
    const show = () => {
      const s = Math.max(1, Math.ceil((r.at - Date.now()) / 1000));
      setStatus(why + ': reconnecting in ' + s + ' s\u2026', 'reconnecting');
    };
    show();
    r.tick = setInterval(show, 1000);
    r.timer = setTimeout(() => {
      if (retry !== r) return;
      cancelRetry();
      connect(true);
    }, d);
    $('disconnect').disabled = false;
  }

  /*
   * A reconnect refused before the upgrade: retry while the daemon is
   * unreachable or says the console can be opened; stop on an answer that
   * will not change by itself (signed out, no such console, not running).
   */
  function check(why) {
    const cur = current;
    fetch(base() + 'api/console/' + consolePath(cur.name, cur.alias) +
      hvQuery(cur, '?'), { credentials: 'same-origin' })
      .then((r) => r.text().then((t) => [r, t]))
      .then(([r, t]) => {
        if (current !== cur || conn) return;
        if (r.ok) {
          const st = JSON.parse(t);
          if (st.state === 'running') { plan(why); return; }
          stop('the guest is not running');
        } else if (r.status >= 500) {
          plan(why);
        } else {
          stop(t.trim() || (r.status + ' ' + r.statusText));
        }
      })
      .catch(() => { if (current === cur && !conn) plan(why); });
    function stop(reason) {
      write('\r\n[virtconsoled] cannot reconnect: ' + reason + '\r\n',
        false, () => requestAnimationFrame(() => {
          if (conn === null && !retry) setStatus('cannot reconnect: ' +
            reason, 'disconnected');
        }));
      $('disconnect').disabled = true;
    }
  }

  // Why a console could not be opened: the status line and the terminal
  // say it (a blank terminal tells nobody anything).
  function explain() {
    const cur = current;
    fetch(base() + 'api/console/' + consolePath(cur.name, cur.alias) +
      hvQuery(cur, '?'), { credentials: 'same-origin' })
      .then((r) => r.text().then((t) => [r, t]))
      .then(([r, t]) => {
        let why;
        if (r.ok) {
          const st = JSON.parse(t);
          why = st.state !== 'running' ? 'the guest is not running' :
            credRole === 'viewer' && !cur.view ?
              'this link may only watch: use watch' :
            st.busy && !cur.view ? 'the console is busy' :
              'the connection failed';
        } else {
          why = t.trim() || (r.status + ' ' + r.statusText);
        }
        show(why);
      })
      .catch((e) => show('the connection failed (' + e + ')'));
    function show(why) {
      if (conn !== null || retry || current !== cur) return;
      write('\r\n[virtconsoled] cannot open the console: ' + why + '\r\n',
        false, () => requestAnimationFrame(() => {
          if (conn === null) setStatus('cannot open: ' + why, 'disconnected');
        }));
    }
  }

  /*
   * Download history: every stretch the daemon keeps of the console, all
   * runs, oldest first, paged with from= until the end (at most
   * HISTORY_MAX bytes), with the terminal's marker lines where bytes are
   * missing; saved under the daemon's file name.
   */
  async function download() {
    const cur = current;
    if (!cur) return;
    const path = base() + 'api/history/' + consolePath(cur.name, cur.alias);
    const parts = [];
    const enc = new TextEncoder();
    const note = (t) => parts.push(enc.encode('\r\n[virtconsoled: ' + t +
      ']\r\n'));
    let from = null;
    let total = 0;
    let fname = null;
    let end = null;   // { run, offset } after the last stretch
    try {
      for (let i = 0; i < 1024 && total < HISTORY_MAX; i++) {
        const r = await fetch(path + '?max=' + Math.min(HISTORY_PAGE,
          HISTORY_MAX - total) + (from ? '&from=' +
          encodeURIComponent(from) : '') + hvQuery(cur, '&'),
          { credentials: 'same-origin' });
        if (!r.ok) {
          const t = (await r.text()).trim();
          if (i === 0) throw new Error(t || (r.status + ' ' + r.statusText));
          note('history ends here: ' + t);
          break;
        }
        if (!fname) {
          const cd = r.headers.get('Content-Disposition') || '';
          const m = /filename="([^"]+)"/.exec(cd);
          fname = m ? m[1] : 'console.log';
        }
        const run = r.headers.get('X-Virtconsole-Run');
        const off = Number(r.headers.get('X-Virtconsole-Offset'));
        const next = r.headers.get('X-Virtconsole-Next');
        const gap = r.headers.get('X-Virtconsole-Gap');
        const nextRun = r.headers.get('X-Virtconsole-Next-Run');
        const body = new Uint8Array(await r.arrayBuffer());
        if (end && end.run === run && off > end.offset)
          note((off - end.offset) + ' bytes not kept');
        if (body.length) parts.push(body);
        total += body.length;
        end = { run: run, offset: off + body.length };
        if (gap === 'unknown') note('output lost here');
        if (nextRun) {
          note('the guest started again');
          from = nextRun + ':0';
          end = null;
        } else if (body.length === 0 && !gap) {
          break;
        } else {
          from = run + ':' + next;
        }
      }
      const a = document.createElement('a');
      a.href = URL.createObjectURL(new Blob(parts,
        { type: 'application/octet-stream' }));
      a.download = fname;
      document.body.appendChild(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(a.href), 60000);
    } catch (e) {
      // The terminal's status stays; the button says what failed.
      $('download').title = 'history: ' + e.message;
      write('\r\n[virtconsoled] cannot download history: ' + e.message +
        '\r\n', false);
    }
  }

  $('reconnect').addEventListener('click', () => {
    if (!current) return;
    // Go on from where the terminal stands (fresh when it never had a
    // hello); resume= takes over our own session if it is still there.
    stopConn();
    failures = 0;
    connect(pos !== null);
  });
  $('disconnect').addEventListener('click', () => {
    if (retry) {
      cancelRetry();
      setStatus('disconnected: closed by the user', 'disconnected');
      $('disconnect').disabled = true;
      return;
    }
    if (conn) conn.sock.close(1000, 'closed by the user');
  });
  $('download').addEventListener('click', () => { download(); });

  // For tests and the curious: where the terminal stands.
  window.virtconsoled = Object.freeze({
    state: () => ({ run: pos && pos.run, offset: pos && pos.offset,
      replaying: !!(conn && conn.replaying), dropped: dropped,
      rule: conn && conn.rule,
      reconnecting: !!retry,
      view: viewing(), role: conn && conn.role,
      clients: conn && conn.clients, ignored: ignored }),
    // Every line of the terminal, scrollback included.
    text: () => {
      const b = term.buffer.active;
      const lines = [];
      for (let y = 0; y < b.length; y++)
        lines.push(b.getLine(y).translateToString(true));
      return lines.join('\n');
    },
  });

  function render(data) {
    const tbody = document.querySelector('#guest-table tbody');
    tbody.textContent = '';
    credRole = data.role || 'writer';
    // Several hypervisors: each one's state, and each guest's hypervisor.
    const hvs = data.hypervisors || [];
    $('hypervisor').textContent = hvs.length > 1 ?
      'hypervisors: ' + hvs.map((h) => h.name + ' ' + h.state).join(', ') :
      'hypervisor: ' + data.hypervisor;
    for (const g of data.guests) {
      const tr = document.createElement('tr');
      const name = document.createElement('td');
      name.textContent = g.name + (hvs.length > 1 && g.hypervisor ?
        ' (' + g.hypervisor + ')' : '');
      name.title = g.uuid;
      const state = document.createElement('td');
      state.textContent = g.state;
      state.className = g.state === 'running' ? 'running' : 'stopped';
      const cons = document.createElement('td');
      for (const c of g.consoles) {
        const b = document.createElement('button');
        b.type = 'button';
        b.className = 'console' + (c.busy ? ' busy' : '');
        b.textContent = c.alias + (c.busy ? ' (busy)' : '');
        b.dataset.guest = g.name;
        b.dataset.alias = c.alias;
        if (g.hypervisor) b.dataset.hv = g.hypervisor;
        if (credRole === 'viewer') {
          b.disabled = true;
          b.title = 'this link may only watch';
        }
        b.addEventListener('click', () => open(g.name, c.alias, false,
          g.hypervisor));
        const w = document.createElement('button');
        const n = Number(c.viewers) || 0;
        w.type = 'button';
        w.className = 'watch';
        w.textContent = 'watch' + (n ? ' (' + n + ')' : '');
        w.title = 'watch ' + c.alias + ' without typing (' + n +
          (n === 1 ? ' viewer' : ' viewers') + ' now)';
        w.dataset.guest = g.name;
        w.dataset.alias = c.alias;
        if (g.hypervisor) w.dataset.hv = g.hypervisor;
        w.addEventListener('click', () => open(g.name, c.alias, true,
          g.hypervisor));
        const span = document.createElement('span');
        span.className = 'pair';
        span.append(b, w);
        cons.appendChild(span);
      }
      tr.append(name, state, cons);
      tbody.appendChild(tr);
    }
    $('guest-table').hidden = data.guests.length === 0;
    $('guests-empty').hidden = data.guests.length !== 0;
    $('guests-empty').textContent = 'No guests.';
  }

  function refresh() {
    fetch(base() + 'api/guests', { credentials: 'same-origin' })
      .then((r) => {
        if (r.status === 401) {
          $('guests-empty').textContent = 'Not signed in: open the link ' +
            'your management application gave you (it ends in ?token=...).';
          $('guest-table').hidden = true;
          return null;
        }
        if (!r.ok) throw new Error(r.status + ' ' + r.statusText);
        return r.json();
      })
      .then((d) => { if (d) render(d); })
      .catch((e) => { $('guests-empty').textContent = 'Guest list: ' + e; });
  }

  refresh();
  setInterval(refresh, 5000);
})();
