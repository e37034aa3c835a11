// techmon KPI dashboard: plain JavaScript over the query API (same origin), charts as
// hand-made inline SVG. Data is only ever put into the page with textContent or
// setAttribute, never as HTML.
'use strict';

(() => {
  const TOKEN_KEY = 'techmon-token';
  const VERSIONS_HEADER = 'techmon-table-versions';
  const MAX_ROWS = 1000;
  const SVG_NS = 'http://www.w3.org/2000/svg';

  const KPI_ORDER = [
    'po_participation_share', 'vo_pupils', 'mbo_students', 'parents',
    'teachers_professionalised', 'technical_profile_change_vs_2022', 'satisfaction',
    'affiliated_organisations', 'ambassadors',
  ];
  const KPI_LABELS = {
    po_participation_share: 'PO pupils reached (share)',
    vo_pupils: 'VO pupils reached',
    mbo_students: 'MBO students reached',
    parents: 'Parents reached',
    teachers_professionalised: 'Teachers professionalised',
    technical_profile_change_vs_2022: 'Technical profile choice vs 2022/23',
    satisfaction: 'Satisfaction (of 10)',
    affiliated_organisations: 'Affiliated organisations',
    ambassadors: 'Ambassadors',
  };
  const BANDS = ['groep_1_2', 'groep_3_6', 'groep_7_8'];
  const BAND_LABELS = { groep_1_2: 'groep 1–2', groep_3_6: 'groep 3–6', groep_7_8: 'groep 7–8' };
  const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
  // One accent colour per series; series are also told apart by line style, marker
  // shape or fill pattern, and named in the legend and the data tables.
  const COLOURS = {
    scope: '#1d5fbf', national: '#6b7280', baseline: '#b45309', actual: '#1d5fbf', target: '#111827',
  };
  const HUB_COLOURS = ['#1d5fbf', '#0f766e', '#b45309', '#7c3aed', '#be185d', '#4d7c0f'];

  // The SQL the page sends (besides GET /v1/kpis). Values spliced in are quoted with
  // `literal` or are integers.
  const SQL = {
    hubs: 'SELECT hub_id, name, municipality, region_id FROM hubs ORDER BY name',
    regions: 'SELECT region_id, name FROM regions ORDER BY name',
    years: 'SELECT year, school_year FROM kpi_years ORDER BY year',
    // Ambassadors and affiliated organisations count cumulatively, into every later
    // year: they do not tell which years have data.
    latestYear: 'SELECT max(year) AS year FROM kpi_report WHERE actual IS NOT NULL AND numerator IS NOT NULL ' +
      "AND kpi NOT IN ('ambassadors', 'affiliated_organisations')",
    technicalShare: (choice) =>
      'SELECT scope, region_id, school_year, share_pct, share_min_pct, share_max_pct, suppressed_cells ' +
      "FROM technical_profile_share WHERE track = 'all' AND ((" + scopeSql('scope', choice) + ") OR scope = 'national') " +
      'ORDER BY school_year, scope',
    activities: (choice, year) =>
      'SELECT hub_id, y, m, sum(activities) AS activities FROM (' +
      "SELECT hub_id, CAST(date_part('year', month) AS INT) AS y, CAST(date_part('month', month) AS INT) AS m, activities " +
      'FROM activities_per_month) ' +
      `WHERE y * 100 + m BETWEEN ${year * 100 + 8} AND ${(year + 1) * 100 + 7}` +
      (choice.scope === 'regions' ? ''
        : choice.scope === 'region' ? ' AND hub_id IN (SELECT hub_id FROM hubs WHERE region_id = ' + literal(choice.region) + ')'
          : ' AND hub_id = ' + literal(choice.scope)) +
      ' GROUP BY hub_id, y, m ORDER BY y, m, hub_id',
    satisfaction: (choice) =>
      'SELECT year, school_year, actual, target, denominator FROM kpi_report ' +
      "WHERE kpi = 'satisfaction' AND " + scopeSql('hub_id', choice) + ' ORDER BY year',
  };

  // A choice of #filter-hub: a hub id, a region (`region:<id>`) or all regions
  // (`regions`, where there are several), as the views' scope and region_id.
  function choiceOf(key) {
    return key.startsWith('region:') ? { scope: 'region', region: key.slice(7) } : { scope: key, region: null };
  }

  // Whether `row` (its `column` the scope, and region_id) is of `choice`.
  function isOf(row, column, choice) {
    return row[column] === choice.scope && (choice.scope !== 'region' || row.region_id === choice.region);
  }

  // The SQL condition on `column` (and region_id) for `choice`.
  function scopeSql(column, choice) {
    return `${column} = ${literal(choice.scope)}` +
      (choice.scope === 'region' ? ` AND region_id = ${literal(choice.region)}` : '');
  }

  // The name of an effect row's scope: a hub's, a region's, or all regions'.
  function labelOf(row) {
    const key = row.scope === 'region' ? `region:${row.region_id}` : row.scope;
    return hubNames.get(key) || key;
  }

  // Whether `choice` is several hubs together.
  const isArea = (choice) => choice.scope === 'region' || choice.scope === 'regions';

  const $ = (id) => document.getElementById(id);
  let token = null;
  let generation = 0;
  let lastRun = null; // {sql, versions} of the console's last answer
  let hubNames = new Map();
  let hubOrder = [];
  let schoolYears = new Map();

  // ---------------------------------------------------------------- helpers

  function literal(text) {
    return "'" + String(text).replace(/'/g, "''") + "'";
  }

  function schoolYearOf(year) {
    return schoolYears.get(year) || `${year}/${String((year + 1) % 100).padStart(2, '0')}`;
  }

  function html(tag, attrs = {}, ...children) {
    const e = document.createElement(tag);
    setAttrs(e, attrs);
    append(e, children);
    return e;
  }

  function svg(tag, attrs = {}, ...children) {
    const e = document.createElementNS(SVG_NS, tag);
    setAttrs(e, attrs);
    append(e, children);
    return e;
  }

  function setAttrs(e, attrs) {
    for (const [k, v] of Object.entries(attrs)) {
      if (v === null || v === undefined || v === false) continue;
      if (k === 'text') e.textContent = String(v);
      else e.setAttribute(k, v === true ? '' : String(v));
    }
  }

  function append(parent, children) {
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      parent.appendChild(typeof c === 'string' ? document.createTextNode(c) : c);
    }
  }

  const tip = (text) => svg('title', { text });

  function num(v) {
    return v === null || v === undefined || v === '' || !Number.isFinite(Number(v)) ? null : Number(v);
  }

  function fmt(value, unit) {
    const v = num(value);
    if (v === null) return '—';
    switch (unit) {
      case 'percent': return `${v.toFixed(1)} %`;
      case 'score_10': return v.toFixed(1);
      case 'percent_change': {
        const r = Number(v.toFixed(1));
        const sign = r > 0 ? '+' : r < 0 ? '−' : '±';
        return `${sign}${Math.abs(r).toFixed(1)} pp`;
      }
      case 'count': return Math.round(v).toLocaleString('en-GB');
      default: return String(Number(v.toFixed(2)));
    }
  }

  function setState(state) {
    document.body.dataset.state = state;
  }

  // ---------------------------------------------------------------- token

  function storeToken(value) {
    try {
      if (value) sessionStorage.setItem(TOKEN_KEY, value);
      else sessionStorage.removeItem(TOKEN_KEY);
    } catch (_) { /* storage disabled: the token lives in memory only */ }
  }

  // The token comes in the URL fragment (never sent to the server), is kept in
  // session storage and taken out of the visible URL.
  function readFragment() {
    const params = new URLSearchParams(location.hash.replace(/^#/, ''));
    const fromUrl = params.get('token');
    const wanted = { hub: params.get('hub'), year: num(params.get('year')) };
    if (fromUrl !== null) {
      params.delete('token');
      const rest = params.toString();
      history.replaceState(null, '', location.pathname + location.search + (rest ? '#' + rest : ''));
      if (fromUrl.trim()) storeToken(fromUrl.trim());
    }
    let stored = null;
    try { stored = sessionStorage.getItem(TOKEN_KEY); } catch (_) { /* none */ }
    return { token: (fromUrl && fromUrl.trim()) || stored || null, wanted };
  }

  function showPrompt(message) {
    setState('needs-token');
    $('dashboard').hidden = true;
    $('token-prompt').hidden = false;
    const error = $('auth-error');
    error.hidden = !message;
    error.textContent = message || '';
    $('token-state').textContent = token ? 'Token refused' : 'No token';
    $('token-forget').hidden = !token;
    $('versions').textContent = '—';
    $('token-input').focus();
  }

  function showDashboard() {
    $('token-prompt').hidden = true;
    $('dashboard').hidden = false;
    $('token-state').textContent = 'Using a query token';
    $('token-forget').hidden = false;
  }

  const isAuthError = (e) => e && (e.status === 401 || e.status === 403);

  function authFailed(e) {
    const what = e.status === 401 ? 'The server did not accept this token' : 'This token may not query';
    showPrompt(`${what} (${e.status} ${e.code}): ${e.message}`);
  }

  // ---------------------------------------------------------------- API

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  async function errorOf(response) {
    let code = `http_${response.status}`;
    let message = response.statusText || 'the request failed';
    const text = await response.text().catch(() => '');
    try {
      const body = JSON.parse(text);
      // techmon answers {"error": {"code", "message"}}; accept a flat {"code", "message"} too.
      const detail = body && typeof body.error === 'object' && body.error ? body.error : body;
      if (detail && detail.code) code = String(detail.code);
      if (detail && detail.message) message = String(detail.message);
    } catch (_) {
      if (text.trim()) message = text.trim().slice(0, 500);
    }
    return new ApiError(response.status, code, message);
  }

  async function request(method, path, { body, accept = 'application/json', versions } = {}) {
    const headers = { Authorization: `Bearer ${token}`, Accept: accept };
    if (body !== undefined) headers['Content-Type'] = 'text/plain; charset=utf-8';
    if (versions) headers[VERSIONS_HEADER] = versions;
    let response;
    try {
      response = await fetch(path, { method, headers, body, cache: 'no-store', credentials: 'omit' });
    } catch (e) {
      throw new ApiError(0, 'network', `the server did not answer (${e.message})`);
    }
    if (!response.ok) throw await errorOf(response);
    return response;
  }

  // The versions an answer was computed from, as `table=version,...`.
  function versionsOf(header, body) {
    if (header !== null) return header;
    if (typeof body === 'string') return body;
    if (body && typeof body === 'object') {
      return Object.keys(body).sort().map((k) => `${k}=${body[k]}`).join(',');
    }
    return '';
  }

  async function jsonAnswer(method, path, options) {
    const response = await request(method, path, options);
    const answer = await response.json();
    const rows = Array.isArray(answer.rows) ? answer.rows : [];
    return {
      columns: Array.isArray(answer.columns) ? answer.columns : [],
      rows,
      rowCount: Number.isFinite(answer.row_count) ? answer.row_count : rows.length,
      versions: versionsOf(response.headers.get(VERSIONS_HEADER), answer.table_versions),
      pinned: Boolean(options && options.versions),
      // What output control left out (a researcher's answers): blanks are protected.
      suppressed: answer.suppressed || null,
    };
  }

  const runSql = (text, options = {}) => jsonAnswer('POST', '/v1/sql', { ...options, body: text });

  // The effect estimates of every scope the token sees (a hub: its own, its region's
  // and all regions').
  async function effectAnswer(versions) {
    const response = await request('GET', '/v1/effects?track=all', { versions });
    const answer = await response.json();
    return {
      versions: versionsOf(response.headers.get(VERSIONS_HEADER), answer.table_versions),
      estimates: Array.isArray(answer.estimates) ? answer.estimates : [],
      events: Array.isArray(answer.event_study) ? answer.event_study : [],
    };
  }

  // A query pinned to `versions` (when given); if those versions are gone, the latest.
  async function pinned(run, versions) {
    try {
      return await run(versions || undefined);
    } catch (e) {
      if (versions && e.code === 'version_unavailable') {
        const answer = await run(undefined);
        answer.repinned = true;
        return answer;
      }
      throw e;
    }
  }

  function showVersions(versions, note) {
    const el = $('versions');
    el.dataset.versions = versions;
    el.textContent = versions ? versions.split(',').join(', ') : 'none (the lake has no tables yet)';
    if (note) el.textContent += ` (${note})`;
  }

  // ---------------------------------------------------------------- start

  async function start() {
    bindEvents();
    const { token: found, wanted } = readFragment();
    token = found;
    if (!token) {
      showPrompt();
      return;
    }
    await loadDashboard(wanted);
  }

  function bindEvents() {
    $('token-form').addEventListener('submit', (event) => {
      event.preventDefault();
      const value = $('token-input').value.trim();
      if (!value) return;
      token = value;
      storeToken(value);
      $('token-input').value = '';
      loadDashboard({});
    });
    $('token-forget').addEventListener('click', () => {
      token = null;
      storeToken(null);
      generation += 1;
      showPrompt();
    });
    $('filter-hub').addEventListener('change', () => recompute());
    $('filter-year').addEventListener('change', () => recompute());
    $('sql-run').addEventListener('click', () => runConsole());
    $('sql-input').addEventListener('keydown', (event) => {
      if (event.key === 'Enter' && (event.ctrlKey || event.metaKey)) {
        event.preventDefault();
        runConsole();
      }
    });
    $('download-csv').addEventListener('click', () => download('csv'));
    $('download-parquet').addEventListener('click', () => download('parquet'));
  }

  function currentKpiYear() {
    const now = new Date();
    return now.getMonth() >= 7 ? now.getFullYear() : now.getFullYear() - 1;
  }

  async function loadDashboard(wanted) {
    const gen = ++generation;
    showDashboard();
    setState('loading');
    $('load-state').textContent = 'Loading hubs and years…';
    $('dashboard-error').hidden = true;
    let hubs;
    let regions;
    let years;
    let latest;
    let me;
    try {
      [hubs, regions, years, latest, me] = await Promise.all([
        runSql(SQL.hubs),
        runSql(SQL.regions),
        runSql(SQL.years),
        // Only a default: without it the current year is taken.
        runSql(SQL.latestYear).catch((e) => { if (isAuthError(e)) throw e; return null; }),
        // Who the token is: a hub's token sees its own hub.
        request('GET', '/v1/me').then((r) => r.json()).catch(() => null),
      ]);
    } catch (e) {
      if (gen !== generation) return;
      if (isAuthError(e)) { authFailed(e); return; }
      setState('error');
      $('load-state').textContent = '';
      showDashboardError(`Could not load the hubs and years: ${e.code}: ${e.message}`);
      return;
    }
    if (gen !== generation) return;

    // A hub's token sees its own rows only: its own hub is the only choice.
    const ownHub = me && me.role === 'hub' && me.hub ? String(me.hub) : null;
    hubNames = new Map();
    hubOrder = [];
    const hubSelect = $('filter-hub');
    hubSelect.replaceChildren();
    // Each region with its hubs after it; all regions together first where there are several.
    const regionRows = regions.rows.filter((r) => r.region_id !== null && r.region_id !== undefined);
    if (!ownHub && regionRows.length > 1) {
      hubNames.set('regions', 'All regions');
      hubSelect.appendChild(html('option', { value: 'regions', text: 'All regions (every hub)' }));
    }
    for (const region of regionRows) {
      const regionId = String(region.region_id);
      const regionName = region.name ? String(region.name) : regionId;
      if (!ownHub) {
        hubNames.set(`region:${regionId}`, regionName);
        hubSelect.appendChild(html('option', { value: `region:${regionId}`, text: `${regionName} (all its hubs)` }));
      }
      for (const row of hubs.rows) {
        if (row.hub_id === null || row.hub_id === undefined || String(row.region_id) !== regionId) continue;
        const id = String(row.hub_id);
        if (ownHub && id !== ownHub) continue;
        const name = row.name ? String(row.name) : id;
        hubNames.set(id, name);
        hubOrder.push(id);
        const label = row.municipality ? `${name} (${row.municipality})` : name;
        hubSelect.appendChild(html('option', { value: id, text: label }));
      }
    }

    schoolYears = new Map();
    const yearList = [];
    for (const row of years.rows) {
      const y = num(row.year);
      if (y === null) continue;
      yearList.push(y);
      schoolYears.set(y, row.school_year ? String(row.school_year) : schoolYearOf(y));
    }
    let defaultYear = latest && latest.rows.length ? num(latest.rows[0].year) : null;
    if (defaultYear === null || !yearList.includes(defaultYear)) {
      const current = currentKpiYear();
      defaultYear = yearList.includes(current) || !yearList.length ? current : yearList[yearList.length - 1];
    }
    if (!yearList.includes(defaultYear)) yearList.push(defaultYear);
    yearList.sort((a, b) => a - b);
    const yearSelect = $('filter-year');
    yearSelect.replaceChildren(...yearList.map((y) => html('option', { value: String(y), text: schoolYearOf(y) })));

    const firstRegion = regionRows.length ? `region:${regionRows[0].region_id}` : '';
    hubSelect.value = ownHub || (wanted.hub && hubNames.has(wanted.hub) ? wanted.hub : firstRegion);
    yearSelect.value = String(wanted.year !== null && wanted.year !== undefined && yearList.includes(wanted.year) ? wanted.year : defaultYear);
    await recompute();
  }

  function showDashboardError(message) {
    const el = $('dashboard-error');
    el.textContent = message;
    el.hidden = false;
  }

  // ---------------------------------------------------------------- recompute

  async function recompute() {
    const hub = $('filter-hub').value;
    const year = num($('filter-year').value);
    if (!hub || year === null) return;
    const choice = choiceOf(hub);
    const gen = ++generation;
    setState('loading');
    document.body.dataset.computed = '';
    $('dashboard-error').hidden = true;
    $('load-state').textContent = 'Computing…';
    for (const id of ['kpi-table', 'chart-technical-share', 'chart-effect', 'chart-po-participation', 'chart-activities', 'chart-satisfaction']) {
      $(id).setAttribute('aria-busy', 'true');
    }
    const fragment = new URLSearchParams({ hub, year: String(year) }).toString();
    history.replaceState(null, '', `${location.pathname}${location.search}#${fragment}`);

    const errors = [];
    let kpis = null;
    try {
      const asked = new URLSearchParams({ year: String(year), hub: choice.scope });
      if (choice.region) asked.set('region', choice.region);
      kpis = await jsonAnswer('GET', `/v1/kpis?${asked}`);
    } catch (e) {
      if (gen !== generation) return;
      if (isAuthError(e)) { authFailed(e); return; }
      errors.push(`KPIs: ${e.code}: ${e.message}`);
    }
    if (gen !== generation) return;
    if (kpis) {
      renderKpiTable(kpis.rows, hub, year, undefined, kpis.suppressed);
      renderPoParticipation(kpis.rows, hub, year);
    } else {
      renderKpiTable([], hub, year, errors[0]);
      chartMessage('chart-po-participation', errors[0], true);
    }

    // Everything else is read at the versions the KPIs were computed from.
    const versions = kpis ? kpis.versions : '';
    const parts = [
      ['chart-technical-share', (v) => runSql(SQL.technicalShare(choice), { versions: v }), (a) => renderTechnicalShare(a.rows, hub, year)],
      ['chart-effect', (v) => effectAnswer(v), (a) => renderEffect(a.events, a.estimates, hub)],
      ['chart-activities', (v) => runSql(SQL.activities(choice, year), { versions: v }), (a) => renderActivities(a.rows, hub, year)],
      ['chart-satisfaction', (v) => runSql(SQL.satisfaction(choice), { versions: v }), (a) => renderSatisfaction(a.rows, hub, year)],
    ];
    const results = await Promise.allSettled(parts.map(([, run]) => pinned(run, versions)));
    if (gen !== generation) return;
    let shown = versions;
    let note = '';
    results.forEach((result, i) => {
      const [id, , render] = parts[i];
      if (result.status === 'fulfilled') {
        if (!shown) shown = result.value.versions;
        if (result.value.repinned || (!kpis && result.value.versions !== shown)) note = 'some charts read newer versions';
        try {
          render(result.value);
        } catch (e) {
          errors.push(`${id}: ${e.message}`);
          chartMessage(id, `Could not draw this chart: ${e.message}`, true);
        }
      } else {
        const e = result.reason;
        if (isAuthError(e)) { authFailed(e); return; }
        errors.push(`${id}: ${e.code}: ${e.message}`);
        chartMessage(id, `${e.code}: ${e.message}`, true);
      }
    });
    if (document.body.dataset.state === 'needs-token') return;
    for (const id of ['kpi-table', 'chart-technical-share', 'chart-effect', 'chart-po-participation', 'chart-activities', 'chart-satisfaction']) {
      $(id).removeAttribute('aria-busy');
    }
    showVersions(shown, note);
    $('load-state').textContent = errors.length ? 'Some parts could not be computed.' : `Showing ${hubNames.get(hub) || hub}, ${schoolYearOf(year)}.`;
    if (errors.length) showDashboardError(errors.join(' · '));
    document.body.dataset.computed = `${hub}:${year}`;
    setState(errors.length ? 'error' : 'ready');
  }

  // ---------------------------------------------------------------- KPI table

  function kpiRank(row) {
    const i = KPI_ORDER.indexOf(row.kpi);
    return (i < 0 ? KPI_ORDER.length : i) * 10 + (BANDS.indexOf(row.band) + 1);
  }

  // KPIs that count no persons, never blanked by output control.
  const UNPROTECTED_KPIS = new Set(['affiliated_organisations', 'technical_profile_change_vs_2022']);

  function renderKpiTable(rows, hub, year, error, suppressed) {
    const table = $('kpi-table');
    $('kpi-caption').textContent = `KPIs for ${hubNames.get(hub) || hub}, school year ${schoolYearOf(year)}`;
    const body = table.tBodies[0];
    body.replaceChildren();
    if (error || !rows.length) {
      body.appendChild(html('tr', {}, html('td', { colspan: 5, class: error ? 'empty error' : 'empty', text: error || 'No KPIs for this selection.' })));
      return;
    }
    const sorted = rows.filter((r) => r.kpi).slice().sort((a, b) => kpiRank(a) - kpiRank(b) || String(a.kpi).localeCompare(String(b.kpi)));
    for (const row of sorted) {
      const actual = num(row.actual);
      const target = num(row.target);
      const met = row.met === true || row.met === false ? row.met : null;
      let metText = '— no target';
      if (met === true) metText = '✔ met';
      else if (met === false) metText = '✘ missed';
      else if (target !== null) metText = '— no data';
      const band = row.band === null || row.band === undefined ? '' : String(row.band);
      const isProtected = actual === null && suppressed && !UNPROTECTED_KPIS.has(row.kpi);
      if (isProtected) metText = '— protected';
      const protection = `Protected: about fewer than ${suppressed ? suppressed.min_persons : ''} persons, or it would give such a number away`;
      body.appendChild(html('tr', { 'data-kpi': row.kpi, 'data-band': band },
        html('th', { scope: 'row', title: row.description || null, text: KPI_LABELS[row.kpi] || row.kpi }),
        html('td', { class: 'band', text: BAND_LABELS[band] || band || '' }),
        html('td', { class: 'actual num', 'data-value': actual === null ? '' : String(row.actual),
          title: isProtected ? protection : null, text: isProtected ? 'protected' : fmt(actual, row.unit) }),
        html('td', { class: 'target num', 'data-value': target === null ? '' : String(row.target), text: fmt(target, row.unit) }),
        html('td', { class: `met met-${met === null ? 'none' : met}`, 'data-met': met === null ? '' : String(met), text: metText }),
      ));
    }
  }

  // ---------------------------------------------------------------- chart kit

  function chartMessage(id, message, isError) {
    const box = $(id);
    box.removeAttribute('aria-busy');
    box.replaceChildren(html('p', { class: isError ? 'chart-empty error' : 'chart-empty', text: message }));
  }

  function niceStep(range, count) {
    const raw = range / Math.max(1, count);
    const power = Math.pow(10, Math.floor(Math.log10(raw)));
    const f = raw / power;
    return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 2.5 ? 2.5 : f <= 5 ? 5 : 10) * power;
  }

  // A categorical x axis and a linear y axis in a fixed-size viewBox.
  function frame({ cats, yMin, yMax, yLabel, xLabel, yTicks = 5, integer = false, xTickLabel, highlight }) {
    const W = 600;
    const H = 290;
    const m = { top: 14, right: 18, bottom: xTickLabel ? 62 : 50, left: 58 };
    const plotW = W - m.left - m.right;
    const plotH = H - m.top - m.bottom;
    let step = niceStep((yMax - yMin) || 1, yTicks);
    if (integer) step = Math.max(1, Math.round(step));
    const lo = Math.floor(yMin / step) * step;
    let hi = Math.ceil(yMax / step) * step;
    if (hi <= lo) hi = lo + step;
    const bw = plotW / Math.max(1, cats.length);
    const x = (cat) => m.left + bw * (cats.indexOf(cat) + 0.5);
    const y = (v) => m.top + plotH - ((v - lo) / (hi - lo)) * plotH;
    const root = svg('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart-svg', role: 'img' });
    const defs = svg('defs');
    root.appendChild(defs);
    const grid = svg('g', { class: 'grid' });
    const decimals = step < 1 ? (String(step).split('.')[1] || '').length : 0;
    for (let v = lo; v <= hi + step / 2; v += step) {
      const yy = y(v);
      grid.appendChild(svg('line', { x1: m.left, x2: W - m.right, y1: yy, y2: yy, class: v === lo ? 'axis-line' : 'grid-line' }));
      grid.appendChild(svg('text', { x: m.left - 8, y: yy, class: 'tick y-tick', 'text-anchor': 'end', 'dominant-baseline': 'middle', text: v.toFixed(decimals) }));
    }
    root.appendChild(grid);
    if (highlight !== undefined && cats.includes(highlight)) {
      root.insertBefore(svg('rect', { x: x(highlight) - bw / 2, y: m.top, width: bw, height: plotH, class: 'highlight' }), grid);
    }
    const xAxis = svg('g', { class: 'x-axis' });
    for (const cat of cats) {
      const label = xTickLabel ? xTickLabel(cat) : [cat];
      const text = svg('text', { x: x(cat), y: m.top + plotH + 18, class: 'tick x-tick', 'text-anchor': 'middle' });
      label.forEach((line, i) => text.appendChild(svg('tspan', { x: x(cat), dy: i === 0 ? 0 : 14, text: line })));
      xAxis.appendChild(text);
    }
    root.appendChild(xAxis);
    root.appendChild(svg('text', { x: m.left + plotW / 2, y: H - 8, class: 'axis-label', 'text-anchor': 'middle', text: xLabel }));
    root.appendChild(svg('text', {
      x: 0, y: 0, class: 'axis-label', 'text-anchor': 'middle',
      transform: `translate(15 ${m.top + plotH / 2}) rotate(-90)`, text: yLabel,
    }));
    const marks = svg('g', { class: 'marks' });
    root.appendChild(marks);
    return { root, defs, marks, x, y, bw, lo, hi, m, W, H, plotW, plotH };
  }

  // A legend entry's key: a small SVG drawn like the series.
  function legendKey(kind, colour, extra = {}) {
    const key = svg('svg', { width: 30, height: 14, viewBox: '0 0 30 14', class: 'legend-key', 'aria-hidden': 'true' });
    if (kind === 'line') {
      key.appendChild(svg('line', { x1: 1, x2: 29, y1: 7, y2: 7, stroke: colour, 'stroke-width': 2.5, 'stroke-dasharray': extra.dash || null }));
      if (extra.marker === 'circle') key.appendChild(svg('circle', { cx: 15, cy: 7, r: 4, fill: colour, stroke: '#fff', 'stroke-width': 1.5 }));
      if (extra.marker === 'square') key.appendChild(svg('rect', { x: 11, y: 3, width: 8, height: 8, fill: colour, stroke: '#fff', 'stroke-width': 1.5 }));
    } else if (kind === 'target') {
      key.appendChild(svg('line', { x1: 5, x2: 25, y1: 7, y2: 7, stroke: colour, 'stroke-width': 3 }));
      key.appendChild(svg('path', { d: 'M15 2 L19 7 L15 12 L11 7 Z', fill: '#fff', stroke: colour, 'stroke-width': 1.5 }));
    } else {
      key.appendChild(svg('rect', { x: 4, y: 1, width: 22, height: 12, fill: extra.fill || colour, stroke: colour, 'stroke-width': 1 }));
    }
    return key;
  }

  function legend(entries) {
    return html('ul', { class: 'legend' }, entries.map(([key, label]) => html('li', {}, key, html('span', { text: label }))));
  }

  function dataTable(caption, headers, rows) {
    return html('details', { class: 'chart-data' },
      html('summary', { text: 'Data table' }),
      html('table', { class: 'mini' },
        html('caption', { text: caption }),
        html('thead', {}, html('tr', {}, headers.map((h) => html('th', { scope: 'col', text: h })))),
        html('tbody', {}, rows.map((r) => html('tr', {}, r.map((c, i) => html(i === 0 ? 'th' : 'td', i === 0 ? { scope: 'row', text: c } : { class: 'num', text: c })))))));
  }

  // A data point: carries its series, x and raw value for tests, and a tooltip.
  const point = (attrs, series, x, value, title) =>
    svg(attrs.tag || 'circle', { ...attrs, tag: null, 'data-series': series, 'data-x': x, 'data-value': String(value) }, tip(title));

  // Lines through consecutive points, broken where a value is missing.
  function segments(cats, valueOf, f, attrs) {
    const group = [];
    let current = [];
    const flush = () => {
      if (current.length > 1) group.push(svg('polyline', { ...attrs, fill: 'none', points: current.join(' ') }));
      current = [];
    };
    for (const cat of cats) {
      const v = valueOf(cat);
      if (v === null) flush();
      else current.push(`${f.x(cat).toFixed(1)},${f.y(v).toFixed(1)}`);
    }
    flush();
    return group;
  }

  function place(id, f, label, parts) {
    f.root.setAttribute('aria-label', label);
    const box = $(id);
    box.removeAttribute('aria-busy');
    box.replaceChildren(f.root, ...parts);
  }

  // ---------------------------------------------------------------- charts

  function renderTechnicalShare(rows, scope, year) {
    const id = 'chart-technical-share';
    const scopeName = hubNames.get(scope) || scope;
    const byScope = { scope: new Map(), national: new Map() };
    const bounds = new Map();
    for (const row of rows) {
      const v = num(row.share_pct);
      if (v === null || !row.school_year) continue;
      if (isOf(row, 'scope', choiceOf(scope))) {
        byScope.scope.set(row.school_year, v);
        bounds.set(row.school_year, [num(row.share_min_pct), num(row.share_max_pct), num(row.suppressed_cells)]);
      } else if (row.scope === 'national') {
        byScope.national.set(row.school_year, v);
      }
    }
    const cats = [...new Set([...byScope.scope.keys(), ...byScope.national.keys()])].sort();
    if (!cats.length) {
      chartMessage(id, 'No DUO VO pupil counts yet (import the duo_vo_pupils reference data).');
      return;
    }
    const baselineYear = '2022/23';
    const baseline = byScope.scope.has(baselineYear) ? byScope.scope.get(baselineYear) : null;
    const values = [...byScope.scope.values(), ...byScope.national.values()];
    for (const [lo, hi] of bounds.values()) { if (lo !== null) values.push(lo); if (hi !== null) values.push(hi); }
    const min = Math.max(0, Math.min(...values) - 2);
    const max = Math.min(100, Math.max(...values) + 2);
    const f = frame({ cats, yMin: min, yMax: max, yLabel: 'share (%)', xLabel: 'school year', highlight: schoolYearOf(year) });
    const value = (series) => (cat) => (byScope[series].has(cat) ? byScope[series].get(cat) : null);

    if (baseline !== null) {
      const yy = f.y(baseline);
      f.marks.appendChild(point({ tag: 'line', x1: f.m.left, x2: f.W - f.m.right, y1: yy, y2: yy, class: 'baseline', stroke: COLOURS.baseline, 'stroke-width': 2, 'stroke-dasharray': '2 4' },
        'baseline', baselineYear, baseline, `${scopeName}, baseline ${baselineYear}: ${fmt(baseline, 'percent')}`));
      f.marks.appendChild(svg('text', { x: f.W - f.m.right - 4, y: yy - 6, 'text-anchor': 'end', class: 'mark-label baseline-label', text: `baseline ${baselineYear}` }));
    }
    f.marks.append(...segments(cats, value('national'), f, { stroke: COLOURS.national, 'stroke-width': 2, 'stroke-dasharray': '7 4' }));
    for (const cat of cats) {
      const v = value('national')(cat);
      if (v === null) continue;
      f.marks.appendChild(point({ tag: 'rect', x: f.x(cat) - 4, y: f.y(v) - 4, width: 8, height: 8, fill: COLOURS.national, stroke: '#fff', 'stroke-width': 1.5 },
        'national', cat, v, `Netherlands, ${cat}: ${fmt(v, 'percent')}`));
    }
    f.marks.append(...segments(cats, value('scope'), f, { stroke: COLOURS.scope, 'stroke-width': 2.5 }));
    for (const cat of cats) {
      const v = value('scope')(cat);
      if (v === null) continue;
      const [lo, hi, suppressed] = bounds.get(cat) || [null, null, null];
      if (lo !== null && hi !== null && hi - lo > 1e-9) {
        f.marks.appendChild(svg('line', { x1: f.x(cat), x2: f.x(cat), y1: f.y(lo), y2: f.y(hi), stroke: COLOURS.scope, 'stroke-width': 1.5, opacity: 0.5 }));
      }
      let title = `${scopeName}, ${cat}: ${fmt(v, 'percent')}`;
      if (lo !== null && hi !== null && hi - lo > 1e-9) title += ` (between ${fmt(lo, 'percent')} and ${fmt(hi, 'percent')}: ${suppressed} suppressed DUO counts)`;
      if (baseline !== null && cat !== baselineYear) title += `; ${fmt(v - baseline, 'percent_change')} against ${baselineYear}`;
      f.marks.appendChild(point({ cx: f.x(cat), cy: f.y(v), r: 4.5, fill: COLOURS.scope, stroke: '#fff', 'stroke-width': 1.5 }, 'scope', cat, v, title));
    }
    const entries = [
      [legendKey('line', COLOURS.scope, { marker: 'circle' }), scopeName],
      [legendKey('line', COLOURS.national, { marker: 'square', dash: '7 4' }), 'Netherlands'],
    ];
    if (baseline !== null) entries.push([legendKey('line', COLOURS.baseline, { dash: '2 4' }), `${scopeName} in ${baselineYear} (baseline)`]);
    const notes = [];
    if (baseline === null) notes.push(html('p', { class: 'chart-note', text: `No ${baselineYear} baseline for ${scopeName}.` }));
    if ([...bounds.values()].some(([lo, hi]) => lo !== null && hi !== null && hi - lo > 1e-9)) {
      notes.push(html('p', { class: 'chart-note', text: 'Vertical whiskers: bounds where DUO suppressed small counts (<5).' }));
    }
    place(id, f, `Technical-profile share per school year for ${scopeName} and the Netherlands`, [
      legend(entries), ...notes,
      dataTable('Technical-profile share (%)', ['School year', scopeName, 'Netherlands'],
        cats.map((c) => [c, fmt(value('scope')(c), 'percent'), fmt(value('national')(c), 'percent')])),
    ]);
  }

  function renderPoParticipation(rows, hub, year) {
    const id = 'chart-po-participation';
    const scopeName = hubNames.get(hub) || hub;
    const byBand = new Map(rows.filter((r) => r.kpi === 'po_participation_share' && r.band).map((r) => [r.band, r]));
    const cats = [...BANDS.filter((b) => byBand.has(b)), ...[...byBand.keys()].filter((b) => !BANDS.includes(b)).sort()];
    if (!cats.length) {
      chartMessage(id, 'No PO participation KPI for this selection.');
      return;
    }
    const values = cats.flatMap((b) => [num(byBand.get(b).actual), num(byBand.get(b).target)]).filter((v) => v !== null);
    const f = frame({ cats, yMin: 0, yMax: Math.max(10, ...values) * 1.08, yLabel: 'share of PO pupils (%)', xLabel: 'groep band', xTickLabel: (b) => [BAND_LABELS[b] || b] });
    const barW = Math.min(50, f.bw * 0.3);
    for (const band of cats) {
      const row = byBand.get(band);
      const label = BAND_LABELS[band] || band;
      const actual = num(row.actual);
      const target = num(row.target);
      const cx = f.x(band);
      const bottom = f.y(f.lo);
      if (actual !== null) {
        const top = f.y(actual);
        f.marks.appendChild(point({ tag: 'rect', x: cx - barW / 2, y: top, width: barW, height: Math.max(0, bottom - top), fill: COLOURS.actual, class: 'bar' },
          'actual', band, actual, `${scopeName}, ${label}: ${fmt(actual, 'percent')} took part${target !== null ? ` (target ${fmt(target, 'percent')})` : ''}`));
        f.marks.appendChild(svg('text', { x: cx, y: top - 6, 'text-anchor': 'middle', class: 'mark-label strong halo', text: fmt(actual, 'percent') }));
      } else {
        f.marks.appendChild(svg('text', { x: cx, y: bottom - 8, 'text-anchor': 'middle', class: 'mark-label muted', text: 'no data' }));
      }
      if (target !== null) {
        const yy = f.y(target);
        const half = barW / 2 + 9;
        f.marks.appendChild(point({ tag: 'line', x1: cx - half, x2: cx + half, y1: yy, y2: yy, stroke: COLOURS.target, 'stroke-width': 3, class: 'target-mark' },
          'target', band, target, `${label}: target ${fmt(target, 'percent')}`));
        f.marks.appendChild(svg('path', { d: `M${cx + half} ${yy - 5} l5 5 l-5 5 l-5 -5 Z`, fill: '#fff', stroke: COLOURS.target, 'stroke-width': 1.5, 'aria-hidden': 'true' }));
        f.marks.appendChild(svg('text', { x: cx + half + 9, y: yy + 4, class: 'mark-label halo', text: fmt(target, 'percent') }));
      }
    }
    place(id, f, `PO participation share per groep band for ${scopeName} in ${schoolYearOf(year)}`, [
      legend([[legendKey('bar', COLOURS.actual), `took part (${schoolYearOf(year)})`], [legendKey('target', COLOURS.target), 'target (value beside the marker)']]),
      dataTable('PO participation share (%)', ['Groep', 'Took part', 'Target'],
        cats.map((b) => [BAND_LABELS[b] || b, fmt(byBand.get(b).actual, 'percent'), fmt(byBand.get(b).target, 'percent')])),
    ]);
  }

  // Fill patterns so stacked hubs differ by more than colour.
  function hubPattern(defs, index, colour) {
    const pid = `hub-pattern-${index}`;
    const p = svg('pattern', { id: pid, width: 8, height: 8, patternUnits: 'userSpaceOnUse' });
    p.appendChild(svg('rect', { width: 8, height: 8, fill: colour }));
    const mark = { stroke: 'rgba(255,255,255,0.75)', 'stroke-width': 1.6 };
    switch (index % 4) {
      case 1: p.appendChild(svg('path', { d: 'M-2 2 L2 -2 M0 8 L8 0 M6 10 L10 6', ...mark })); break;
      case 2: p.appendChild(svg('circle', { cx: 4, cy: 4, r: 1.5, fill: 'rgba(255,255,255,0.8)' })); break;
      case 3: p.appendChild(svg('path', { d: 'M0 4 H8 M4 0 V8', ...mark })); break;
      default: break;
    }
    defs.appendChild(p);
    return `url(#${pid})`;
  }

  function renderActivities(rows, hub, year) {
    const id = 'chart-activities';
    const months = [];
    for (let i = 0; i < 12; i += 1) {
      const y = i < 5 ? year : year + 1;
      const m = ((7 + i) % 12) + 1;
      months.push(`${y}-${String(m).padStart(2, '0')}`);
    }
    const counts = new Map(); // month -> Map(hub -> n)
    const seen = new Set();
    for (const row of rows) {
      const y = num(row.y);
      const m = num(row.m);
      const n = num(row.activities);
      if (y === null || m === null || n === null || !row.hub_id) continue;
      const key = `${y}-${String(m).padStart(2, '0')}`;
      if (!counts.has(key)) counts.set(key, new Map());
      const perHub = counts.get(key);
      perHub.set(row.hub_id, (perHub.get(row.hub_id) || 0) + n);
      seen.add(row.hub_id);
    }
    const series = isArea(choiceOf(hub))
      ? [...hubOrder.filter((h) => seen.has(h)), ...[...seen].filter((h) => !hubOrder.includes(h)).sort()]
      : [hub];
    const totals = months.map((m) => series.reduce((s, h) => s + ((counts.get(m) && counts.get(m).get(h)) || 0), 0));
    const scopeName = hubNames.get(hub) || hub;
    if (!totals.some((t) => t > 0)) {
      chartMessage(id, `No activities recorded for ${scopeName} in ${schoolYearOf(year)}.`);
      return;
    }
    const monthLabel = (key) => {
      const [y, m] = key.split('-').map(Number);
      return m === 8 || m === 1 ? [MONTHS[m - 1], String(y)] : [MONTHS[m - 1]];
    };
    const f = frame({ cats: months, yMin: 0, yMax: Math.max(...totals) * 1.1, yLabel: 'activities', xLabel: `month (school year ${schoolYearOf(year)})`, integer: true, xTickLabel: monthLabel });
    const fills = new Map(series.map((h, i) => {
      const index = hubOrder.includes(h) ? hubOrder.indexOf(h) : hubOrder.length + i;
      const colour = HUB_COLOURS[index % HUB_COLOURS.length];
      return [h, { colour, fill: isArea(choiceOf(hub)) ? hubPattern(f.defs, index, colour) : colour }];
    }));
    const barW = Math.min(34, f.bw * 0.7);
    months.forEach((month, i) => {
      let base = 0;
      for (const h of series) {
        const n = (counts.get(month) && counts.get(month).get(h)) || 0;
        if (n <= 0) continue;
        const y0 = f.y(base);
        const y1 = f.y(base + n);
        const [yy, mm] = month.split('-').map(Number);
        f.marks.appendChild(point({ tag: 'rect', x: f.x(month) - barW / 2, y: y1, width: barW, height: Math.max(0, y0 - y1), fill: fills.get(h).fill, stroke: '#fff', 'stroke-width': 0.8, class: 'bar' },
          h, month, n, `${hubNames.get(h) || h}, ${MONTHS[mm - 1]} ${yy}: ${n} ${n === 1 ? 'activity' : 'activities'}`));
        base += n;
      }
      if (totals[i] > 0) {
        f.marks.appendChild(svg('text', { x: f.x(month), y: f.y(totals[i]) - 5, 'text-anchor': 'middle', class: 'mark-label', text: String(totals[i]) }));
      }
    });
    const entries = series.map((h) => [legendKey('bar', fills.get(h).colour, { fill: fills.get(h).fill }), hubNames.get(h) || h]);
    const headers = ['Month', ...series.map((h) => hubNames.get(h) || h)];
    if (series.length > 1) headers.push('Total');
    const tableRows = months.map((m, i) => {
      const [yy, mm] = m.split('-').map(Number);
      const cells = [`${MONTHS[mm - 1]} ${yy}`, ...series.map((h) => String((counts.get(m) && counts.get(m).get(h)) || 0))];
      if (series.length > 1) cells.push(String(totals[i]));
      return cells;
    });
    place(id, f, `Activities per month for ${scopeName} in school year ${schoolYearOf(year)}`, [
      legend(entries),
      dataTable('Activities per month', headers, tableRows),
    ]);
  }

  function renderEffect(rows, estimates, scope) {
    const id = 'chart-effect';
    const scopeName = hubNames.get(scope) || scope;
    const events = rows.filter((r) => isOf(r, 'scope', choiceOf(scope))).map((r) => ({
      e: num(r.years_since), att: num(r.att_pp), low: num(r.ci_low_pp), high: num(r.ci_high_pp),
      schools: num(r.treated_schools), placebo: r.placebo === true,
    })).filter((r) => r.e !== null && r.att !== null);
    const own = estimates.find((r) => isOf(r, 'scope', choiceOf(scope)));
    if (!events.length) {
      chartMessage(id, own && own.note ? `${scopeName}: ${own.note}` : `No effect estimate for ${scopeName} (it needs DUO's VO counts and reached schools).`);
      return;
    }
    const cats = events.map((r) => String(r.e));
    const values = events.flatMap((r) => [r.att, r.low, r.high]).filter((v) => v !== null);
    const f = frame({ cats, yMin: Math.min(0, ...values), yMax: Math.max(0, ...values), yLabel: 'effect (pp)', xLabel: 'school years since first counted as reached' });
    const at = new Map(events.map((r) => [String(r.e), r]));
    f.marks.appendChild(svg('line', { x1: f.m.left, x2: f.W - f.m.right, y1: f.y(0), y2: f.y(0), class: 'zero-line', stroke: COLOURS.target, 'stroke-width': 1 }));
    const banded = events.filter((r) => r.low !== null && r.high !== null);
    if (banded.length > 1) {
      const upper = banded.map((r) => `${f.x(String(r.e)).toFixed(1)},${f.y(r.high).toFixed(1)}`);
      const lower = banded.slice().reverse().map((r) => `${f.x(String(r.e)).toFixed(1)},${f.y(r.low).toFixed(1)}`);
      f.marks.appendChild(svg('polygon', { points: [...upper, ...lower].join(' '), fill: COLOURS.scope, opacity: 0.15, class: 'interval-band' }));
    }
    for (const r of banded) {
      f.marks.appendChild(svg('line', { x1: f.x(String(r.e)), x2: f.x(String(r.e)), y1: f.y(r.low), y2: f.y(r.high), stroke: COLOURS.scope, 'stroke-width': 1.5, opacity: 0.6 }));
    }
    f.marks.append(...segments(cats, (c) => at.get(c).att, f, { stroke: COLOURS.scope, 'stroke-width': 2.5 }));
    for (const r of events) {
      const c = String(r.e);
      const interval = r.low !== null && r.high !== null ? ` (95% interval ${fmt(r.low, 'percent_change')} to ${fmt(r.high, 'percent_change')})` : '';
      const title = `${scopeName}, ${r.placebo ? 'placebo, ' : ''}${r.e} school years since: ${fmt(r.att, 'percent_change')}${interval}, ${r.schools} treated schools`;
      f.marks.appendChild(point({ cx: f.x(c), cy: f.y(r.att), r: 4.5, fill: r.placebo ? '#fff' : COLOURS.scope, stroke: COLOURS.scope, 'stroke-width': 1.5 }, 'effect', c, r.att, title));
    }
    const notes = [];
    if (own && own.note) notes.push(html('p', { class: 'chart-note', text: own.note }));
    if (own && num(own.pre_trend_p_value) !== null) {
      notes.push(html('p', { class: 'chart-note', text: `Pre-trend test (placebo effects jointly zero): p = ${num(own.pre_trend_p_value).toFixed(2)}.` }));
    }
    const hubs = estimates.filter((r) => num(r.att_pp) !== null);
    place(id, f, `Effect of reaching schools on the technical-profile share for ${scopeName}, by school years since`, [
      legend([[legendKey('line', COLOURS.scope, { marker: 'circle' }), `${scopeName} (open: placebo)`], [legendKey('bar', COLOURS.scope, { fill: 'rgba(29, 95, 191, 0.15)' }), '95% interval']]),
      ...notes,
      dataTable('Effect by school years since (percentage points)', ['Years since', 'Effect', '95% interval', 'Treated schools'],
        events.map((r) => [String(r.e), fmt(r.att, 'percent_change'), r.low === null ? '—' : `${fmt(r.low, 'percent_change')} to ${fmt(r.high, 'percent_change')}`, String(r.schools)])),
      dataTable('Overall effect per hub (percentage points)', ['Scope', 'Effect', '95% interval', 'Treated schools'],
        hubs.map((r) => [labelOf(r), fmt(num(r.att_pp), 'percent_change'), `${fmt(num(r.ci_low_pp), 'percent_change')} to ${fmt(num(r.ci_high_pp), 'percent_change')}`, String(r.treated_schools)])),
    ]);
  }

  function renderSatisfaction(rows, scope, year) {
    const id = 'chart-satisfaction';
    const scopeName = hubNames.get(scope) || scope;
    const byYear = new Map();
    for (const row of rows) {
      const y = num(row.year);
      if (y === null) continue;
      byYear.set(row.school_year || schoolYearOf(y), { actual: num(row.actual), target: num(row.target), answers: num(row.denominator) });
    }
    const cats = [...byYear.keys()].sort();
    if (!cats.some((c) => byYear.get(c).actual !== null || byYear.get(c).target !== null)) {
      chartMessage(id, `No satisfaction scores or targets for ${scopeName}.`);
      return;
    }
    const f = frame({ cats, yMin: 0, yMax: 10, yLabel: 'score (of 10)', xLabel: 'school year', highlight: schoolYearOf(year) });
    const half = Math.min(18, f.bw * 0.3);
    for (const cat of cats) {
      const { target } = byYear.get(cat);
      if (target === null) continue;
      const yy = f.y(target);
      f.marks.appendChild(point({ tag: 'line', x1: f.x(cat) - half, x2: f.x(cat) + half, y1: yy, y2: yy, stroke: COLOURS.target, 'stroke-width': 3, class: 'target-mark' },
        'target', cat, target, `${cat}: target ${fmt(target, 'score_10')}`));
      f.marks.appendChild(svg('path', { d: `M${f.x(cat) + half} ${yy - 5} l5 5 l-5 5 l-5 -5 Z`, fill: '#fff', stroke: COLOURS.target, 'stroke-width': 1.5, 'aria-hidden': 'true' }));
    }
    const actual = (cat) => byYear.get(cat).actual;
    f.marks.append(...segments(cats, actual, f, { stroke: COLOURS.scope, 'stroke-width': 2.5 }));
    for (const cat of cats) {
      const v = actual(cat);
      if (v === null) continue;
      const answers = byYear.get(cat).answers;
      f.marks.appendChild(point({ cx: f.x(cat), cy: f.y(v), r: 4.5, fill: COLOURS.scope, stroke: '#fff', 'stroke-width': 1.5 },
        'scope', cat, v, `${scopeName}, ${cat}: ${fmt(v, 'score_10')} of 10${answers !== null ? ` (${Math.round(answers)} answers)` : ''}`));
      f.marks.appendChild(svg('text', { x: f.x(cat), y: f.y(v) + 18, 'text-anchor': 'middle', class: 'mark-label halo', text: fmt(v, 'score_10') }));
    }
    place(id, f, `Satisfaction per school year for ${scopeName} with targets`, [
      legend([[legendKey('line', COLOURS.scope, { marker: 'circle' }), scopeName], [legendKey('target', COLOURS.target), 'target']]),
      dataTable('Satisfaction (of 10)', ['School year', scopeName, 'Target', 'Answers'],
        cats.map((c) => [c, fmt(byYear.get(c).actual, 'score_10'), fmt(byYear.get(c).target, 'score_10'), byYear.get(c).answers === null ? '—' : String(Math.round(byYear.get(c).answers))])),
    ]);
  }

  // ---------------------------------------------------------------- SQL console

  function sqlStatus(state, text) {
    const el = $('sql-status');
    el.dataset.state = state;
    el.textContent = text;
    el.classList.toggle('error', state === 'error');
  }

  function cellText(v) {
    if (v === null || v === undefined) return 'NULL';
    if (typeof v === 'object') return JSON.stringify(v);
    return String(v);
  }

  function renderResults(answer) {
    const table = $('sql-results');
    let names = answer.columns.map((c) => String(c.name));
    if (!names.length && answer.rows.length) names = Object.keys(answer.rows[0]);
    const types = new Map(answer.columns.map((c) => [String(c.name), String(c.data_type || '')]));
    table.tHead.replaceChildren(html('tr', {}, names.map((n) => html('th', { scope: 'col', title: types.get(n) || null, text: n }))));
    const body = table.tBodies[0];
    body.replaceChildren();
    const fragment = document.createDocumentFragment();
    for (const row of answer.rows.slice(0, MAX_ROWS)) {
      fragment.appendChild(html('tr', {}, names.map((n) => {
        const v = row[n];
        const cls = v === null || v === undefined ? 'null' : typeof v === 'number' ? 'num' : null;
        return html('td', { class: cls, text: cellText(v) });
      })));
    }
    body.appendChild(fragment);
  }

  async function runConsole() {
    const text = $('sql-input').value;
    if (!text.trim()) {
      sqlStatus('error', 'Type a query first.');
      return;
    }
    if (!token) { showPrompt(); return; }
    const button = $('sql-run');
    button.disabled = true;
    sqlStatus('running', 'Running…');
    try {
      const answer = await runSql(text);
      lastRun = { sql: text, versions: answer.versions };
      renderResults(answer);
      const n = answer.rowCount;
      let message = `${n} ${n === 1 ? 'row' : 'rows'}`;
      if (answer.rows.length > MAX_ROWS) message += ` (showing the first ${MAX_ROWS}; download CSV or Parquet for all)`;
      message += ` · computed from ${answer.versions ? answer.versions.split(',').join(', ') : 'no lake tables'}`;
      sqlStatus('ok', message);
      $('sql-status').dataset.rows = String(n);
    } catch (e) {
      lastRun = null;
      $('sql-results').tHead.replaceChildren();
      $('sql-results').tBodies[0].replaceChildren();
      sqlStatus('error', `${e.code}: ${e.message}`);
    } finally {
      button.disabled = false;
    }
  }

  function formatBytes(n) {
    if (n < 1024) return `${n} bytes`;
    if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
    return `${(n / 1024 / 1024).toFixed(1)} MiB`;
  }

  // Re-runs the console's query in the file format and saves the answer; when the
  // query is the one shown, at the versions it was shown at.
  async function download(kind) {
    const text = $('sql-input').value;
    if (!text.trim()) {
      sqlStatus('error', 'Type a query first.');
      return;
    }
    if (!token) { showPrompt(); return; }
    const accept = kind === 'csv' ? 'text/csv' : 'application/vnd.apache.parquet';
    const filename = `techmon-query.${kind}`;
    const versions = lastRun && lastRun.sql === text ? lastRun.versions : '';
    const button = $(`download-${kind}`);
    button.disabled = true;
    const previous = { state: $('sql-status').dataset.state, text: $('sql-status').textContent };
    sqlStatus('downloading', `Preparing ${filename}…`);
    try {
      const response = await pinned((v) => request('POST', '/v1/sql', { body: text, accept, versions: v }), versions);
      const blob = await response.blob();
      const url = URL.createObjectURL(blob);
      const a = html('a', { href: url, download: filename, hidden: true });
      document.body.appendChild(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60000);
      const got = response.headers.get(VERSIONS_HEADER) || '';
      let summary = `saved ${filename} (${formatBytes(blob.size)})`;
      if (!versions || got !== versions) summary += `, computed from ${got ? got.split(',').join(', ') : 'no lake tables'}`;
      const kept = previous.state === 'ok' ? previous.text.replace(/ · saved techmon-query\.[a-z]+ .*$/, '') : '';
      sqlStatus(kept ? 'ok' : 'downloaded', kept ? `${kept} · ${summary}` : summary.charAt(0).toUpperCase() + summary.slice(1));
    } catch (e) {
      sqlStatus('error', `${filename}: ${e.code}: ${e.message}`);
    } finally {
      button.disabled = false;
    }
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
