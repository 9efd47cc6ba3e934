// moirelab report pages: triage gallery (filters, sort, maps coloured in the browser from
// 8-bit strips), zoom dialog with filmstrip, epoch / alignment controls, URL-hash state,
// per-epoch tables, and a #selftest mode used by the headless-Chromium tests. Every user
// string reaches the DOM through textContent, never innerHTML.
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
  function short(v) {
    if (v === undefined || v === null) return '–';
    return Math.abs(v) >= 10 ? v.toFixed(1) : v.toFixed(2);
  }
  function pad2(i) { return String(i).padStart(2, '0'); }
  function option(sel, value, text) {
    var o = el('option', null, text);
    o.value = value;
    sel.appendChild(o);
  }

  var RUNS = D.runs || [];
  var SINGLE = D.kind === 'run';
  var KEY_REGIONS = ['flag', 'face', 'moire'];
  var REGION_LABEL = { moire: 'moiré' };
  function regionLabel(r) { return REGION_LABEL[r] || r; }
  var methods = [];
  var classes = [];
  var regions = [];
  RUNS.forEach(function (r) {
    r.methods.forEach(function (m) { if (methods.indexOf(m) < 0) methods.push(m); });
    r.classes.forEach(function (c) { if (classes.indexOf(c) < 0) classes.push(c); });
    Object.keys(r.dumps).forEach(function (ep) {
      var rows = r.dumps[ep].rows;
      Object.keys(rows).forEach(function (i) {
        var lift = rows[i].lift || {};
        Object.keys(lift).forEach(function (k) {
          Object.keys(lift[k]).forEach(function (reg) { if (regions.indexOf(reg) < 0) regions.push(reg); });
        });
      });
    });
  });
  regions.sort(function (a, b) {
    var ia = KEY_REGIONS.indexOf(a), ib = KEY_REGIONS.indexOf(b);
    return (ia < 0 ? 9 : ia) - (ib < 0 ? 9 : ib) || (a < b ? -1 : a > b ? 1 : 0);
  });
  RUNS.forEach(function (r) {
    r.dumped = Object.keys(r.dumps).map(Number).sort(function (a, b) { return a - b; });
  });
  var hasConflicting = RUNS.some(function (r) {
    return Object.keys(r.dumps).some(function (ep) {
      var rows = r.dumps[ep].rows;
      return Object.keys(rows).some(function (i) { return rows[i].aligned === false; });
    });
  });

  // ----- state -------------------------------------------------------------------------------
  var epochs = D.epochs || [];
  var FRAC_STEPS = 20;
  var DEFAULTS = {
    e: null, align: SINGLE ? 'epoch' : 'best', f: FRAC_STEPS, map: 'attack', m: methods[0] || '',
    view: 'grid', cls: '', grp: hasConflicting ? 'conflicting' : '', ok: '', reg: '', sort: 'flag',
    norm: 'image', op: 60, p: ''
  };
  var S = {};
  function resetState() {
    Object.keys(DEFAULTS).forEach(function (k) { S[k] = DEFAULTS[k]; });
    S.e = epochs.length ? epochs[epochs.length - 1] : null;
  }
  resetState();
  var CONTROL = {
    align: 'align', map: 'map', m: 'method', view: 'mode', cls: 'f-class', grp: 'f-group',
    ok: 'f-ok', reg: 'f-region', sort: 'sort', norm: 'norm'
  };
  function serialize() {
    var parts = [];
    Object.keys(DEFAULTS).forEach(function (k) {
      var v = S[k];
      if (v === null || v === undefined) return;
      parts.push(k + '=' + encodeURIComponent(String(v)));
    });
    return parts.join('&');
  }
  function validFor(k, v) {
    if (k === 'e') return epochs.indexOf(Number(v)) >= 0;
    if (k === 'f') return /^\d+$/.test(v) && Number(v) <= FRAC_STEPS;
    if (k === 'op') return /^\d+$/.test(v) && Number(v) <= 100;
    if (k === 'p') return D.probes.some(function (p) { return p.id === v; });
    var sel = $(CONTROL[k]);
    if (!sel) return false;
    return Array.prototype.some.call(sel.options, function (o) { return o.value === v; });
  }
  function parseHash(h) {
    var out = {};
    h.replace(/^#/, '').split('&').forEach(function (kv) {
      var i = kv.indexOf('=');
      if (i < 0) return;
      var k = kv.slice(0, i), v;
      try { v = decodeURIComponent(kv.slice(i + 1)); } catch (err) { return; }
      if (Object.prototype.hasOwnProperty.call(DEFAULTS, k) && validFor(k, v)) out[k] = v;
    });
    return out;
  }
  function applyHash(h) {
    var got = parseHash(h);
    Object.keys(got).forEach(function (k) {
      var v = got[k];
      S[k] = (k === 'e' || k === 'f' || k === 'op') ? Number(v) : v;
    });
    return Object.keys(got).length;
  }
  function writeHash() {
    document.body.setAttribute('data-state', serialize());
    if (location.hash === '#selftest') return;
    var h = '#' + serialize();
    if (location.hash === h) return;
    try { history.replaceState(null, '', h); } catch (err) { location.hash = h; }
  }

  // ----- epochs per run ----------------------------------------------------------------------
  function nearestDump(run, e) {
    if (!run.dumped.length || e === null || e === undefined) return null;
    var best = run.dumped[0];
    run.dumped.forEach(function (d) { if (Math.abs(d - e) < Math.abs(best - e)) best = d; });
    return best;
  }
  function runEpoch(ri) {
    var run = RUNS[ri];
    if (SINGLE || S.align === 'epoch') return S.e;
    if (S.align === 'best') return nearestDump(run, run.best !== null ? run.best : run.last);
    if (S.align === 'last') return nearestDump(run, run.last);
    var last = run.last || (run.dumped.length ? run.dumped[run.dumped.length - 1] : 0);
    return nearestDump(run, Math.round(S.f / FRAC_STEPS * last));
  }
  function prevDump(run, e) {
    var i = run.dumped.indexOf(e);
    return i > 0 ? run.dumped[i - 1] : null;
  }
  function rowOf(ri, cell, ep) {
    var d = ep === null ? null : RUNS[ri].dumps[String(ep)];
    return d && cell !== null && cell !== undefined ? d.rows[String(cell)] : undefined;
  }

  // ----- which maps, lifts -------------------------------------------------------------------
  function mapsFor(run, row) {
    var A = run.attack;
    if (!row) return [{ kind: 'pred', cls: null }];
    var pred = { kind: 'pred', cls: row.p }, tru = { kind: 'true', cls: row.t };
    if (S.map === 'pred') return [pred];
    if (S.map === 'true') return [tru];
    if (S.map === 'both') return row.ok ? [pred] : [pred, tru];
    if (row.p === A) return [pred];
    if (row.t === A) return [tru];
    return [pred];
  }
  function liftOf(row, kind, region) {
    var l = row && row.lift && row.lift[S.m + '/' + kind];
    return l && typeof l[region] === 'number' ? l[region] : null;
  }
  function topRegion(row, kind) {
    var l = row && row.lift && row.lift[S.m + '/' + kind];
    if (!l) return null;
    var best = null;
    Object.keys(l).forEach(function (r) {
      if (r === 'card' || typeof l[r] !== 'number') return;
      if (best === null || l[r] > l[best]) best = r;
    });
    return best;
  }
  function liftText(row, kind) {
    var l = row && row.lift && row.lift[S.m + '/' + kind];
    if (!l) return '';
    var keys = KEY_REGIONS.filter(function (r) { return typeof l[r] === 'number'; });
    var top = topRegion(row, kind);
    if (top && keys.indexOf(top) < 0) keys.push(top);
    return 'lift ' + keys.map(function (r) { return regionLabel(r) + ' ' + short(l[r]); }).join(' · ');
  }
  function change(ri, cell) {
    var run = RUNS[ri], ep = runEpoch(ri), prev = prevDump(run, ep);
    var now = rowOf(ri, cell, ep), before = rowOf(ri, cell, prev);
    if (!now || !before) return null;
    var kind = mapsFor(run, now)[0].kind, d = 0;
    KEY_REGIONS.forEach(function (r) {
      var a = liftOf(now, kind, r), b = liftOf(before, kind, r);
      if (a !== null && b !== null) d = Math.max(d, Math.abs(a - b));
    });
    if (typeof now.pa === 'number' && typeof before.pa === 'number') d = Math.max(d, Math.abs(now.pa - before.pa));
    return d;
  }
  function sortKey(item) {
    var vals = [];
    item.p.cells.forEach(function (cell, ri) {
      var row = item.rows[ri];
      if (!row) return;
      var kind = mapsFor(RUNS[ri], row)[0].kind;
      if (S.sort === 'flag') vals.push(liftOf(row, kind, 'flag'));
      else if (S.sort === 'moire') vals.push(liftOf(row, kind, 'moire'));
      else if (S.sort === 'pa') vals.push(typeof row.pa === 'number' ? row.pa : null);
      else if (S.sort === 'delta') vals.push(change(ri, cell));
    });
    vals = vals.filter(function (v) { return v !== null; });
    return vals.length ? Math.max.apply(null, vals) : null;
  }
  function visibleProbes() {
    var items = D.probes.map(function (p, i) {
      var rows = p.cells.map(function (cell, ri) { return rowOf(ri, cell, runEpoch(ri)); });
      return { p: p, i: i, rows: rows };
    });
    items = items.filter(function (it) {
      var rows = it.rows.filter(function (r) { return r; });
      if (S.cls && !rows.some(function (r) { return r.t === S.cls; })) return false;
      if (S.grp === 'aligned' && !rows.some(function (r) { return r.aligned === true; })) return false;
      if (S.grp === 'conflicting' && !rows.some(function (r) { return r.aligned === false; })) return false;
      if (S.ok === 'right' && (!rows.length || !rows.every(function (r) { return r.ok; }))) return false;
      if (S.ok === 'wrong' && !rows.some(function (r) { return !r.ok; })) return false;
      if (S.reg) {
        var hit = it.rows.some(function (r, ri) {
          return r && topRegion(r, mapsFor(RUNS[ri], r)[0].kind) === S.reg;
        });
        if (!hit) return false;
      }
      return true;
    });
    if (S.sort !== 'index') {
      items.forEach(function (it) { it.key = sortKey(it); });
      items.sort(function (a, b) {
        if (a.key === b.key) return a.i - b.i;
        if (a.key === null) return 1;
        if (b.key === null) return -1;
        return b.key - a.key;
      });
    }
    return items;
  }

  // ----- map pictures ------------------------------------------------------------------------
  var filterDefs = $('filter-defs');
  var madeFilters = {};
  function filterId(slope, icpt) {
    var a = Math.round(slope * 256), b = Math.round(icpt * 256);
    if (a === 256 && b === 0) return 'cm';
    var id = 'cm-' + a + '-' + b;
    if (madeFilters[id] || !filterDefs) return id;
    var NS = 'http://www.w3.org/2000/svg';
    var f = document.createElementNS(NS, 'filter');
    f.setAttribute('id', id);
    f.setAttribute('color-interpolation-filters', 'sRGB');
    var lin = document.createElementNS(NS, 'feComponentTransfer');
    ['feFuncR', 'feFuncG', 'feFuncB'].forEach(function (n) {
      var fn = document.createElementNS(NS, n);
      fn.setAttribute('type', 'linear');
      fn.setAttribute('slope', String(a / 256));
      fn.setAttribute('intercept', String(b / 256));
      lin.appendChild(fn);
    });
    f.appendChild(lin);
    f.appendChild($('cm-table').cloneNode(true)).removeAttribute('id');
    filterDefs.appendChild(f);
    madeFilters[id] = true;
    return id;
  }
  function mapLayer(ri, ep, cell, kind, opacity) {
    var run = RUNS[ri], d = run.dumps[String(ep)];
    var key = S.m + '/' + kind;
    var strip = d && d.maps && d.maps[key];
    if (strip && cell < strip.n) {
      var layer = el('div', 'layer');
      layer.style.backgroundImage = 'url("' + strip.url + '")';
      layer.style.backgroundSize = '100% ' + (strip.n * 100) + '%';
      layer.style.backgroundPosition = '0 ' + (strip.n > 1 ? cell / (strip.n - 1) * 100 : 0) + '%';
      var id = 'cm';
      var g = d.gmax && d.gmax[S.m];
      if (S.norm === 'epoch' && g > 0) id = filterId((strip.max[cell] - strip.min[cell]) / g, strip.min[cell] / g);
      layer.style.filter = 'url(#' + id + ')';
      layer.style.opacity = String(opacity);
      layer.setAttribute('data-bg', strip.url);
      return layer;
    }
    var t = d && d.tiles && d.tiles[String(cell)];
    var url = t && t[S.m] && t[S.m][kind];
    if (url) {
      var img = el('img', 'layer');
      img.src = url;
      img.alt = '';
      img.style.opacity = String(opacity);
      return img;
    }
    return null;
  }
  // A map over its input; `opacity` of the map (1 = the map alone).
  function stack(ri, ep, cell, kind, opacity, alt) {
    var run = RUNS[ri];
    var box = el('div', 'stack');
    var input = run.inputs[String(cell)];
    if (input) {
      var img = el('img', 'input');
      img.src = input;
      img.alt = alt;
      box.appendChild(img);
    } else box.classList.add('noinput');
    var layer = ep === null ? null : mapLayer(ri, ep, cell, kind, opacity);
    if (layer) box.appendChild(layer);
    else box.appendChild(el('div', 'missing', ep === null ? 'no dump' : 'map not available'));
    return box;
  }
  function inputTile(ri, cell, alt) {
    var f = el('figure', 'tile');
    var url = RUNS[ri].inputs[String(cell)];
    if (url) {
      var img = el('img', 'plain');
      img.src = url;
      img.alt = alt;
      f.appendChild(img);
    } else f.appendChild(el('div', 'missing', 'input not available'));
    f.appendChild(el('figcaption', 'cls', 'input'));
    return f;
  }
  function mapTile(ri, ep, cell, spec, row, probeId) {
    var run = RUNS[ri];
    var f = el('figure', 'tile map');
    f.tabIndex = 0;
    f.setAttribute('role', 'button');
    f.setAttribute('aria-label', 'enlarge ' + probeId + ' ' + run.name);
    f.appendChild(stack(ri, ep, cell, spec.kind, S.op / 100, probeId + ' ' + spec.kind + ' map'));
    if (!SINGLE) f.appendChild(el('figcaption', 'run-cap', run.name + (S.align !== 'epoch' ? ' · epoch ' + ep : '')));
    var what = spec.cls ? 'explains ' + spec.cls : 'class unknown';
    if (row && S.map === 'both' && row.ok) what += ' (pred = true)';
    f.appendChild(el('figcaption', spec.cls === run.attack ? 'explains attack' : 'explains', what));
    var lt = liftText(row, spec.kind);
    if (lt) f.appendChild(el('figcaption', 'lift', lt));
    f.addEventListener('click', function () { select(probeId); openZoom(); });
    return f;
  }
  function infoCell(it) {
    var box = el('div', 'pinfo');
    box.appendChild(el('div', 'probe-id', it.p.id));
    if (it.p.differs) box.appendChild(el('div', 'wrong', '≠ not the same image in every run'));
    var first = it.rows.filter(function (r) { return r; })[0];
    if (first) {
      box.appendChild(el('div', 'cls', 'true: ' + first.t));
      var g = Object.keys(first.groups || {}).map(function (k) { return k + '=' + first.groups[k]; });
      if (first.aligned === true) g.push('aligned');
      if (first.aligned === false) g.push('conflicting');
      if (g.length) box.appendChild(el('div', 'grp', g.join(' · ')));
    }
    it.rows.forEach(function (r, ri) {
      var run = RUNS[ri];
      var who = SINGLE ? '' : run.name + ': ';
      if (!r) {
        box.appendChild(el('div', 'na', who + (it.p.cells[ri] === null ? 'probe not in this run' : 'no dump at epoch ' + runEpoch(ri))));
        return;
      }
      var t = who + 'pred ' + r.p + (typeof r.pa === 'number' ? ' · P(' + run.attack + ') ' + short(r.pa) : '');
      box.appendChild(el('div', r.ok ? 'right' : 'wrong', (r.ok ? '✓ ' : '✗ ') + t));
    });
    return box;
  }
  function probeRow(it) {
    var row = el('div', 'prow');
    row.setAttribute('data-id', it.p.id);
    if (it.p.id === S.p) row.classList.add('sel');
    row.appendChild(infoCell(it));
    var tiles = el('div', 'ptiles');
    var firstRun = it.p.cells.findIndex(function (c) { return c !== null; });
    if (firstRun >= 0) tiles.appendChild(inputTile(firstRun, it.p.cells[firstRun], it.p.id + ' input'));
    it.p.cells.forEach(function (cell, ri) {
      if (cell === null) return;
      var ep = runEpoch(ri);
      var r = it.rows[ri];
      mapsFor(RUNS[ri], r).forEach(function (spec) {
        tiles.appendChild(mapTile(ri, ep, cell, spec, r, it.p.id));
      });
    });
    row.appendChild(tiles);
    row.addEventListener('click', function (e) {
      if (e.target.closest && e.target.closest('.map')) return;
      select(it.p.id);
    });
    return row;
  }

  // ----- gallery -----------------------------------------------------------------------------
  var current = [];
  function renderGrid(view) {
    if (!epochs.length) { view.appendChild(el('p', 'note', 'No epochs yet.')); return; }
    var anyDump = RUNS.some(function (r, ri) { return runEpoch(ri) !== null && r.dumps[String(runEpoch(ri))]; });
    if (!anyDump) {
      view.appendChild(el('p', 'note', 'No Grad-CAM dump at epoch ' + S.e + ' (metrics only). Move the slider to an epoch with a dump.'));
      current = [];
      $('count').textContent = '';
      return;
    }
    current = visibleProbes();
    $('count').textContent = current.length + ' of ' + D.probes.length + ' probes';
    if (!current.length) view.appendChild(el('p', 'note', 'No probe matches these filters.'));
    var frag = document.createDocumentFragment();
    current.forEach(function (it) { frag.appendChild(probeRow(it)); });
    view.appendChild(frag);
  }
  function renderFilm(view) {
    current = visibleProbes();
    $('count').textContent = current.length + ' of ' + D.probes.length + ' probes';
    var it = current.filter(function (x) { return x.p.id === S.p; })[0] || current[0];
    if (!it) { view.appendChild(el('p', 'note', 'No probe matches these filters.')); return; }
    var cell = it.p.cells[0];
    view.appendChild(el('h3', 'probe-id', it.p.id));
    var gifs = D.gifs && D.gifs[String(cell)];
    if (gifs) {
      var g = el('div', 'gifs');
      Object.keys(gifs).forEach(function (m) {
        var f = el('figure', 'tile');
        var img = el('img', 'plain');
        img.src = gifs[m];
        img.alt = 'animated ' + m + ' overlay across epochs';
        f.appendChild(img);
        f.appendChild(el('figcaption', null, m + ' overlay, all epochs (GIF)'));
        g.appendChild(f);
      });
      view.appendChild(g);
    }
    RUNS[0].dumped.forEach(function (ep) {
      var r = rowOf(0, cell, ep);
      var row = el('div', 'prow' + (ep === S.e ? ' cur' : ''));
      var info = el('div', 'pinfo');
      info.appendChild(el('div', 'cls', 'epoch ' + ep));
      if (r) info.appendChild(el('div', r.ok ? 'right' : 'wrong', (r.ok ? '✓ pred ' : '✗ pred ') + r.p + (typeof r.pa === 'number' ? ' · P(' + RUNS[0].attack + ') ' + short(r.pa) : '')));
      row.appendChild(info);
      var tiles = el('div', 'ptiles');
      mapsFor(RUNS[0], r).forEach(function (spec) { tiles.appendChild(mapTile(0, ep, cell, spec, r, it.p.id)); });
      row.appendChild(tiles);
      view.appendChild(row);
    });
  }
  function colourbar() {
    var note = $('cbar-note');
    if (!note) return;
    if (S.norm === 'epoch') {
      $('cbar-low').textContent = '0';
      $('cbar-high').textContent = 'epoch max';
      note.textContent = 'normalised per epoch: one scale for all probes of a run\'s epoch and method (0 … the largest map value of that epoch), so intensities compare across probes';
    } else {
      $('cbar-low').textContent = 'map min';
      $('cbar-high').textContent = 'map max';
      note.textContent = 'normalised per image: each map spans its own min … max, so only where it looks compares across probes, not how strongly';
    }
  }
  function label() {
    var out = $('epoch-label');
    if (!epochs.length) { out.textContent = 'no epochs yet'; return; }
    if (SINGLE || S.align === 'epoch') {
      out.textContent = 'epoch ' + S.e + ' (' + (epochs.indexOf(S.e) + 1) + '/' + epochs.length + ')';
    } else {
      var parts = RUNS.map(function (r, ri) { return r.name + ' @ ' + runEpoch(ri); });
      var what = S.align === 'frac' ? Math.round(S.f / FRAC_STEPS * 100) + '% of training: ' : S.align + ': ';
      out.textContent = what + parts.join(' · ');
    }
  }
  function syncControls() {
    Object.keys(CONTROL).forEach(function (k) {
      var c = $(CONTROL[k]);
      if (c) c.value = S[k];
    });
    $('opacity').value = String(S.op);
    var slider = $('epoch');
    var byEpoch = SINGLE || S.align === 'epoch';
    $('slider-box').hidden = !(byEpoch || S.align === 'frac');
    if (byEpoch) {
      slider.max = String(Math.max(0, epochs.length - 1));
      slider.value = String(Math.max(0, epochs.indexOf(S.e)));
      slider.disabled = epochs.length < 2;
      slider.setAttribute('aria-label', 'epoch');
    } else {
      slider.max = String(FRAC_STEPS);
      slider.value = String(S.f);
      slider.disabled = false;
      slider.setAttribute('aria-label', 'fraction of training');
    }
  }
  function render() {
    syncControls();
    label();
    colourbar();
    var view = $('view');
    view.textContent = '';
    if (SINGLE && S.view === 'film') renderFilm(view); else renderGrid(view);
    if (SINGLE) renderRunMetrics();
    if (!$('zoom').hidden) fillZoom();
    writeHash();
  }
  function step(delta) {
    if (SINGLE || S.align === 'epoch') {
      if (!epochs.length) return;
      var i = Math.min(epochs.length - 1, Math.max(0, epochs.indexOf(S.e) + delta));
      S.e = epochs[i];
    } else if (S.align === 'frac') {
      S.f = Math.min(FRAC_STEPS, Math.max(0, S.f + delta));
    } else {
      return;
    }
    render();
  }
  function select(id) {
    S.p = id;
    Array.prototype.forEach.call(document.querySelectorAll('.prow.sel'), function (r) { r.classList.remove('sel'); });
    var row = document.querySelector('.prow[data-id="' + CSS.escape(id) + '"]');
    if (row) {
      row.classList.add('sel');
      if (row.scrollIntoView) row.scrollIntoView({ block: 'nearest' });
    }
    if (!$('zoom').hidden) fillZoom();
    writeHash();
  }
  function moveProbe(delta) {
    if (!current.length) return;
    var i = current.findIndex(function (it) { return it.p.id === S.p; });
    i = i < 0 ? (delta > 0 ? 0 : current.length - 1) : Math.min(current.length - 1, Math.max(0, i + delta));
    select(current[i].p.id);
  }

  // ----- zoom dialog -------------------------------------------------------------------------
  var lastFocus = null;
  function openZoom() {
    if (!S.p && current.length) S.p = current[0].p.id;
    if (!S.p) return;
    lastFocus = document.activeElement;
    $('zoom').hidden = false;
    fillZoom();
    $('zoom-close').focus();
  }
  function closeZoom() {
    $('zoom').hidden = true;
    if (lastFocus && lastFocus.focus) lastFocus.focus();
  }
  function fillZoom() {
    var body = $('zoom-body');
    body.textContent = '';
    var p = D.probes.filter(function (x) { return x.id === S.p; })[0];
    if (!p) { closeZoom(); return; }
    $('zoom-title').textContent = p.id + ' · ' + $('epoch-label').textContent;
    var ri0 = p.cells.findIndex(function (c) { return c !== null; });
    var cell0 = p.cells[ri0], ep0 = runEpoch(ri0), row0 = rowOf(ri0, cell0, ep0);
    var specs0 = mapsFor(RUNS[ri0], row0);
    var big = el('div', 'zoom-big');
    var fi = el('figure', 'big');
    var input = RUNS[ri0].inputs[String(cell0)];
    if (input) { var img = el('img', 'plain'); img.src = input; img.alt = p.id + ' input'; fi.appendChild(img); }
    fi.appendChild(el('figcaption', null, 'input' + (row0 ? ' · true ' + row0.t : '')));
    big.appendChild(fi);
    var fm = el('figure', 'big');
    fm.appendChild(stack(ri0, ep0, cell0, specs0[0].kind, S.op / 100, p.id + ' map'));
    fm.appendChild(el('figcaption', null, RUNS[ri0].name + ' · epoch ' + ep0 + ' · ' + (specs0[0].cls ? 'explains ' + specs0[0].cls : '') + ' · ' + liftText(row0, specs0[0].kind)));
    big.appendChild(fm);
    body.appendChild(big);
    // The other maps of this probe: the other target on the run page, the other runs here.
    var others = el('div', 'zoom-others');
    p.cells.forEach(function (cell, ri) {
      if (cell === null) return;
      var ep = runEpoch(ri), row = rowOf(ri, cell, ep);
      mapsFor(RUNS[ri], row).concat(SINGLE && row && !row.ok && S.map !== 'both' ? [{ kind: specs0[0].kind === 'pred' ? 'true' : 'pred', cls: specs0[0].kind === 'pred' ? row.t : row.p }] : [])
        .forEach(function (spec, k) {
          if (ri === ri0 && k === 0) return;
          var f = el('figure', 'mid');
          f.appendChild(stack(ri, ep, cell, spec.kind, S.op / 100, p.id + ' ' + RUNS[ri].name));
          f.appendChild(el('figcaption', null, RUNS[ri].name + ' · epoch ' + ep + ' · explains ' + (spec.cls || '?')));
          f.appendChild(el('figcaption', 'lift', liftText(row, spec.kind)));
          others.appendChild(f);
        });
    });
    if (others.childNodes.length) body.appendChild(others);
    // Filmstrip: the same map of every dumped epoch, per run.
    p.cells.forEach(function (cell, ri) {
      if (cell === null) return;
      var run = RUNS[ri];
      var strip = el('div', 'film');
      strip.appendChild(el('div', 'film-name', run.name + ' across epochs'));
      var row = el('div', 'film-row');
      run.dumped.forEach(function (ep) {
        var r = rowOf(ri, cell, ep);
        var spec = mapsFor(run, r)[0];
        var f = el('figure', 'mini' + (ep === runEpoch(ri) ? ' cur' : ''));
        f.appendChild(stack(ri, ep, cell, spec.kind, S.op / 100, 'epoch ' + ep));
        var fl = liftOf(r, spec.kind, 'flag');
        f.appendChild(el('figcaption', r && !r.ok ? 'wrong' : null, 'ep ' + ep + (fl !== null ? ' · flag ' + short(fl) : '')));
        f.title = 'show epoch ' + ep;
        f.addEventListener('click', function () {
          if (!SINGLE) S.align = 'epoch';
          S.e = epochs.indexOf(ep) >= 0 ? ep : S.e;
          render();
        });
        row.appendChild(f);
      });
      strip.appendChild(row);
      body.appendChild(strip);
    });
  }

  // ----- run metrics -------------------------------------------------------------------------
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
    var wrap = el('div', 'hscroll');
    wrap.appendChild(t);
    return wrap;
  }
  function confusion(e) {
    var wrap = el('div');
    wrap.appendChild(el('h3', null, 'Confusion matrix · ' + e.split + ' (rows: true, columns: predicted)'));
    var t = el('table', 'confusion');
    var hr = el('tr');
    hr.appendChild(el('th', null, 'true \\ pred'));
    var n = e.confusion.length;
    function cname(i) { return classes[i] !== undefined ? classes[i] : 'class ' + i; }
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
    var wrap = el('div', 'hscroll');
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
    if (!box) return;
    box.textContent = '';
    var epoch = S.e;
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

  // ----- wiring ------------------------------------------------------------------------------
  var ms = $('method');
  methods.forEach(function (m) { option(ms, m, m); });
  var cs = $('f-class');
  classes.forEach(function (c) { option(cs, c, c); });
  var rs = $('f-region');
  regions.filter(function (r) { return r !== 'card'; }).forEach(function (r) { option(rs, r, regionLabel(r)); });
  Object.keys(CONTROL).forEach(function (k) {
    var c = $(CONTROL[k]);
    if (!c) return;
    c.addEventListener('change', function () { S[k] = c.value; render(); });
  });
  $('opacity').addEventListener('input', function () {
    S.op = Number($('opacity').value);
    Array.prototype.forEach.call(document.querySelectorAll('.stack .layer'), function (l) { l.style.opacity = String(S.op / 100); });
    writeHash();
  });
  var slider = $('epoch');
  slider.addEventListener('input', function () {
    if (SINGLE || S.align === 'epoch') S.e = epochs[Number(slider.value)];
    else S.f = Number(slider.value);
    render();
  });
  $('prev').addEventListener('click', function () { step(-1); });
  $('next').addEventListener('click', function () { step(1); });
  $('zoom-close').addEventListener('click', closeZoom);
  $('zoom').addEventListener('click', function (e) { if (e.target === $('zoom')) closeZoom(); });
  document.addEventListener('keydown', function (e) {
    if (e.altKey || e.ctrlKey || e.metaKey) return;
    var tag = e.target && e.target.tagName;
    if (e.key === 'Escape' && !$('zoom').hidden) { e.preventDefault(); closeZoom(); return; }
    if (tag === 'INPUT' || tag === 'SELECT' || tag === 'TEXTAREA') return;
    if (e.key === 'ArrowLeft') { e.preventDefault(); step(-1); }
    else if (e.key === 'ArrowRight') { e.preventDefault(); step(1); }
    else if (e.key === 'ArrowDown') { e.preventDefault(); moveProbe(1); }
    else if (e.key === 'ArrowUp') { e.preventDefault(); moveProbe(-1); }
    else if (e.key === 'Enter' && tag !== 'BUTTON' && tag !== 'A') {
      e.preventDefault();
      var row = e.target && e.target.closest && e.target.closest('.prow');
      if (row && row.getAttribute('data-id')) select(row.getAttribute('data-id'));
      openZoom();
    }
  });
  window.addEventListener('hashchange', function () {
    if (location.hash === '#selftest') return;
    if (applyHash(location.hash)) render();
  });
  var toggle = $('diff-only');
  if (toggle) {
    toggle.addEventListener('change', function () {
      $('config-table').classList.toggle('diff-only', toggle.checked);
    });
  }
  if (location.hash !== '#selftest') applyHash(location.hash);
  render();
  document.body.setAttribute('data-ready-ms', String(Math.round(performance.now())));

  // ----- #selftest ---------------------------------------------------------------------------
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
  var bgSeen = {};
  function checkBackgrounds(state, seen) {
    var urls = {};
    Array.prototype.forEach.call(document.querySelectorAll('[data-bg]'), function (l) { urls[l.getAttribute('data-bg')] = true; });
    return Promise.all(Object.keys(urls).filter(function (u) { return !bgSeen[u]; }).map(function (u) {
      bgSeen[u] = true;
      return new Promise(function (res) {
        var i = new Image();
        i.onload = function () { seen.count += 1; if (!i.naturalWidth) problems.push(state + ': empty map strip ' + u); res(); };
        i.onerror = function () { problems.push(state + ': map strip did not load: ' + u); res(); };
        i.src = u;
      });
    }));
  }
  function checkImages(state, seen) {
    return imagesSettled().then(function (imgs) {
      imgs.forEach(function (i) {
        seen.count += 1;
        if (!(i.complete && i.naturalWidth > 0)) problems.push(state + ': image did not load: ' + i.getAttribute('src'));
      });
      return checkBackgrounds(state, seen);
    });
  }
  function key(k) { document.body.dispatchEvent(new KeyboardEvent('keydown', { key: k, bubbles: true })); }
  function fire(c, type) { c.dispatchEvent(new Event(type)); }
  function layoutChecks(where) {
    var w = document.documentElement.clientWidth;
    if (document.documentElement.scrollWidth > w + 1) problems.push(where + ': page scrolls sideways (' + document.documentElement.scrollWidth + ' > ' + w + ')');
    // Scroll into the gallery (the bar sticks within its section) and look at the bar.
    var g = $('gallery');
    var barH = $('controls').getBoundingClientRect().height;
    var y = g.offsetTop + Math.max(0, Math.min(600, g.offsetHeight - 2 * barH - 20));
    window.scrollTo(0, y);
    var bar = $('controls').getBoundingClientRect();
    if (bar.top < -1) problems.push(where + ': controls bar scrolled away (top ' + bar.top + ')');
    [[bar.left + 20, bar.top + 10], [bar.right - 20, bar.bottom - 8]].forEach(function (pt) {
      var hit = document.elementFromPoint(pt[0], pt[1]);
      if (hit && !$('controls').contains(hit)) problems.push(where + ': controls bar covered by <' + hit.tagName.toLowerCase() + ' class="' + hit.className + '">');
    });
    window.scrollTo(0, 0);
  }
  function selftest() {
    var seen = { count: 0 };
    var states = [];
    var maps = ['attack', 'both', 'pred', 'true'];
    var aligns = SINGLE ? ['epoch'] : ['best', 'last', 'epoch', 'frac'];
    aligns.forEach(function (al) {
      maps.forEach(function (mp, mi) {
        (methods.length ? methods : ['']).forEach(function (m) {
          var n = al === 'epoch' ? Math.max(1, epochs.length) : al === 'frac' ? 3 : 1;
          for (var i = 0; i < n; i++) {
            states.push({ align: al, map: mp, m: m, i: i, norm: (i + mi) % 2 ? 'epoch' : 'image', grp: '' });
          }
        });
      });
    });
    if (SINGLE) D.probes.forEach(function (p) { states.push({ align: 'epoch', view: 'film', p: p.id, i: epochs.length - 1, map: 'attack', m: methods[0] || '', norm: 'image', grp: '' }); });
    var chain = Promise.resolve();
    states.forEach(function (s) {
      chain = chain.then(function () {
        resetState();
        S.align = s.align; S.map = s.map; S.m = s.m; S.norm = s.norm; S.grp = s.grp;
        if (s.view) { S.view = s.view; S.p = s.p; }
        if (s.align === 'epoch' && epochs.length) S.e = epochs[s.i];
        if (s.align === 'frac') S.f = Math.round(s.i * FRAC_STEPS / 2);
        render();
        var shown = $('epoch-label').textContent;
        if (epochs.length && (SINGLE || s.align === 'epoch') && shown.indexOf('epoch ' + S.e + ' ') !== 0) problems.push('label shows "' + shown + '" at epoch ' + S.e);
        return checkImages(JSON.stringify(s), seen);
      });
    });
    return chain.then(function () {
      resetState();
      render();
      // Every control: each option of each select, the slider, the buttons.
      Array.prototype.forEach.call(document.querySelectorAll('#controls select'), function (c) {
        Array.prototype.forEach.call(c.options, function (o) {
          c.value = o.value; fire(c, 'change');
          if (S[Object.keys(CONTROL).filter(function (k) { return CONTROL[k] === c.id; })[0]] !== o.value) problems.push('select #' + c.id + ' = ' + o.value + ' did not reach the state');
        });
      });
      resetState(); S.grp = ''; S.align = SINGLE ? 'epoch' : 'epoch'; render();
      if (epochs.length > 1) {
        S.e = epochs[0]; render();
        $('next').click();
        if (S.e !== epochs[1]) problems.push('→ button did not advance the epoch');
        $('prev').click();
        if (S.e !== epochs[0]) problems.push('← button did not go back');
        slider.value = '1'; fire(slider, 'input');
        if (S.e !== epochs[1]) problems.push('slider did not set the epoch');
        key('ArrowLeft');
        if (S.e !== epochs[0]) problems.push('ArrowLeft did not go back');
        key('ArrowRight');
        if (S.e !== epochs[1]) problems.push('ArrowRight did not advance the epoch');
      }
      $('opacity').value = '30'; fire($('opacity'), 'input');
      var layer = document.querySelector('.stack .layer');
      if (layer && layer.style.opacity !== '0.3') problems.push('opacity slider did not reach the maps');
      if (current.length > 1) {
        S.p = ''; key('ArrowDown');
        if (S.p !== current[0].p.id) problems.push('ArrowDown did not select the first probe');
        key('ArrowDown');
        if (S.p !== current[1].p.id) problems.push('ArrowDown did not move to the next probe');
        key('ArrowUp');
        if (S.p !== current[0].p.id) problems.push('ArrowUp did not move back');
        if (!document.querySelector('.prow.sel')) problems.push('selected probe is not highlighted');
      }
      if (current.length) {
        var tileEl = document.querySelector('.tile.map');
        if (tileEl) tileEl.click();
        if ($('zoom').hidden) problems.push('clicking a map did not open the zoom');
        var big = document.querySelector('#zoom .big .stack, #zoom .big img');
        if (!big) problems.push('zoom shows no picture');
        else if (big.getBoundingClientRect().width < 384) problems.push('zoomed map is ' + big.getBoundingClientRect().width + ' px wide, want 384-512');
        if (!document.querySelector('#zoom .film .mini')) problems.push('zoom has no filmstrip');
      }
      return checkImages('zoom', seen);
    }).then(function () {
      key('Escape');
      if (!$('zoom').hidden) problems.push('Escape did not close the zoom');
      // URL state round trip.
      resetState();
      S.e = epochs.length ? epochs[0] : null; S.map = 'both'; S.sort = 'pa'; S.grp = 'aligned'; S.ok = 'wrong';
      S.norm = 'epoch'; S.op = 35; S.p = D.probes.length ? D.probes[D.probes.length - 1].id : '';
      if (!SINGLE) { S.align = 'frac'; S.f = 7; }
      var want = JSON.stringify(S);
      var h = '#' + serialize();
      resetState();
      applyHash(h);
      if (JSON.stringify(S) !== want) problems.push('URL state round trip: ' + h + ' gave ' + JSON.stringify(S) + ', want ' + want);
      applyHash('#e=99999&sort=%3Cscript%3E&p=nope&op=500');
      if (JSON.stringify(S) !== want) problems.push('invalid hash values changed the state');
      resetState();
      render();
      if (!SINGLE) {
        var t = $('diff-only');
        t.checked = false; fire(t, 'change');
        var all = $('config-table').querySelectorAll('tbody tr').length;
        var visible = Array.prototype.filter.call($('config-table').querySelectorAll('tbody tr'), function (r) { return r.offsetParent !== null; }).length;
        if (visible !== all) problems.push('diff toggle off hides rows');
        t.checked = true; fire(t, 'change');
      }
      layoutChecks('default view');
      return checkImages('final', seen);
    }).then(function () {
      var out = $('selftest');
      out.hidden = false;
      out.textContent = (problems.length ? 'SELFTEST FAIL' : 'SELFTEST PASS') +
        ' states=' + states.length + ' images=' + seen.count +
        ' svgs=' + document.querySelectorAll('svg').length +
        ' width=' + document.documentElement.clientWidth +
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
