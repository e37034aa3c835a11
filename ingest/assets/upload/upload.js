// The upload page: a hub coordinator sends a CSV or a workbook to POST /v1/feeds/{kind}
// with the hub's token, sees what became of each row, and downloads the refused rows
// (with their reasons) to fix and send again.
'use strict';

(() => {
  const TOKEN_KEY = 'techmon-token';
  const XLSX = 'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet';
  // The column of reasons in the file of refused rows, which feeds pass over.
  const REASONS = 'geweigerd_omdat';
  const $ = (id) => document.getElementById(id);
  let token = null;
  // The last sheet sent and its answer, for the refused rows.
  let last = null;

  function remember(value) {
    token = value;
    try {
      if (value) sessionStorage.setItem(TOKEN_KEY, value);
      else sessionStorage.removeItem(TOKEN_KEY);
    } catch (_) { /* storage disabled: the token lives in memory only */ }
  }

  // The token comes in the URL fragment (never sent to the server) and leaves the
  // visible URL at once, or from this tab's storage.
  function readToken() {
    const params = new URLSearchParams(location.hash.slice(1));
    const fromUrl = params.get('token');
    if (fromUrl) {
      history.replaceState(null, '', location.pathname + location.search);
      return fromUrl.trim();
    }
    try { return sessionStorage.getItem(TOKEN_KEY); } catch (_) { return null; }
  }

  function askToken(message) {
    document.body.dataset.state = 'needs-token';
    $('token-prompt').hidden = false;
    $('upload').hidden = true;
    $('token-error').hidden = !message;
    $('token-error').textContent = message || '';
    $('token-state').textContent = 'No token';
    $('token-forget').hidden = true;
    $('token-input').focus();
  }

  async function ready() {
    $('token-prompt').hidden = true;
    $('upload').hidden = false;
    $('token-state').textContent = 'Using a hub token';
    $('token-forget').hidden = false;
    await showUploads();
    document.body.dataset.state = 'ready';
  }

  // The hub's recent uploads, from the server's record of them.
  async function showUploads() {
    const response = await fetch('/v1/uploads', { headers: { Authorization: `Bearer ${token}` } });
    if (response.status === 401) {
      remember(null);
      askToken('The server did not accept this token.');
      return;
    }
    if (!response.ok) return;
    const uploads = await response.json();
    $('recent').hidden = false;
    $('uploads').tBodies[0].replaceChildren(...uploads.map((upload) => {
      const tr = document.createElement('tr');
      tr.append(cell(new Date(upload.at).toLocaleString()), cell(upload.what),
        cell(upload.records ?? ''), cell(upload.outcome));
      return tr;
    }));
  }

  async function loadKinds() {
    const response = await fetch('/v1/schemas');
    const catalogue = await response.json();
    const kinds = catalogue.kinds.map((k) => k.kind).sort();
    const select = $('kind-select');
    select.replaceChildren(...kinds.map((kind) => new Option(kind, kind)));
  }

  // The kind a file's name starts with, as `techmon push` reads it.
  function kindOfName(name) {
    const kinds = [...$('kind-select').options].map((o) => o.value);
    return kinds.filter((k) => name.startsWith(k)).sort((a, b) => b.length - a.length)[0];
  }

  // The kind of the chosen file: from its name as `techmon push` reads it, else from
  // its header row, as the server finds the kinds that fit it.
  async function recognise() {
    const file = $('file-input').files[0];
    if (!file) return;
    $('kind-hint').textContent = '';
    const named = kindOfName(file.name);
    if (named) {
      $('kind-select').value = named;
      $('kind-hint').textContent = `${named}, from the file's name`;
      return;
    }
    const sheet = $('sheet-input').value.trim();
    const response = await fetch(`/v1/sheets/rows${feedQuery(sheet)}`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${token}`, 'Content-Type': typeOf(file) },
      body: await file.arrayBuffer(),
    });
    if (!response.ok) return;
    const { kinds } = await response.json();
    if (kinds.length === 1) {
      $('kind-select').value = kinds[0];
      $('kind-hint').textContent = `${kinds[0]}, from the sheet's columns`;
    } else if (kinds.length > 1) {
      $('kind-hint').textContent = `The columns fit ${kinds.join(' and ')}: choose one.`;
    } else {
      $('kind-hint').textContent = 'The columns fit no kind of rows: choose the kind, and the rows will say what is missing.';
    }
  }

  function typeOf(file) {
    return file.name.toLowerCase().endsWith('.xlsx') ? XLSX : 'text/csv';
  }

  async function send(event) {
    event.preventDefault();
    const file = $('file-input').files[0];
    const kind = $('kind-select').value;
    const sheet = $('sheet-input').value.trim();
    if (!file || !kind) return;
    const body = await file.arrayBuffer();
    const type = typeOf(file);
    $('upload-error').hidden = true;
    document.body.dataset.state = 'sending';
    const response = await fetch(`/v1/feeds/${encodeURIComponent(kind)}${feedQuery(sheet)}`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${token}`, 'Content-Type': type },
      body,
    });
    const answer = await response.json().catch(() => null);
    if (response.status === 401) {
      remember(null);
      askToken('The server did not accept this token.');
      return;
    }
    if (!response.ok) {
      const message = answer && answer.error ? answer.error.message : `the server answered ${response.status}`;
      $('upload-error').textContent = `The sheet was not taken: ${message}`;
      $('upload-error').hidden = false;
      document.body.dataset.state = 'ready';
      return;
    }
    last = { name: file.name, kind, sheet, type, body, answer };
    show(answer);
    await showUploads();
    document.body.dataset.state = 'answered';
  }

  function feedQuery(sheet) {
    return sheet ? `?${new URLSearchParams({ sheet })}` : '';
  }

  function cell(text, className) {
    const td = document.createElement('td');
    td.textContent = text;
    if (className) td.className = className;
    return td;
  }

  function show(answer) {
    $('answer').hidden = false;
    $('summary').textContent = `${answer.accepted} accepted, ${answer.corrected} corrected, `
      + `${answer.duplicates} duplicates, ${answer.rejected} refused`;
    const rows = answer.results.map((result) => {
      const tr = document.createElement('tr');
      tr.dataset.line = result.line ?? '';
      tr.dataset.status = result.status;
      const event = result.replaces
        ? `${result.event_id} (replaces ${result.replaces})`
        : (result.event_id || '');
      const problems = (result.errors || []).map((e) => `${e.field}: ${e.reason}`).join('; ');
      tr.append(cell(result.line ?? result.index + 1), cell(result.status), cell(event, 'event'), cell(problems));
      return tr;
    });
    $('results').tBodies[0].replaceChildren(...rows);
    const refused = answer.rejected > 0;
    $('download-refused').hidden = !refused;
    $('refused-hint').hidden = !refused;
  }

  // A CSV cell, quoted when it must be (semicolon-separated, as Dutch spreadsheets write).
  function csvCell(text) {
    const value = String(text ?? '');
    return /[;"\r\n]/.test(value) ? `"${value.replace(/"/g, '""')}"` : value;
  }

  // The refused rows as the server read them, with their reasons, as a CSV file.
  async function downloadRefused() {
    if (!last) return;
    const query = new URLSearchParams({ kind: last.kind });
    if (last.sheet) query.set('sheet', last.sheet);
    const response = await fetch(`/v1/sheets/rows?${query}`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${token}`, 'Content-Type': last.type },
      body: last.body,
    });
    if (!response.ok) {
      $('upload-error').textContent = `The refused rows could not be read back (${response.status})`;
      $('upload-error').hidden = false;
      return;
    }
    const sheet = await response.json();
    const reasons = new Map(last.answer.results
      .filter((r) => r.status === 'rejected')
      .map((r) => [r.line, r.errors.map((e) => `${e.field}: ${e.reason}`).join(' | ')]));
    const lines = [[...sheet.headers, REASONS].map(csvCell).join(';')];
    for (const row of sheet.rows) {
      if (reasons.has(row.line)) {
        lines.push([...row.cells, reasons.get(row.line)].map(csvCell).join(';'));
      }
    }
    // With a byte order mark, so that a spreadsheet opens it as UTF-8.
    const blob = new Blob([`\uFEFF${lines.join('\r\n')}\r\n`], { type: 'text/csv;charset=utf-8' });
    const link = document.createElement('a');
    link.href = URL.createObjectURL(blob);
    const base = last.name.replace(/\.(csv|xlsx)$/i, '');
    link.download = `${base}-refused.csv`;
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 10000);
  }

  async function start() {
    $('token-form').addEventListener('submit', (event) => {
      event.preventDefault();
      remember($('token-input').value.trim());
      $('token-input').value = '';
      ready().catch(fail);
    });
    $('token-forget').addEventListener('click', () => { remember(null); askToken(); });
    $('upload-form').addEventListener('submit', (event) => { send(event).catch(fail); });
    $('download-refused').addEventListener('click', () => { downloadRefused().catch(fail); });
    $('file-input').addEventListener('change', () => { recognise().catch(fail); });
    await loadKinds();
    const found = readToken();
    if (found) {
      remember(found);
      await ready();
    } else {
      askToken();
    }
  }

  function fail(error) {
    $('upload-error').textContent = `Something went wrong: ${error.message || error}`;
    $('upload-error').hidden = false;
    document.body.dataset.state = 'ready';
  }

  start().catch(fail);
})();
