// What the browser checks share: Debian's Chromium, headless, and a page watched for
// JavaScript errors, console errors and requests to another origin than `base`.

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
