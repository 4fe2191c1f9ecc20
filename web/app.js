/*
 * The virtconsoled page: a guest list from api/guests and a terminal on
 * xterm.js bound to console/GUEST/ALIAS over a WebSocket.  All URLs are
 * relative, so the page works under a sub-path behind a reverse proxy and
 * over HTTPS.  The session cookie (set when the page was opened with
 * ?token=) authenticates both; nothing here handles the token itself.
 */
'use strict';

(function () {
  const $ = (id) => document.getElementById(id);
  const statusEl = $('status');
  const titleEl = $('title');
  const term = new Terminal({ convertEol: false, cursorBlink: true,
    scrollback: 5000, fontSize: 14 });
  const fit = new FitAddon.FitAddon();
  let ws = null;
  let current = null;  // { name, alias }

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

  function connect(name, alias) {
    if (ws) {
      ws.onclose = null;
      ws.close(1000);
      ws = null;
    }
    current = { name: name, alias: alias };
    titleEl.textContent = name + (alias ? ' / ' + alias : '');
    term.reset();
    setStatus('connecting', 'connecting');
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const url = scheme + '//' + location.host + base() + 'console/' +
      encodeURIComponent(name) + (alias ? '/' + encodeURIComponent(alias) : '');
    const sock = new WebSocket(url, ['binary']);
    sock.binaryType = 'arraybuffer';
    ws = sock;
    let opened = false;
    sock.onopen = () => {
      opened = true;
      setStatus('attached', 'attached');
      $('reconnect').disabled = false;
      $('disconnect').disabled = false;
      term.focus();
    };
    sock.onmessage = (ev) => {
      if (typeof ev.data === 'string') term.write(ev.data);
      else term.write(new Uint8Array(ev.data));
    };
    sock.onclose = (ev) => {
      if (ws !== sock) return;
      ws = null;
      const why = ev.reason || (ev.code === 1006 ? 'connection lost' :
        'closed (' + ev.code + ')');
      $('disconnect').disabled = true;
      // term.write() only queues: the daemon's last bytes (its notice)
      // may not be parsed yet when the close event comes.  The status
      // changes once they are parsed and the frame that renders them has
      // run (xterm.js renders in an animation frame requested while
      // parsing; ours is requested after it), so the status never says
      // "disconnected" above a terminal that lacks the reason.
      term.write('', () => requestAnimationFrame(() => {
        if (ws === null) setStatus('disconnected: ' + why, 'disconnected');
      }));
      // Refused before the upgrade: a browser tells the page nothing
      // (1006), so ask the daemon what opening the console meets.
      if (!opened) explain(name, alias);
      refresh();
    };
  }

  // Why a console could not be opened: the status line and the terminal
  // say it (a blank terminal tells nobody anything).
  function explain(name, alias) {
    const cur = current;
    const path = 'api/console/' + encodeURIComponent(name) +
      (alias ? '/' + encodeURIComponent(alias) : '');
    fetch(base() + path, { credentials: 'same-origin' })
      .then((r) => r.text().then((t) => [r, t]))
      .then(([r, t]) => {
        let why;
        if (r.ok) {
          const st = JSON.parse(t);
          why = st.state !== 'running' ? 'the guest is not running' :
            st.busy ? 'the console is busy' : 'the connection failed';
        } else {
          why = t.trim() || (r.status + ' ' + r.statusText);
        }
        show(why);
      })
      .catch((e) => show('the connection failed (' + e + ')'));
    function show(why) {
      if (ws !== null || current !== cur) return;  // another console since
      term.write('\r\n[virtconsoled] cannot open the console: ' + why +
        '\r\n', () => requestAnimationFrame(() => {
        if (ws === null) setStatus('cannot open: ' + why, 'disconnected');
      }));
    }
  }

  // Typed input goes out as text frames (UTF-8), like xterm's attach addon.
  term.onData((d) => { if (ws && ws.readyState === 1) ws.send(d); });
  term.onBinary((d) => {
    if (!ws || ws.readyState !== 1) return;
    const b = new Uint8Array(d.length);
    for (let i = 0; i < d.length; i++) b[i] = d.charCodeAt(i) & 0xff;
    ws.send(b);
  });

  $('reconnect').addEventListener('click', () => {
    if (current) connect(current.name, current.alias);
  });
  $('disconnect').addEventListener('click', () => {
    if (ws) ws.close(1000, 'closed by the user');
  });

  function render(data) {
    const tbody = document.querySelector('#guest-table tbody');
    tbody.textContent = '';
    $('hypervisor').textContent = 'hypervisor: ' + data.hypervisor;
    for (const g of data.guests) {
      const tr = document.createElement('tr');
      const name = document.createElement('td');
      name.textContent = g.name;
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
        b.addEventListener('click', () => connect(g.name, c.alias));
        cons.appendChild(b);
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
