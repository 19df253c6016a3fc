/**
 * The page `primacy web` serves: static HTML, CSS and a script that follows /events (server-sent
 * events, one WebState as JSON each) and lays each state out. The script builds the DOM with
 * textContent only, and the page's Content-Security-Policy allows no inline script, so nothing read
 * from etcd can run as code. Kept as strings so that the package ships them without a build step.
 */

export const PAGE_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Primacy</title>
<link rel="stylesheet" href="page.css">
<script src="page.js" defer></script>
</head>
<body>
<header class="top">
  <h1>Primacy</h1>
  <span id="scope"></span>
  <span id="conn" class="badge dim">connecting…</span>
  <span id="updated" class="dim"></span>
</header>
<div id="problem" class="banner bad" hidden></div>
<main id="clusters"></main>
<noscript>This page needs JavaScript; <code>primacy status --watch</code> shows the same in a terminal.</noscript>
</body>
</html>
`;

export const PAGE_CSS = `
:root { --ok: #1a7f37; --warn: #9a6700; --bad: #cf222e; --dim: #6e7781; --line: #d0d7de; --bg-bad: #ffebe9; --bg-warn: #fff8c5; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0; color: #1f2328; background: #f6f8fa; }
code, pre, .mono { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; font-size: 12.5px; }
.top { display: flex; gap: 14px; align-items: baseline; padding: 10px 20px; background: #24292f; color: #fff; }
.top h1 { font-size: 18px; margin: 0; }
.top .dim { color: #afb8c1; }
main { padding: 12px 20px 40px; }
.cluster { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 12px 16px; margin-bottom: 18px; }
.cluster > header { display: flex; flex-wrap: wrap; gap: 6px 18px; align-items: baseline; }
.cluster h2 { font-size: 17px; margin: 0 6px 0 0; }
h3 { font-size: 13px; text-transform: uppercase; letter-spacing: .04em; color: var(--dim); margin: 14px 0 6px; }
.facts { display: flex; flex-wrap: wrap; gap: 4px 18px; margin-top: 4px; color: #424a53; }
.facts b { font-weight: 600; color: #1f2328; }
.badge { display: inline-block; padding: 0 7px; border-radius: 10px; font-size: 12px; font-weight: 600; border: 1px solid currentColor; }
.ok { color: var(--ok); } .warn { color: var(--warn); } .bad { color: var(--bad); } .dim { color: var(--dim); }
.banner { border-radius: 6px; padding: 6px 10px; margin: 8px 0; }
.banner.bad { background: var(--bg-bad); color: var(--bad); border: 1px solid #ffcecb; }
.banner.warn { background: var(--bg-warn); color: var(--warn); border: 1px solid #f5e0a0; }
#problem { margin: 10px 20px 0; }
.columns { display: grid; grid-template-columns: minmax(420px, 3fr) minmax(320px, 2fr); gap: 18px; }
@media (max-width: 900px) { .columns { grid-template-columns: 1fr; } }
ul.tree, ul.tree ul { list-style: none; margin: 0; padding-left: 22px; }
ul.tree { padding-left: 0; }
ul.tree ul { border-left: 2px solid var(--line); margin-left: 10px; padding-left: 14px; }
.node { border: 1px solid var(--line); border-radius: 6px; padding: 6px 9px; margin: 6px 0; background: #fff; }
.node.is-primary { border-color: var(--ok); box-shadow: inset 3px 0 0 var(--ok); }
.node.state-diverged, .node.state-down, .node.state-broken, .node.state-auth_error { background: var(--bg-bad); border-color: #ffcecb; }
.node.state-fenced, .node.state-refusing { background: var(--bg-warn); }
.node.state-gone { opacity: .65; }
.node .name { font-weight: 700; margin-right: 8px; }
.node .line { display: flex; flex-wrap: wrap; gap: 2px 12px; align-items: baseline; }
.node .gtid { color: #424a53; }
.node .note { margin-top: 3px; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 3px 8px 3px 0; vertical-align: top; border-bottom: 1px solid #eaeef2; }
th { font-size: 12px; color: var(--dim); font-weight: 600; }
.steps td.detail { color: #424a53; }
.steps td.num { white-space: nowrap; }
details.op { border-bottom: 1px solid #eaeef2; padding: 3px 0; }
details.op summary { cursor: pointer; display: flex; gap: 12px; align-items: baseline; list-style: none; }
details.op summary::-webkit-details-marker { display: none; }
details.op summary::before { content: '\\25B8'; color: var(--dim); }
details.op[open] summary::before { content: '\\25BE'; }
details.op summary > * { white-space: nowrap; }
details.op summary > .reason { white-space: normal; flex: 1 1 300px; }
details.op.outcome-refused, details.op.outcome-aborted { background: var(--bg-bad); }
details.op pre { background: #f6f8fa; border: 1px solid var(--line); border-radius: 6px; padding: 8px; overflow-x: auto; white-space: pre; }
.actions { display: flex; gap: 8px; align-items: center; margin-left: auto; }
.actions button { font: inherit; padding: 2px 10px; border-radius: 6px; border: 1px solid var(--line); background: #f6f8fa; cursor: pointer; }
.actions button:disabled { opacity: .5; cursor: default; }
.actions select { font: inherit; }
.action-result { margin-left: 4px; }
.empty { color: var(--dim); padding: 20px 0; }
`;

/**
 * Plain ES2017 without template literals (this string is one): it runs as served. Each event is
 * `{ sentAt, state }`; ages and running steps tick each second on the server's clock, not the browser's.
 */
export const PAGE_JS = String.raw`
(function () {
  'use strict';
  var state = null;
  var offset = 0;
  var openOps = {};
  var results = {};
  var choices = {};
  var el = function (id) { return document.getElementById(id); };

  function h(tag, attrs) {
    var node = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (k) {
        var v = attrs[k];
        if (v === null || v === undefined || v === false) return;
        if (k === 'class') node.className = v;
        else if (k.slice(0, 2) === 'on') node.addEventListener(k.slice(2), v);
        else node.setAttribute(k, v === true ? '' : String(v));
      });
    }
    for (var i = 2; i < arguments.length; i++) append(node, arguments[i]);
    return node;
  }
  function append(node, child) {
    if (child === null || child === undefined || child === false) return;
    if (Array.isArray(child)) { child.forEach(function (c) { append(node, c); }); return; }
    node.appendChild(typeof child === 'object' ? child : document.createTextNode(String(child)));
  }

  function now() { return Date.now() + offset; }
  function duration(ms) {
    if (!isFinite(ms)) return '-';
    var v = Math.max(0, Math.round(ms));
    if (v < 1000) return v + ' ms';
    if (v < 60000) return (v / 1000).toFixed(v < 10000 ? 2 : 1) + ' s';
    var s = Math.floor(v / 1000);
    if (s < 3600) return Math.floor(s / 60) + 'm ' + String(s % 60).padStart(2, '0') + 's';
    if (s < 86400) return Math.floor(s / 3600) + 'h ' + String(Math.floor((s % 3600) / 60)).padStart(2, '0') + 'm';
    return Math.floor(s / 86400) + 'd ' + Math.floor((s % 86400) / 3600) + 'h';
  }
  function time(at) { return new Date(at).toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z'); }
  function ticking(from) { return h('span', { 'data-since': from }, duration(now() - from)); }

  function conditionClass(s) {
    if (s === 'ok') return 'ok';
    if (s === 'gone') return 'dim';
    if (s === 'fenced' || s === 'refusing') return 'warn';
    return 'bad';
  }
  function outcomeClass(o) { return o === 'done' || o === 'ok' ? 'ok' : o === 'running' || o === 'skipped' ? 'warn' : 'bad'; }
  function badge(text, cls) { return h('span', { class: 'badge ' + cls }, text); }

  function nodeCard(c, name) {
    var n = c.status.nodes.find(function (x) { return x.node === name; });
    if (!n) return h('div', { class: 'node state-gone', 'data-node': name }, h('span', { class: 'name' }, name), badge('gone', 'dim'));
    var role = n.primary ? 'primary' : (n.role || 'unknown');
    var facts = [
      h('span', { class: 'name' }, n.node),
      h('span', { class: 'role' }, role),
      badge(n.state, conditionClass(n.state)),
      n.health && n.health !== 'up' ? h('span', { class: 'bad' }, 'health ' + n.health) : null,
      n.host ? h('span', { class: 'dim mono' }, n.host + ':' + n.port) : null,
      n.readOnly === null ? null : h('span', { class: n.readOnly || n.primary ? '' : 'bad' }, n.readOnly ? 'read-only' : 'writable'),
      n.lagMs !== null && !n.primary ? h('span', { class: 'lag' }, 'lag ' + duration(n.lagMs)) : null,
      c.semiSync[n.node] ? h('span', { class: 'dim' }, 'semi-sync ' + c.semiSync[n.node]) : null,
    ];
    var gtid = [h('span', null, 'executed ', h('code', null, n.gtidExecuted || '-'))];
    if (n.gtidReceived && n.gtidReceived !== n.gtidExecuted) gtid.push(h('span', null, 'received ', h('code', null, n.gtidReceived)));
    var note = c.notes[n.node];
    return h('div', { class: 'node state-' + n.state + (n.primary ? ' is-primary' : ''), 'data-node': n.node, 'data-state': n.state, 'data-role': role },
      h('div', { class: 'line' }, facts),
      h('div', { class: 'line gtid' }, gtid),
      note ? h('div', { class: 'note ' + conditionClass(n.state) }, note) : null);
  }

  function tree(c) {
    var t = c.tree;
    var out = [];
    if (t.root === null) {
      var p = c.status.primary;
      out.push(h('div', { class: 'banner bad' }, p ? 'primary ' + p.node + ' (epoch ' + p.epoch + ') has no member key' : 'no primary'));
    } else {
      var walk = function (name, seen) {
        var kids = (t.children[name] || []).filter(function (k) { return seen.indexOf(k) < 0; });
        return h('li', null, nodeCard(c, name), kids.length ? h('ul', null, kids.map(function (k) { return walk(k, seen.concat([k])); })) : null);
      };
      out.push(h('ul', { class: 'tree' }, walk(t.root, [t.root])));
    }
    if (t.apart.length) {
      out.push(h('h3', null, 'Apart from the tree'));
      t.apart.forEach(function (a) { out.push(h('div', { class: 'apart' }, nodeCard(c, a.node), h('div', { class: 'warn' }, a.why))); });
    }
    return out;
  }

  function steps(op) {
    var mark = { ok: '\u2713', failed: '\u2717', skipped: '-', running: '\u2026' };
    return h('table', { class: 'steps' },
      h('tr', null, h('th', null, ''), h('th', null, 'step'), h('th', null, 'duration'), h('th', null, 'at'), h('th', null, 'detail')),
      op.steps.map(function (s) {
        return h('tr', { 'data-step': s.name, 'data-outcome': s.outcome },
          h('td', { class: outcomeClass(s.outcome) }, mark[s.outcome] || ''),
          h('td', null, s.name),
          h('td', { class: 'num' }, s.endedAt === null ? [ticking(s.startedAt), ' so far'] : duration(s.endedAt - s.startedAt)),
          h('td', { class: 'dim num' }, '+' + duration(s.startedAt - op.startedAt)),
          h('td', { class: 'detail' }, s.detail));
      }));
  }

  function current(c) {
    var op = c.current;
    if (!op) return [h('h3', null, 'Operation'), h('div', { class: 'empty' }, 'none recorded yet')];
    var running = op.outcome === 'running';
    return [
      h('h3', null, running ? 'Operation running' : 'Last operation'),
      h('div', { class: 'current-op', 'data-epoch': op.epoch, 'data-outcome': op.outcome },
        h('div', { class: 'line' },
          h('b', null, 'epoch ' + op.epoch + ': ' + op.kind + ' ' + (op.from || '-') + ' \u2192 ' + (op.to || '-')), ' ',
          badge(op.outcome, outcomeClass(op.outcome)), ' ',
          h('span', { class: 'dim' }, running ? ['running for ', ticking(op.startedAt)] : ['ended ', time(op.endedAt || op.startedAt)])),
        op.outcome === 'refused' || op.outcome === 'aborted' ? h('div', { class: 'banner bad' }, op.outcome + ': ' + op.reason) : h('div', { class: 'dim' }, op.reason),
        op.steps.length ? steps(op) : null),
    ];
  }

  function history(c) {
    var items = c.history.slice().reverse().map(function (e) {
      var op = e.op;
      var key = c.cluster + '/' + op.epoch + '/' + op.startedAt + '/' + op.outcome;
      var d = h('details', { class: 'op outcome-' + op.outcome, 'data-epoch': op.epoch, 'data-outcome': op.outcome, open: !!openOps[key] },
        h('summary', null,
          h('b', null, 'epoch ' + op.epoch), h('span', null, op.kind + ' ' + (op.from || '-') + ' \u2192 ' + (op.to || '-')),
          badge(op.outcome, outcomeClass(op.outcome)),
          h('span', { class: 'dim' }, time(op.startedAt)),
          h('span', null, op.durationMs === null ? [ticking(op.startedAt), ' so far'] : duration(op.durationMs)),
          h('span', { class: 'reason' }, op.reason)),
        h('pre', { class: 'explain' }, e.explain.join('\n')));
      d.addEventListener('toggle', function () { openOps[key] = d.open; });
      return d;
    });
    return [
      h('h3', null, 'History (newest first; click for primacy explain)'),
      items.length ? items : h('div', { class: 'empty' }, 'no operations recorded'),
      c.olderOps ? h('div', { class: 'dim' }, c.olderOps + ' older operations: primacy history') : null,
    ];
  }

  function act(c, action, body) {
    results[c.cluster] = { text: action + '\u2026', cls: 'dim', pending: true };
    render();
    fetch('api/clusters/' + encodeURIComponent(c.cluster) + '/' + action, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) })
      .then(function (r) { return r.json().then(function (j) { return { ok: r.ok, j: j }; }); })
      .then(function (r) { results[c.cluster] = { text: r.ok ? r.j.message : r.j.error, cls: r.ok ? 'ok' : 'bad' }; },
            function (e) { results[c.cluster] = { text: String(e), cls: 'bad' }; })
      .then(render);
  }

  function actions(c) {
    if (!state.actions) return null;
    var s = c.status;
    var r = results[c.cluster];
    var pending = !!(r && r.pending);
    var replicas = s.nodes.filter(function (n) { return !n.primary && n.state === 'ok'; });
    // Redrawing under an open list would close it: the page is not redrawn while one has the focus.
    var select = h('select', { class: 'switchover-to', onchange: function () { choices[c.cluster] = select.value; select.blur(); }, onblur: function () { render(); } },
      h('option', { value: '' }, 'coordinator chooses'),
      replicas.map(function (n) { return h('option', { value: n.node, selected: choices[c.cluster] === n.node }, n.node); }));
    return h('div', { class: 'actions' },
      h('span', { class: 'dim' }, 'switch over to'), select,
      h('button', { class: 'switchover', disabled: pending || !s.primary, onclick: function () {
        // As primacy switchover asks on a terminal: a click alone moves no primary.
        var to = select.value || null;
        if (window.confirm('Switch ' + c.cluster + ' over from ' + s.primary.node + ' to ' + (to || 'the replica the coordinator chooses') + '?')) act(c, 'switchover', { to: to });
      } }, 'Switchover'),
      s.paused
        ? h('button', { class: 'resume', disabled: pending, onclick: function () { act(c, 'resume', {}); } }, 'Resume')
        : h('button', { class: 'pause', disabled: pending, onclick: function () { act(c, 'pause', {}); } }, 'Pause'),
      r ? h('span', { class: 'action-result ' + r.cls }, r.text) : null);
  }

  function cluster(c) {
    var s = c.status;
    var p = s.primary;
    var banners = [];
    if (s.failoverWaits) banners.push(h('div', { class: 'banner bad' }, 'failover to epoch ' + s.failoverWaits.epoch + ' waits: ' + s.failoverWaits.detail));
    if (s.configProblem) banners.push(h('div', { class: 'banner bad' }, 'the config key cannot be read (' + s.configProblem + '): no automatic failover and no request is taken until it is fixed or deleted'));
    if (s.lastOp && s.lastOp.outcome === 'refused') banners.push(h('div', { class: 'banner bad refusal' }, 'epoch ' + s.lastOp.epoch + ' ' + s.lastOp.kind + ' refused: ' + s.lastOp.reason));
    s.requests.forEach(function (r) { banners.push(h('div', { class: 'banner warn' }, 'request ' + r.id + ': ' + r.kind + (r.to ? ' to ' + r.to : '') + ' by ' + r.by + ', not taken yet')); });
    c.warnings.forEach(function (w) { banners.push(h('div', { class: 'banner warn' }, 'warning: ' + w)); });
    return h('section', { class: 'cluster', 'data-cluster': c.cluster },
      h('header', null,
        h('h2', null, c.cluster),
        p ? h('span', { class: 'primary', 'data-node': p.node, 'data-epoch': p.epoch, 'data-state': p.state },
              'primary ', h('b', null, p.node), ', epoch ' + p.epoch + ', ', badge(p.state, p.state === 'ready' ? 'ok' : 'warn'), ' since ', ticking(p.since))
          : h('span', { class: 'primary bad', 'data-node': '' }, 'no primary'),
        actions(c)),
      h('div', { class: 'facts' },
        h('span', null, 'coordinator ', h('b', null, s.coordinator || 'none')),
        h('span', { class: s.paused ? 'warn' : '' }, 'paused ', h('b', null, s.paused ? 'yes: no automatic failover' : 'no')),
        h('span', null, 'durability ', h('b', null, c.durability)),
        h('span', { class: 'dim' }, 'etcd revision ' + s.revision)),
      banners,
      h('div', { class: 'columns' },
        h('div', null, h('h3', null, 'Topology'), tree(c)),
        h('div', null, current(c))),
      history(c));
  }

  function render() {
    if (!state) return;
    el('scope').textContent = state.only ? 'cluster ' + state.only : 'every cluster under ' + state.root;
    el('updated').textContent = 'read ' + time(state.readAt);
    var problem = el('problem');
    problem.hidden = !state.problem;
    problem.textContent = state.problem ? state.problem + '; showing the last good read, retrying' : '';
    var main = el('clusters');
    if (document.activeElement && document.activeElement.tagName === 'SELECT') return;
    main.replaceChildren.apply(main, state.clusters.length ? state.clusters.map(cluster) : [h('div', { class: 'empty' }, 'no cluster under ' + state.root + ' yet')]);
  }

  function tick() {
    document.querySelectorAll('[data-since]').forEach(function (n) { n.textContent = duration(now() - Number(n.getAttribute('data-since'))); });
  }

  var conn = el('conn');
  var events = new EventSource('events');
  events.addEventListener('state', function (e) {
    var m = JSON.parse(e.data);
    state = m.state;
    offset = m.sentAt - Date.now();
    render();
  });
  events.onopen = function () { conn.textContent = 'live'; conn.className = 'badge ok'; };
  events.onerror = function () { conn.textContent = 'reconnecting\u2026'; conn.className = 'badge bad'; };
  setInterval(tick, 1000);
})();
`;
