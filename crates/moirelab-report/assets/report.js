// moirelab report pages: epoch slider, grid / filmstrip / compare views, per-epoch tables,
// and a #selftest mode used by the headless-Chromium tests. Every user string reaches the
// DOM through textContent, never innerHTML.
(function () {
  'use strict';
  var D = JSON.parse(document.getElementById('data').textContent);
  var problems = [];
  // Capture phase: <img> load errors do not bubble.
  window.addEventListener('error', function (e) {
    var t = e.target;
    if (t && t !== window && t.tagName) {
      problems.push('failed to load <' + t.tagName.toLowerCase() + '> ' + (t.getAttribute('src') || ''));
    } else {
      problems.push('script error: ' + (e.message || String(e)));
    }
  }, true);
  window.addEventListener('unhandledrejection', function (e) {
    problems.push('unhandled rejection: ' + String(e.reason));
  });
  document.addEventListener('securitypolicyviolation', function (e) {
    problems.push('CSP violation: ' + e.violatedDirective + ' ' + (e.blockedURI || ''));
  });

  function $(id) { return document.getElementById(id); }
  function el(tag, cls, text) {
    var n = document.createElement(tag);
    if (cls) n.className = cls;
    if (text !== undefined && text !== null) n.textContent = String(text);
    return n;
  }
  function num(v) {
    if (v === undefined || v === null) return '–';
    if (typeof v !== 'number') return String(v);
    if (Number.isInteger(v)) return String(v);
    var a = Math.abs(v);
    if (a >= 1e-3 && a < 1e5) return String(Number(v.toFixed(4)));
    return v.toExponential(3);
  }
  function pct(v) { return (100 * v).toFixed(1) + '%'; }
  function tile(url, alt, captions) {
    var f = el('figure', 'tile');
    if (url) {
      var i = el('img');
      i.alt = alt;
      i.src = url;
      f.appendChild(i);
    } else {
      f.appendChild(el('div', 'missing', 'not available'));
    }
    (captions || []).forEach(function (c) {
      if (!c) return;
      if (typeof c === 'string') f.appendChild(el('figcaption', null, c));
      else f.appendChild(el('figcaption', c.cls, c.text));
    });
    return f;
  }
  function groupsText(row) {
    if (!row) return '';
    var parts = Object.keys(row.groups || {}).map(function (k) { return k + '=' + row.groups[k]; });
    if (row.aligned === true) parts.push('shortcut-aligned');
    if (row.aligned === false) parts.push('shortcut-conflicting');
    return parts.join(' · ');
  }
  function classCaptions(row) {
    if (!row) return [{ cls: null, text: 'no probes.json: class and score unknown' }];
    return [
      { cls: 'cls', text: 'true: ' + row.true_class },
      { cls: row.correct ? 'right' : 'wrong', text: 'pred: ' + row.pred_class + (row.score != null ? ' (p=' + num(row.score) + ')' : '') },
      groupsText(row)
    ];
  }
  function massText(row, method, target) {
    if (!row || !row.mass) return '';
    var m = row.mass[method + '/' + target];
    if (!m) return '';
    var keys = Object.keys(m).sort(function (a, b) { return m[b] - m[a]; }).slice(0, 3);
    return keys.map(function (k) { return k + ' ' + pct(m[k]); }).join(' · ');
  }
  function kindTitle(kind) {
    return kind === 'pred' ? 'CAM (pred)' : kind === 'true' ? 'CAM (true)' : kind === 'overlay' ? 'overlay' : 'input';
  }
  function kindCaption(kind, row) {
    if (!row) return '';
    if (kind === 'pred') return 'explains ' + row.pred_class;
    if (kind === 'true') return 'explains ' + row.true_class;
    return '';
  }

  // ----- shared slider ---------------------------------------------------------------------
  var epochs = D.epochs || [];
  var slider = $('epoch');
  var pos = Math.max(0, epochs.length - 1);
  if (D.kind === 'compare') {
    // Start at the last epoch every run has dumped, so the first view compares like with like.
    for (var k = epochs.length - 1; k >= 0; k--) {
      var all = D.runs.every(function (r) { return r.dumps[String(epochs[k])]; });
      if (all) { pos = k; break; }
    }
  }
  slider.max = String(Math.max(0, epochs.length - 1));
  slider.value = String(pos);
  slider.disabled = epochs.length < 2;
  function setPos(p) {
    if (!epochs.length) return;
    pos = Math.min(epochs.length - 1, Math.max(0, p));
    slider.value = String(pos);
    render();
  }
  slider.addEventListener('input', function () { setPos(Number(slider.value)); });
  $('prev').addEventListener('click', function () { setPos(pos - 1); });
  $('next').addEventListener('click', function () { setPos(pos + 1); });
  document.addEventListener('keydown', function (e) {
    if (e.target === slider || e.altKey || e.ctrlKey || e.metaKey) return;
    var tag = e.target && e.target.tagName;
    if (tag === 'INPUT' || tag === 'SELECT' || tag === 'TEXTAREA') return;
    if (e.key === 'ArrowLeft') { e.preventDefault(); setPos(pos - 1); }
    if (e.key === 'ArrowRight') { e.preventDefault(); setPos(pos + 1); }
  });
  function curEpoch() { return epochs.length ? epochs[pos] : null; }
  function label() {
    $('epoch-label').textContent = epochs.length
      ? 'epoch ' + curEpoch() + ' (' + (pos + 1) + '/' + epochs.length + ')'
      : 'no epochs yet';
  }

  // ----- run page --------------------------------------------------------------------------
  function runHeader(table) {
    var tr = el('tr');
    tr.appendChild(el('th', null, 'probe'));
    tr.appendChild(el('th', null, 'input'));
    D.methods.forEach(function (m) {
      D.tile_kinds.forEach(function (k) { tr.appendChild(el('th', null, m + ' · ' + kindTitle(k))); });
    });
    var thead = el('thead');
    thead.appendChild(tr);
    table.appendChild(thead);
  }
  function runRow(tr, probe, epoch) {
    var dump = D.dumps[String(epoch)];
    var row = dump && dump.rows[String(probe.index)];
    var inTd = el('td');
    inTd.appendChild(tile(probe.input, 'probe ' + probe.index + ' input', classCaptions(dump ? row : undefined)));
    tr.appendChild(inTd);
    var tiles = (dump && dump.tiles[String(probe.index)]) || {};
    D.methods.forEach(function (m) {
      D.tile_kinds.forEach(function (k) {
        var url = tiles[m] && tiles[m][k];
        var caps = [kindCaption(k, row)];
        if (k !== 'overlay') caps.push(massText(row, m, k));
        var td = el('td');
        td.appendChild(tile(url, m + ' ' + k + ' epoch ' + epoch, caps));
        tr.appendChild(td);
      });
    });
  }
  function renderRunGrid(view) {
    var epoch = curEpoch();
    if (epoch === null) { view.appendChild(el('p', 'note', 'No epochs yet.')); return; }
    if (!D.dumps[String(epoch)]) {
      view.appendChild(el('p', 'note', 'No Grad-CAM dump at epoch ' + epoch + ' (metrics only). Move the slider to an epoch with a dump.'));
      return;
    }
    var table = el('table', 'grid');
    runHeader(table);
    var tbody = el('tbody');
    D.probes.forEach(function (p) {
      var tr = el('tr');
      var th = el('th', 'probe-id', String(p.index).padStart(2, '0') + ' ' + p.id);
      th.scope = 'row';
      tr.appendChild(th);
      runRow(tr, p, epoch);
      tbody.appendChild(tr);
    });
    table.appendChild(tbody);
    view.appendChild(table);
  }
  function renderRunFilm(view) {
    var sel = $('probe');
    var probe = D.probes[Number(sel.value) || 0];
    if (!probe) { view.appendChild(el('p', 'note', 'No probes.')); return; }
    var gifs = D.gifs[String(probe.index)];
    if (gifs) {
      var g = el('div', 'gifs');
      Object.keys(gifs).forEach(function (m) {
        g.appendChild(tile(gifs[m], 'animated ' + m + ' overlay across epochs', [m + ' overlay, all epochs (GIF)']));
      });
      view.appendChild(g);
    }
    var table = el('table', 'grid');
    runHeader(table);
    table.querySelector('thead tr').firstChild.textContent = 'epoch';
    var tbody = el('tbody');
    epochs.forEach(function (ep, i) {
      if (!D.dumps[String(ep)]) return;
      var tr = el('tr', i === pos ? 'cur' : null);
      var th = el('th', null, 'epoch ' + ep);
      th.scope = 'row';
      tr.appendChild(th);
      runRow(tr, probe, ep);
      tbody.appendChild(tr);
    });
    table.appendChild(tbody);
    view.appendChild(table);
  }
  function splitOrder(bySplit) {
    var known = ['train', 'val', 'test'];
    return Object.keys(bySplit).sort(function (a, b) {
      var ia = known.indexOf(a), ib = known.indexOf(b);
      return (ia < 0 ? 99 : ia) - (ib < 0 ? 99 : ib) || (a < b ? -1 : a > b ? 1 : 0);
    });
  }
  function metricsTable(bySplit) {
    var cols = [
      ['n', function (e) { return e.n; }],
      ['loss', function (e) { return e.loss; }],
      ['accuracy', function (e) { return e.accuracy; }],
      ['balanced acc', function (e) { return e.balanced_accuracy; }],
      ['worst group', function (e) { return e.worst_group_accuracy; }],
      ['aligned acc', function (e) { return e.aligned_accuracy; }],
      ['conflicting acc', function (e) { return e.conflicting_accuracy; }],
      ['threshold', function (e) { return e.pad && e.pad.threshold; }],
      ['APCER', function (e) { return e.pad && e.pad.apcer; }],
      ['BPCER', function (e) { return e.pad && e.pad.bpcer; }],
      ['ACER (non-ISO)', function (e) { return e.pad && e.pad.acer_non_iso; }],
      ['EER', function (e) { return e.pad && e.pad.eer; }],
      ['AUC', function (e) { return e.pad && e.pad.auc; }],
      ['lr', function (e) { return e.lr; }]
    ];
    var t = el('table', 'metrics');
    var hr = el('tr');
    hr.appendChild(el('th', null, 'split'));
    cols.forEach(function (c) { hr.appendChild(el('th', null, c[0])); });
    var th = el('thead'); th.appendChild(hr); t.appendChild(th);
    var tb = el('tbody');
    splitOrder(bySplit).forEach(function (s) {
      var tr = el('tr');
      tr.appendChild(el('th', null, s));
      cols.forEach(function (c) { tr.appendChild(el('td', null, num(c[1](bySplit[s])))); });
      tb.appendChild(tr);
    });
    t.appendChild(tb);
    return t;
  }
  function confusion(e) {
    var wrap = el('div');
    wrap.appendChild(el('h3', null, 'Confusion matrix · ' + e.split + ' (rows: true, columns: predicted)'));
    var t = el('table', 'confusion');
    var hr = el('tr');
    hr.appendChild(el('th', null, 'true \\ pred'));
    var n = e.confusion.length;
    function cname(i) { return D.classes[i] !== undefined ? D.classes[i] : 'class ' + i; }
    for (var j = 0; j < n; j++) hr.appendChild(el('th', null, cname(j)));
    var th = el('thead'); th.appendChild(hr); t.appendChild(th);
    var tb = el('tbody');
    e.confusion.forEach(function (row, i) {
      var tr = el('tr');
      tr.appendChild(el('th', null, cname(i)));
      row.forEach(function (v, j) { tr.appendChild(el('td', i === j ? 'diag' : null, v)); });
      tb.appendChild(tr);
    });
    t.appendChild(tb);
    wrap.appendChild(t);
    return wrap;
  }
  function groupsTable(e) {
    var keys = Object.keys(e.groups || {});
    if (!keys.length) return null;
    var wrap = el('div');
    wrap.appendChild(el('h3', null, 'Group accuracy · ' + e.split));
    var t = el('table', 'metrics');
    var hr = el('tr');
    ['group', 'n', 'correct', 'accuracy', 'shortcut'].forEach(function (h) { hr.appendChild(el('th', null, h)); });
    var th = el('thead'); th.appendChild(hr); t.appendChild(th);
    var tb = el('tbody');
    keys.forEach(function (k) {
      var g = e.groups[k];
      var tr = el('tr');
      tr.appendChild(el('th', null, k));
      tr.appendChild(el('td', null, g.n));
      tr.appendChild(el('td', null, g.correct));
      tr.appendChild(el('td', null, num(g.accuracy)));
      tr.appendChild(el('td', null, g.aligned === true ? 'aligned' : g.aligned === false ? 'conflicting' : '–'));
      tb.appendChild(tr);
    });
    t.appendChild(tb);
    wrap.appendChild(t);
    return wrap;
  }
  function renderRunMetrics() {
    var box = $('epoch-metrics');
    box.textContent = '';
    var epoch = curEpoch();
    var m = epoch === null ? null : D.metrics[String(epoch)];
    if (!m) { box.appendChild(el('p', 'note', epoch === null ? 'No metrics yet.' : 'No metrics lines for epoch ' + epoch + '.')); return; }
    box.appendChild(el('p', 'note', 'epoch ' + epoch));
    box.appendChild(metricsTable(m));
    var row = el('div', 'side');
    splitOrder(m).forEach(function (s) {
      if (m[s].confusion && m[s].confusion.length) row.appendChild(confusion(m[s]));
    });
    box.appendChild(row);
    var groups = el('div', 'side');
    splitOrder(m).forEach(function (s) {
      var g = groupsTable(m[s]);
      if (g) groups.appendChild(g);
    });
    box.appendChild(groups);
  }
  function renderRun() {
    var view = $('view');
    view.textContent = '';
    label();
    var film = $('mode').value === 'film';
    $('probe-pick').hidden = !film;
    if (film) renderRunFilm(view); else renderRunGrid(view);
    renderRunMetrics();
  }

  // ----- compare page ----------------------------------------------------------------------
  function renderCompare() {
    var view = $('view');
    view.textContent = '';
    label();
    var epoch = curEpoch();
    var method = $('method').value;
    var kind = $('kind').value;
    var table = el('table', 'grid');
    var hr = el('tr');
    hr.appendChild(el('th', null, 'probe'));
    D.runs.forEach(function (r) {
      var th = el('th');
      th.appendChild(el('div', 'run-name', r.name));
      r.diff.forEach(function (kv) { th.appendChild(el('div', 'diffs', kv[0] + ' = ' + kv[1])); });
      hr.appendChild(th);
    });
    var thead = el('thead'); thead.appendChild(hr); table.appendChild(thead);
    var tbody = el('tbody');
    D.probes.forEach(function (p) {
      var tr = el('tr');
      var th = el('th', 'probe-id', p.id);
      th.scope = 'row';
      tr.appendChild(th);
      p.cells.forEach(function (c, ri) {
        var td = el('td');
        var r = D.runs[ri];
        if (!c) {
          td.appendChild(tile(null, '', ['probe not in this run']));
        } else if (epoch === null || !r.dumps[String(epoch)]) {
          td.appendChild(tile(null, '', ['no dump at epoch ' + epoch]));
        } else {
          var dump = r.dumps[String(epoch)];
          var row = dump.rows[String(c.index)];
          var url;
          if (kind === 'input') url = c.input;
          else {
            var t = dump.tiles[String(c.index)];
            url = t && t[method] && t[method][kind];
          }
          var caps = classCaptions(row);
          if (kind === 'pred' || kind === 'true') caps.push(massText(row, method, kind));
          td.appendChild(tile(url, r.name + ' ' + p.id + ' ' + kind, caps));
        }
        tr.appendChild(td);
      });
      tbody.appendChild(tr);
    });
    table.appendChild(tbody);
    view.appendChild(table);
  }

  var render;
  if (D.kind === 'run') {
    render = renderRun;
    var ps = $('probe');
    D.probes.forEach(function (p, i) {
      var o = el('option', null, String(p.index).padStart(2, '0') + ' ' + p.id);
      o.value = String(i);
      ps.appendChild(o);
    });
    $('mode').addEventListener('change', render);
    ps.addEventListener('change', render);
  } else {
    render = renderCompare;
    var ms = $('method');
    D.methods.forEach(function (m) { var o = el('option', null, m); o.value = m; ms.appendChild(o); });
    ms.addEventListener('change', render);
    $('kind').addEventListener('change', render);
    var toggle = $('diff-only');
    toggle.addEventListener('change', function () {
      $('config-table').classList.toggle('diff-only', toggle.checked);
    });
  }
  render();

  // ----- #selftest -------------------------------------------------------------------------
  function imagesSettled() {
    var imgs = Array.prototype.slice.call(document.images);
    return Promise.all(imgs.map(function (i) {
      if (i.complete) return Promise.resolve();
      return new Promise(function (res) {
        i.addEventListener('load', res, { once: true });
        i.addEventListener('error', res, { once: true });
      });
    })).then(function () { return imgs; });
  }
  function checkImages(state, seen) {
    return imagesSettled().then(function (imgs) {
      imgs.forEach(function (i) {
        seen.count += 1;
        if (!(i.complete && i.naturalWidth > 0)) problems.push(state + ': image did not load: ' + i.getAttribute('src'));
      });
    });
  }
  function selftest() {
    var states = [];
    var modes = D.kind === 'run' ? ['grid', 'film'] : D.methods.length ? ['overlay', 'pred', 'true', 'input'] : ['input'];
    var methods = D.kind === 'run' ? [null] : (D.methods.length ? D.methods : [null]);
    modes.forEach(function (mode) {
      methods.forEach(function (m) {
        if (D.kind === 'run' && mode === 'film') {
          D.probes.forEach(function (_, pi) { states.push({ mode: mode, probe: pi, pos: 0 }); });
        } else {
          for (var i = 0; i < Math.max(1, epochs.length); i++) states.push({ mode: mode, method: m, pos: i });
        }
      });
    });
    var seen = { count: 0 };
    var chain = Promise.resolve();
    states.forEach(function (s) {
      chain = chain.then(function () {
        if (D.kind === 'run') {
          $('mode').value = s.mode;
          if (s.probe !== undefined) $('probe').value = String(s.probe);
        } else {
          $('kind').value = s.mode;
          if (s.method) $('method').value = s.method;
        }
        setPos(s.pos);
        var shown = $('epoch-label').textContent;
        if (epochs.length && shown.indexOf('epoch ' + curEpoch() + ' ') !== 0) problems.push('label shows "' + shown + '" at epoch ' + curEpoch());
        return checkImages(JSON.stringify(s), seen);
      });
    });
    return chain.then(function () {
      // The keyboard moves the slider.
      if (epochs.length > 1) {
        setPos(0);
        document.body.dispatchEvent(new KeyboardEvent('keydown', { key: 'ArrowRight', bubbles: true }));
        if (pos !== 1) problems.push('ArrowRight did not advance the epoch');
        document.body.dispatchEvent(new KeyboardEvent('keydown', { key: 'ArrowLeft', bubbles: true }));
        if (pos !== 0) problems.push('ArrowLeft did not go back');
      }
      if (D.kind === 'compare') {
        var t = $('diff-only');
        t.checked = false; t.dispatchEvent(new Event('change'));
        var all = $('config-table').querySelectorAll('tbody tr').length;
        var visible = Array.prototype.filter.call($('config-table').querySelectorAll('tbody tr'), function (r) { return r.offsetParent !== null; }).length;
        if (visible !== all) problems.push('diff toggle off hides rows');
        t.checked = true; t.dispatchEvent(new Event('change'));
      }
      return checkImages('final', seen);
    }).then(function () {
      var out = $('selftest');
      out.hidden = false;
      out.textContent = (problems.length ? 'SELFTEST FAIL' : 'SELFTEST PASS') +
        ' states=' + states.length + ' images=' + seen.count +
        ' svgs=' + document.querySelectorAll('svg').length +
        (problems.length ? '\n' + problems.join('\n') : '');
    });
  }
  if (location.hash === '#selftest') {
    selftest().catch(function (e) {
      var out = $('selftest');
      out.hidden = false;
      out.textContent = 'SELFTEST FAIL exception: ' + String(e && e.stack || e);
    });
  }
})();
