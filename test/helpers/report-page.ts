import assert from 'node:assert/strict';
import type { Page } from 'playwright-core';

/** Launch options for Debian's Chromium, headless, with nothing reaching the network. */
export const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'];

/**
 * What a practitioner checks on any report page, at the page's viewport: counts visible in every
 * non-empty confusion cell with genres by support, counts on the reliability diagram, the
 * classification-report footer, every split in the headline, each nav click showing its section
 * heading below the sticky links, no overlapping boxes, and the resolved config whole in print.
 */
export async function checkReportPage(page: Page, genres: number): Promise<void> {
  const viewport = page.viewportSize()!;
  const cells = await page.$$eval('[data-chart="confusion"] path[role="graphics-symbol"] title', (t) => t.map((x) => x.textContent!));
  assert.equal(cells.length, genres * genres, `a ${genres} x ${genres} confusion matrix with hover text`);
  const counts = cells.map((t) => Number(/: (\d+)/.exec(t)![1]));
  const shown = await page.$$eval('[data-chart="confusion"] text', (t) => t.map((x) => x.textContent?.trim() ?? '').filter((x) => /^\d+$/.test(x)).map(Number));
  assert.deepEqual([...shown].sort((a, b) => a - b), counts.filter((n) => n > 0).sort((a, b) => a - b), 'every non-empty cell shows its count');
  const rowTotals = new Map<string, number>();
  for (const t of cells) {
    const [, truth, count] = /^true (\S+), predicted \S+: (\d+)/.exec(t)!;
    rowTotals.set(truth!, (rowTotals.get(truth!) ?? 0) + Number(count));
  }
  const supports = [...rowTotals.values()];
  assert.deepEqual(supports, [...supports].sort((a, b) => b - a), 'genres in order of support');
  const reliabilityCounts = await page.$$eval('[data-chart="reliability"] text', (t) => t.filter((x) => /^\d+$/.test(x.textContent?.trim() ?? '')).length);
  assert.ok(reliabilityCounts >= 2, 'the reliability diagram shows how many movies each bin holds');
  assert.deepEqual(await page.$$eval('table.per-class tfoot tr', (rows) => rows.map((r) => r.getAttribute('data-row'))), ['accuracy', 'macro avg', 'weighted avg']);
  assert.deepEqual(await page.$$eval('table.splits tr[data-split]', (rows) => rows.map((r) => r.getAttribute('data-split'))), ['train', 'validation', 'test']);

  const navHeight = await page.$eval('nav', (n) => n.getBoundingClientRect().height);
  assert.ok(navHeight < 80, `the sticky part is ${navHeight} px high`);
  for (const id of await page.$$eval('nav a', (links) => links.map((a) => a.getAttribute('href')!.slice(1)))) {
    await page.click(`nav a[href="#${id}"]`);
    await page.waitForTimeout(50);
    const box = await page.evaluate((sectionId) => {
      const h = document.querySelector(`#${sectionId} h2`)!.getBoundingClientRect();
      return { top: h.top, bottom: h.bottom, nav: document.querySelector('nav')!.getBoundingClientRect().bottom };
    }, id);
    // The last sections may not scroll to the top (the page ends); the heading is in view either way.
    assert.ok(box.top >= box.nav && box.bottom <= viewport.height, `#${id}: heading at ${box.top}-${box.bottom}, nav ends at ${box.nav}`);
  }
  await page.evaluate(() => window.scrollTo(0, 0));
  const overlaps = await page.evaluate(() => {
    const boxes = [...document.querySelectorAll('.headline .metric, .headline + .note, section > h2, section > .note, table.splits, p.versus, table.references')].map((e) => ({ name: `${e.tagName}.${e.className}`, r: e.getBoundingClientRect() }));
    const found: string[] = [];
    for (let i = 0; i < boxes.length; i++) {
      for (let j = i + 1; j < boxes.length; j++) {
        const a = boxes[i]!.r;
        const b = boxes[j]!.r;
        if (a.left < b.right - 1 && b.left < a.right - 1 && a.top < b.bottom - 1 && b.top < a.bottom - 1) found.push(`${boxes[i]!.name} / ${boxes[j]!.name}`);
      }
    }
    return found;
  });
  assert.deepEqual(overlaps, []);
  await page.emulateMedia({ media: 'print' });
  const pre = await page.$eval('#provenance pre', (e) => ({ scroll: e.scrollHeight, client: e.clientHeight }));
  assert.ok(pre.scroll <= pre.client + 1, `the printed config shows all of its ${pre.scroll} px`);
  await page.emulateMedia({ media: 'screen' });
}
