/**
 * The live view: the server refuses requests without the token, is
 * read-only and loopback-only; in real headless Chromium (Debian's
 * chromium driven by playwright-core) the page shows the areas a client
 * mapped, follows an unmap, and its screenshot holds a drawing. Skips with
 * the reason when Chromium does not start. With UIOMMU_SCREENSHOT=PATH the
 * page's screenshot is also written there (docs/live-view.png).
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { kernelState } from '../../src/host/state.ts';
import { type LiveView, serveLiveView } from '../../src/server/live-view.ts';
import { map, memAt, PAGE } from '../iommufd/util.ts';
import { setup } from '../support.ts';

const ASSETS = resolve(import.meta.dirname, '../../src/server/live-view');
const CHROMIUM = '/usr/bin/chromium';
const AREA_FILL = '#3b6fd8';
const VA = 0x4000_0000n;

type Browser = Awaited<
  ReturnType<typeof import('playwright-core')['chromium']['launchPersistentContext']>
>;

/** Debian's chromium through playwright-core in a fresh profile, or why it cannot start. */
async function startChromium(profile: string): Promise<Browser | string> {
  if (!existsSync(CHROMIUM)) return `${CHROMIUM} is not installed (apt-get install chromium)`;
  try {
    const { chromium } = await import('playwright-core');
    const browser = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      viewport: { width: 1100, height: 900 },
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
    // the probe: it renders a page
    const probe = await browser.newPage();
    await probe.setContent('<p id="p">ok</p>');
    if ((await probe.textContent('#p')) !== 'ok') return 'chromium renders nothing';
    await probe.close();
    return browser;
  } catch (e) {
    return `chromium does not start: ${(e as Error).message.split('\n')[0]}`;
  }
}

describe('live view', () => {
  const f = setup();
  const ioas = f.ioas();
  f.intelDevice({ reserved: [{ start: 0xfee0_0000n, last: 0xfeef_ffffn, kind: 'msi' }] }).attach(
    ioas,
  );
  const va = memAt(f, VA, 4n * PAGE);
  map(f, ioas, va, PAGE, { iova: 0x10_0000n });
  map(f, ioas, va + PAGE, 2n * PAGE, { iova: 0x40_0000n });
  const calls: string[] = [];
  f.proc.trace = (line) => calls.push(line);
  let view: LiveView;
  let profile: string;

  before(async () => {
    view = await serveLiveView({
      state: () => ({ ...kernelState(f.kernel), calls, warnings: [] }),
      assets: ASSETS,
      intervalMs: 50,
    });
    profile = mkdtempSync(join(tmpdir(), 'uiommu-chromium-'));
  });
  after(async () => {
    await view.close();
    rmSync(profile, { recursive: true, force: true });
  });

  it('listens on 127.0.0.1 only; no token or a wrong one is 403; anything but GET is 405', async () => {
    const url = new URL(view.url);
    assert.equal(url.hostname, '127.0.0.1');
    assert.match(view.token, /^[0-9a-f]{32}$/);
    const base = `${url.origin}/state`;
    assert.equal((await fetch(base)).status, 403);
    assert.equal((await fetch(`${base}?token=${'0'.repeat(32)}`)).status, 403);
    assert.equal((await fetch(`${url.origin}/view.js`)).status, 403);
    const ok = await fetch(`${base}?token=${view.token}`);
    assert.equal(ok.status, 200);
    const s = (await ok.json()) as ReturnType<typeof kernelState>;
    assert.deepEqual(
      s.contexts[0]?.ioas[0]?.areas.map((a) => [a.start, a.last]),
      [
        ['0x100000', '0x100fff'],
        ['0x400000', '0x401fff'],
      ],
    );
    const post = await fetch(`${base}?token=${view.token}`, { method: 'POST', body: '{}' });
    assert.equal(post.status, 405);
  });

  it('in Chromium: shows the mapped areas, follows an unmap, and draws', async (t) => {
    const browser = await startChromium(profile);
    if (typeof browser === 'string') return t.skip(browser);
    try {
      const page = await browser.newPage();
      const errors: string[] = [];
      page.on('pageerror', (e) => errors.push(e.message));
      await page.goto(view.url);
      const areas = `svg.map[data-key="c0-ioas${ioas}"] rect[fill="${AREA_FILL}"]`;
      await page.waitForFunction((sel) => document.querySelectorAll(sel).length === 2, areas);
      assert.match((await page.textContent('body')) ?? '', /IOAS 1: 2 areas, alignment 0x1000/);
      const out = process.env.UIOMMU_SCREENSHOT;
      if (out)
        writeFileSync(
          out,
          await page.screenshot({ clip: { x: 0, y: 0, width: 1100, height: 560 } }),
        );

      const u = f.call('IOMMU_IOAS_UNMAP', { ioas_id: ioas, iova: 0x40_0000n, length: 2n * PAGE });
      assert.equal(u.ret, 0);
      await page.waitForFunction((sel) => document.querySelectorAll(sel).length === 1, areas);
      await page.waitForFunction(() => document.body.textContent?.includes('IOMMU_IOAS_UNMAP'));

      const map = page.locator(`svg.map[data-key="c0-ioas${ioas}"]`);
      // the view keeps its zoom across updates: fit it to what is left
      await map.locator('xpath=..').getByRole('button', { name: 'fit' }).click();
      const png = await map.screenshot();
      // decoded by the browser: pixels that differ from the map's background, and the area's blue
      const counts = await page.evaluate(async (b64) => {
        const img = new Image();
        img.src = `data:image/png;base64,${b64}`;
        await img.decode();
        const c = document.createElement('canvas');
        c.width = img.width;
        c.height = img.height;
        const g = c.getContext('2d')!;
        g.drawImage(img, 0, 0);
        const d = g.getImageData(0, 0, c.width, c.height).data;
        let drawn = 0;
        let blue = 0;
        for (let i = 0; i < d.length; i += 4) {
          const [r, gr, b] = [d[i]!, d[i + 1]!, d[i + 2]!];
          if (Math.abs(r - 0xfb) + Math.abs(gr - 0xfc) + Math.abs(b - 0xfe) > 24) drawn++;
          if (Math.abs(r - 0x3b) + Math.abs(gr - 0x6f) + Math.abs(b - 0xd8) < 40) blue++;
        }
        return { drawn, blue, total: d.length / 4 };
      }, png.toString('base64'));
      assert.ok(counts.total > 10_000, `a real drawing area (${counts.total} px)`);
      assert.ok(counts.drawn > counts.total / 50, `not blank: ${counts.drawn} drawn px`);
      assert.ok(counts.blue > 20, `the remaining area is drawn (${counts.blue} blue px)`);
      assert.deepEqual(errors, [], 'no script errors');
    } finally {
      await browser.close();
    }
  });
});
