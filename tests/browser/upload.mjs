#!/usr/bin/env node
// Headless-browser test of the upload page (ingest/assets/upload), served by techmon
// at GET /upload with the ingest API on the same origin.
//
//   node tests/browser/upload.mjs --url http://127.0.0.1:PORT --token HUB_TOKEN \
//        --file SHEET.xlsx --kind KIND --expect EXPECT.json --downloads DIR \
//        --screenshot OUT.png [--timeout SECONDS]
//
// What it does, failing (exit 1, one clear message) at the first mismatch:
//  1. opens URL/upload#token=TOKEN; checks the token left the visible URL;
//  2. chooses the file (the kind must be recognised from its name) and sends it;
//     checks each row of the results table (data-line, data-status) and the fields
//     of its problems against `rows`;
//  3. downloads the refused rows; checks the file has the header plus one line per
//     refused row, with the column geweigerd_omdat;
//  4. applies `fix` to the downloaded file (each [from, to] replaced once), chooses
//     the fixed file under a name that tells no kind (the kind must be recognised
//     from its columns), sends it and checks its rows against `fixed_rows`;
//  5. checks the hub's recent uploads list both sends, the latest first, with their
//     counts;
//  6. takes a full-page screenshot;
// and fails on any page JavaScript error, console error, or request to another origin.
//
// Expect file (JSON):
// {
//   "rows": [{"line": 2, "status": "accepted", "fields": []},
//            {"line": 4, "status": "rejected", "fields": ["/payload/groep"]}],
//   "fix": [["acht", "8"]],
//   "fixed_rows": [{"line": 2, "status": "accepted", "fields": []}]
// }

import { fail, launch, log, parseArgs, run, watchedPage } from './page.mjs';
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';

// An upload's counts as the server's record has them.
function summary(rows) {
  const count = (status) => rows.filter((r) => r.status === status).length;
  return `${count('accepted')} accepted, ${count('corrected')} corrected, `
    + `${count('duplicate')} duplicates, ${count('rejected')} refused`;
}

async function main() {
  const args = parseArgs(process.argv.slice(2), { timeout: '60' },
    ['url', 'token', 'file', 'kind', 'expect', 'downloads', 'screenshot']);
  const expect = JSON.parse(readFileSync(args.expect, 'utf8'));
  const base = new URL(args.url);
  const timeout = Number(args.timeout) * 1000;
  mkdirSync(args.downloads, { recursive: true });
  const browser = await launch();
  try {
    const { page, problems } = await watchedPage(browser, base, timeout, { width: 1200, height: 900 });
    const checkProblems = () => { if (problems.length) fail(problems[0]); };

    // 1. Open with the token in the fragment.
    const start = new URL('/upload', base);
    start.hash = `token=${encodeURIComponent(args.token)}`;
    await page.goto(start.toString(), { waitUntil: 'domcontentloaded' });
    await page.waitForFunction(() => ['ready', 'needs-token'].includes(document.body.dataset.state));
    if (await page.evaluate(() => document.body.dataset.state) !== 'ready') fail('the page asks for a token');
    if (page.url().includes('token=')) fail(`the token is still in the visible URL: ${page.url()}`);
    checkProblems();
    log('page loaded with the token (removed from the URL)');

    // Sends a file and checks the rows of the answer.
    const sendAndCheck = async (file, rows, what, from) => {
      await page.setInputFiles('#file-input', file);
      await page.waitForFunction(() => document.getElementById('kind-hint').textContent !== '');
      const kind = await page.locator('#kind-select').inputValue();
      const hint = await page.locator('#kind-hint').textContent();
      if (kind !== args.kind || !hint.includes(from)) {
        fail(`${what}: the kind recognised is ${kind} (${hint}), not ${args.kind} ${from}`);
      }
      await page.evaluate(() => { document.body.dataset.state = 'ready'; });
      await page.click('#send');
      await page.waitForFunction(() => document.body.dataset.state === 'answered'
        || !document.getElementById('upload-error').hidden);
      const error = page.locator('#upload-error');
      if (await error.isVisible()) fail(`${what}: ${await error.textContent()}`);
      checkProblems();
      const shown = await page.$$eval('#results tbody tr', (trs) => trs.map((tr) => ({
        line: Number(tr.dataset.line),
        status: tr.dataset.status,
        fields: [...tr.cells[3].textContent.matchAll(/(\/[^:;]*):/g)].map((m) => m[1]),
      })));
      const wanted = rows.map(({ line, status, fields }) => ({ line, status, fields }));
      if (JSON.stringify(shown) !== JSON.stringify(wanted)) {
        fail(`${what}: the page shows ${JSON.stringify(shown)}, expected ${JSON.stringify(wanted)}`);
      }
      log(`${what}: ${rows.length} rows as expected`);
    };

    // 2. The sheet as it is.
    await sendAndCheck(args.file, expect.rows, 'the sheet', "from the file's name");

    // 3. Its refused rows, downloaded.
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#download-refused')]);
    const refusedFile = path.join(args.downloads, download.suggestedFilename());
    await download.saveAs(refusedFile);
    checkProblems();
    const text = readFileSync(refusedFile, 'utf8');
    const lines = text.trim().split(/\r?\n/);
    const refused = expect.rows.filter((r) => r.status === 'rejected').length;
    if (!lines[0].split(';').includes('geweigerd_omdat')) fail(`the refused rows have no reasons column: ${lines[0]}`);
    if (lines.length !== refused + 1) fail(`the refused rows file has ${lines.length - 1} rows, expected ${refused}`);
    log(`downloaded ${refused} refused rows to ${refusedFile}`);

    // 4. Fixed, and sent again.
    let fixed = text;
    for (const [from, to] of expect.fix) {
      if (!fixed.includes(from)) fail(`the refused rows do not hold ${from}`);
      fixed = fixed.replace(from, to);
    }
    const fixedFile = path.join(args.downloads, 'fixed.csv');
    writeFileSync(fixedFile, fixed);
    await sendAndCheck(fixedFile, expect.fixed_rows, 'the fixed rows', "from the sheet's columns");

    // 5. Both uploads in the hub's recent uploads, the latest first.
    const recent = await page.$$eval('#uploads tbody tr', (trs) => trs.map((tr) => tr.cells[1].textContent));
    const wanted = [`${args.kind}: ${summary(expect.fixed_rows)}`, `${args.kind}: ${summary(expect.rows)}`];
    if (JSON.stringify(recent.slice(0, 2)) !== JSON.stringify(wanted)) {
      fail(`the recent uploads show ${JSON.stringify(recent)}, expected first ${JSON.stringify(wanted)}`);
    }
    log(`the recent uploads list both: ${recent.length} in all`);

    await page.screenshot({ path: args.screenshot, fullPage: true });
    checkProblems();
  } finally {
    await browser.close();
  }
}

run(main);
