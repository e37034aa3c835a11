// What the browser checks share: their arguments and outcome, Debian's Chromium,
// headless, and a page watched for JavaScript errors, console errors and requests to
// another origin than `base`.

import { chromium } from 'playwright-core';

export function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

// A new page of `browser` that takes downloads; `problems` gathers what went wrong
// on it, as soon as seen.
export async function watchedPage(browser, base, timeout, viewport) {
  const context = await browser.newContext({ acceptDownloads: true, viewport });
  const page = await context.newPage();
  page.setDefaultTimeout(timeout);
  const problems = [];
  page.on('pageerror', (error) => problems.push(`page JavaScript error: ${error.message}`));
  page.on('console', (message) => {
    if (message.type() === 'error') problems.push(`console error: ${message.text()}`);
  });
  page.on('request', (request) => {
    const url = new URL(request.url());
    if (!['data:', 'blob:'].includes(url.protocol) && url.origin !== base.origin) {
      problems.push(`the page requested another origin: ${request.url()}`);
    }
  });
  return { page, problems };
}

// A check that found the page other than expected, and a wrong command line.
export class Mismatch extends Error {}
class Usage extends Error {}
export const fail = (message) => { throw new Mismatch(message); };
export const log = (message) => console.log(`ok: ${message}`);

// `--name value` or `--name=value` arguments over `defaults`; each of `needed` must
// be given.
export function parseArgs(argv, defaults, needed) {
  const args = { ...defaults };
  for (let i = 0; i < argv.length; i += 1) {
    const arg = argv[i];
    if (!arg.startsWith('--')) throw new Usage(`unexpected argument ${arg}`);
    const [name, inline] = arg.slice(2).split(/=(.*)/s, 2);
    const value = inline !== undefined ? inline : argv[++i];
    if (value === undefined) throw new Usage(`--${name} needs a value`);
    args[name] = value;
  }
  for (const name of needed) {
    if (!args[name]) throw new Usage(`missing --${name} (needed: ${needed.map((n) => `--${n}`).join(' ')})`);
  }
  return args;
}

// Runs a check: exit 0 when it passed, 1 when it failed (one clear message), 2 for a
// wrong command line.
export function run(main) {
  main().then(
    () => process.exit(0),
    (error) => {
      if (error instanceof Usage) {
        console.error(`usage error: ${error.message}`);
        process.exit(2);
      }
      console.error(`FAIL: ${error instanceof Mismatch ? error.message : (error && error.stack) || error}`);
      process.exit(1);
    },
  );
}
