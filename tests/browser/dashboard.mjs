#!/usr/bin/env node
// Headless-browser test of the techmon KPI dashboard (query/assets/dashboard), served
// by `techmon serve` at GET / with the query API on the same origin.
//
//   node tests/browser/dashboard.mjs --url http://127.0.0.1:PORT --token TOKEN \
//        --expect EXPECT.json --screenshot OUT.png --downloads DIR [--timeout SECONDS]
//
// Needs `npm ci` in tests/browser (playwright-core only) and Debian's Chromium
// (/usr/bin/chromium, or set CHROMIUM to another binary).
//
// What it does, failing (exit 1, one clear message) at the first mismatch:
//  1. opens URL/#token=TOKEN and waits until the KPI table is filled; checks the token
//     left the visible URL;
//  2. checks the hub choices when `hub_options` is given (a hub's token: its own hub
//     only, opened on it), then selects the expect file's hub and year and waits for
//     the recompute;
//  3. checks every expected KPI row: it exists, its actual `data-value` equals the
//     expected number within 1e-6 (null expected <=> empty data-value), and `met`;
//  4. checks each chart has at least min_points data points (of `series` when given)
//     and the listed points' values within 1e-6;
//  5. types `sql` into the SQL console, runs it, checks the results table has
//     `sql_rows` rows; downloads CSV into DIR and checks header + `sql_rows` lines;
//  6. takes a full-page screenshot;
// and fails on any page JavaScript error, console error, or request to another origin.
// Exit status: 0 passed, 1 a check failed (or the browser could not run), 2 bad arguments.
//
// Expect file (JSON):
// {
//   "hub": "tec-deventer",            // a hub id, "region:<region_id>" or "regions"
//   "hub_options": ["tec-deventer"],  // optional: exactly the hubs #filter-hub offers
//   "year": 2024,                     // KPI year Y = school year Y/Y+1
//   "kpis": [                         // rows of the KPI table that must be there
//     {"kpi": "vo_pupils", "band": null, "actual": 123, "met": true},
//     {"kpi": "po_participation_share", "band": "groep_7_8", "actual": 41.5, "met": false},
//     {"kpi": "satisfaction", "band": null, "actual": null, "met": null}
//   ],                                // "met" may be left out to skip that check
//   "kpi_rows": 5,                    // optional: exactly this many rows (the KPI set)
//   "charts": {                       // per chart container id
//     "chart-technical-share": {"series": "scope", "min_points": 3,
//        "points": [{"series": "scope", "x": "2024/25", "value": 31.25}]},
//     "chart-po-participation": {"min_points": 3},
//     "chart-activities": {"min_points": 1},
//     "chart-satisfaction": {"min_points": 1}
//   },                                // "series" (optional) restricts min_points to one series
//   "sql": "SELECT hub_id, count(*) AS n FROM activities GROUP BY hub_id",
//   "sql_rows": 5
// }
// Chart series: chart-technical-share: scope, baseline, national (x = school year);
// chart-effect: effect (x = school years since treated);
// chart-po-participation: actual, target (x = groep band); chart-activities: one per
// hub id (x = YYYY-MM); chart-satisfaction: scope, target (x = school year).

import { fail, launch, log, parseArgs, run, watchedPage } from './page.mjs';
import { readFileSync, mkdirSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';

const TOLERANCE = 1e-6;


function close(a, b) {
  return Math.abs(a - b) <= TOLERANCE * Math.max(1, Math.abs(a), Math.abs(b)) || Math.abs(a - b) <= TOLERANCE;
}

async function main() {
  const args = parseArgs(process.argv.slice(2), { timeout: '120' },
    ['url', 'token', 'expect', 'screenshot', 'downloads']);
  const expect = JSON.parse(readFileSync(args.expect, 'utf8'));
  const base = new URL(args.url);
  const timeout = Number(args.timeout) * 1000;
  mkdirSync(args.downloads, { recursive: true });

  const browser = await launch();
  try {
    const { page, problems } = await watchedPage(browser, base, timeout, { width: 1280, height: 900 });
    const checkProblems = () => { if (problems.length) fail(problems[0]); };

    // Resolves when the dashboard has finished computing `key` (hub:year) or any key.
    const settled = async (key) => {
      await page.waitForFunction((wanted) => {
        const state = document.body.dataset.state;
        if (state === 'needs-token') return true;
        if (state !== 'ready' && state !== 'error') return false;
        return !wanted || document.body.dataset.computed === wanted;
      }, key, { timeout });
      // The page's own message first: it says more than the console's.
      const state = await page.evaluate(() => document.body.dataset.state);
      if (state === 'needs-token') {
        fail(`the dashboard asks for a token: ${(await page.locator('#auth-error').textContent()).trim() || 'no token given'}`);
      }
      if (state === 'error') {
        fail(`the dashboard shows an error: ${await page.locator('#dashboard-error').textContent()}`);
      }
      checkProblems();
    };

    // 1. Open with the token in the fragment.
    const start = new URL(base);
    start.pathname = '/';
    start.hash = `token=${encodeURIComponent(args.token)}`;
    await page.goto(start.toString(), { waitUntil: 'domcontentloaded' });
    await settled(null);
    if ((await page.locator('#kpi-table tbody tr[data-kpi]').count()) === 0) fail('the KPI table has no KPI rows after loading');
    if (page.url().includes('token=')) fail(`the token is still in the visible URL: ${page.url()}`);
    log(`page loaded (${await page.locator('#kpi-table tbody tr[data-kpi]').count()} KPI rows for the default selection; token removed from the URL)`);

    // 2. Select hub and year.
    const hub = String(expect.hub);
    const year = String(expect.year);
    const options = async (id) => page.locator(`#${id} option`).evaluateAll((os) => os.map((o) => o.value));
    if (expect.hub_options) {
      const offered = await options('filter-hub');
      const wanted = expect.hub_options.map(String);
      if (offered.join(',') !== wanted.join(',')) fail(`#filter-hub offers ${offered.join(', ')}, expected exactly ${wanted.join(', ')}`);
      const opened = await page.locator('#filter-hub').inputValue();
      if (opened !== wanted[0]) fail(`the dashboard opened on ${opened}, expected ${wanted[0]}`);
      log(`#filter-hub offers exactly ${offered.join(', ')} and opened on ${opened}`);
    }
    if (!(await options('filter-hub')).includes(hub)) fail(`no hub ${hub} in #filter-hub (has ${(await options('filter-hub')).join(', ')})`);
    if (!(await options('filter-year')).includes(year)) fail(`no year ${year} in #filter-year (has ${(await options('filter-year')).join(', ')})`);
    await page.selectOption('#filter-hub', hub);
    await page.selectOption('#filter-year', year);
    await settled(`${hub}:${year}`);
    const versions = (await page.locator('#versions').textContent()).trim();
    if (!versions || versions === '—') fail('#versions shows no table versions');
    log(`selected hub ${hub}, year ${year}; table versions shown: ${versions}`);

    // 3. KPI rows.
    for (const want of expect.kpis || []) {
      const band = want.band === null || want.band === undefined ? '' : String(want.band);
      const name = `${want.kpi}${band ? `/${band}` : ''}`;
      const row = page.locator(`#kpi-table tbody tr[data-kpi="${want.kpi}"][data-band="${band}"]`);
      const count = await row.count();
      if (count !== 1) fail(`KPI ${name}: expected one row in #kpi-table, found ${count}`);
      const raw = await row.locator('td.actual').getAttribute('data-value');
      const shown = (await row.locator('td.actual').textContent()).trim();
      if (want.actual === null) {
        if (raw !== '') fail(`KPI ${name}: expected no actual (null), the page has ${raw}`);
      } else {
        const got = raw === '' || raw === null ? null : Number(raw);
        if (got === null || !Number.isFinite(got) || !close(got, Number(want.actual))) {
          fail(`KPI ${name}: expected actual ${want.actual}, the page has ${raw === '' ? 'none (null)' : raw}`);
        }
      }
      if ('met' in want) {
        const met = await row.locator('td.met').getAttribute('data-met');
        const expected = want.met === null ? '' : String(want.met);
        if (met !== expected) fail(`KPI ${name}: expected met ${want.met}, the page has ${met === '' ? 'null' : met}`);
      }
      log(`KPI ${name}: actual ${want.actual} (shown as "${shown}")${'met' in want ? `, met ${want.met}` : ''}`);
    }

    if (expect.kpi_rows !== undefined) {
      const rows = await page.locator('#kpi-table tbody tr[data-kpi]').count();
      if (rows !== Number(expect.kpi_rows)) fail(`#kpi-table has ${rows} KPI rows, expected exactly ${expect.kpi_rows}`);
      log(`#kpi-table has exactly ${rows} KPI rows`);
    }

    // 4. Charts.
    for (const [id, want] of Object.entries(expect.charts || {})) {
      const box = page.locator(`#${id}`);
      if ((await box.count()) !== 1) fail(`no chart container #${id}`);
      if ((await box.locator('svg').count()) === 0) {
        fail(`chart #${id} has no SVG: ${(await box.textContent()).trim()}`);
      }
      const marks = await box.locator('[data-series][data-value]').evaluateAll((es) =>
        es.map((e) => ({ series: e.getAttribute('data-series'), x: e.getAttribute('data-x'), value: e.getAttribute('data-value'), title: !!e.querySelector('title') })));
      const counted = want.series ? marks.filter((m) => m.series === want.series) : marks;
      const min = Number(want.min_points || 0);
      if (counted.length < min) {
        fail(`chart #${id}: expected at least ${min} points${want.series ? ` of series ${want.series}` : ''}, found ${counted.length}`);
      }
      const untitled = marks.filter((m) => !m.title);
      if (untitled.length) fail(`chart #${id}: ${untitled.length} data points have no <title> tooltip`);
      for (const p of want.points || []) {
        const found = marks.filter((m) => m.series === String(p.series) && m.x === String(p.x));
        if (found.length !== 1) {
          fail(`chart #${id}: expected one point of series ${p.series} at ${p.x}, found ${found.length} (series there: ${[...new Set(marks.map((m) => m.series))].join(', ')})`);
        }
        if (!close(Number(found[0].value), Number(p.value))) {
          fail(`chart #${id}: point ${p.series} at ${p.x}: expected ${p.value}, the chart has ${found[0].value}`);
        }
      }
      log(`chart #${id}: ${counted.length} points${want.series ? ` of series ${want.series}` : ''} (at least ${min})${(want.points || []).length ? `, ${want.points.length} values match` : ''}`);
    }
    checkProblems();

    // 5. SQL console and CSV download.
    if (expect.sql !== undefined) {
      const wantRows = Number(expect.sql_rows);
      await page.fill('#sql-input', String(expect.sql));
      await page.click('#sql-run');
      await page.waitForFunction(() => ['ok', 'error'].includes(document.getElementById('sql-status').dataset.state), null, { timeout });
      checkProblems();
      const status = (await page.locator('#sql-status').textContent()).trim();
      if ((await page.locator('#sql-status').getAttribute('data-state')) !== 'ok') fail(`the SQL console failed: ${status}`);
      const rows = await page.locator('#sql-results tbody tr').count();
      const shownRows = Math.min(wantRows, 1000);
      if (rows !== shownRows) fail(`the SQL console shows ${rows} rows, expected ${shownRows} (status: ${status})`);
      log(`SQL console: ${rows} rows (${status})`);

      const [download] = await Promise.all([
        page.waitForEvent('download', { timeout }),
        page.click('#download-csv'),
      ]);
      const failure = await download.failure();
      if (failure) fail(`the CSV download failed: ${failure}`);
      const name = download.suggestedFilename();
      if (name !== 'techmon-query.csv') fail(`the CSV download is named ${name}, expected techmon-query.csv`);
      const saved = path.join(args.downloads, name);
      await download.saveAs(saved);
      const text = await readFile(saved, 'utf8');
      const lines = text.split(/\r?\n/);
      if (lines.length && lines[lines.length - 1] === '') lines.pop();
      if (lines.length !== wantRows + 1) fail(`${saved} has ${lines.length} lines, expected a header and ${wantRows} rows`);
      log(`CSV download saved to ${saved} (${statSync(saved).size} bytes, header + ${lines.length - 1} rows)`);
      await page.waitForFunction(() => !document.getElementById('download-csv').disabled, null, { timeout });
    }

    // 6. Screenshot.
    await page.screenshot({ path: args.screenshot, fullPage: true });
    log(`screenshot saved to ${args.screenshot}`);
    checkProblems();
  } finally {
    await browser.close();
  }
  console.log('dashboard test passed');
}

run(main);
