// Glass-to-glass delay: what a viewer of the web page is behind the publisher. The publisher
// (bench/glass.sh) draws its own clock into every frame: 16 blocks across the top of the
// picture, block i white when bit i of the frame's time in tenths of a second is set. This
// opens the page in Debian's Chromium (headless, through playwright-core) on BASE/#play=PLAY,
// reads the blocks back off the picture on screen every 100 ms and compares the time they
// carry with the wall clock: delay = now - (T0 + frame time). Where a viewer lands depends
// on when the page loads against the publisher's segments, so VIEWERS pages are opened one
// after another, each measured for SECONDS_MEASURED. Prints one JSON line.
import { createRequire } from "node:module";

// playwright-core is installed with the page (web/node_modules), by `make deps`.
const { chromium } = createRequire(new URL("../web/package.json", import.meta.url))("playwright-core");
const { BASE, PLAY, T0 } = process.env;
const SECONDS = Number(process.env.SECONDS_MEASURED || 10);
const VIEWERS = Number(process.env.VIEWERS || 4);
if (!BASE || !PLAY || !T0) throw new Error("BASE, PLAY and T0 must be set");

function median(a) {
  const s = [...a].sort((x, y) => x - y);
  return s.length ? s[Math.floor(s.length / 2)] : null;
}

// One viewer: the page, its player at the live edge, SECONDS of frames read back.
async function watch(page) {
  // HLS_CONFIG='{"liveSyncDurationCount": 2}' tries other hls.js settings on the same page.
  if (process.env.HLS_CONFIG) {
    const extra = JSON.parse(process.env.HLS_CONFIG);
    await page.route("**/app.js", async (route) => {
      const body = await (await route.fetch()).text();
      const changed = body.replace(/new window\.Hls\(\{/, `new window.Hls({ ...${JSON.stringify(extra)},`);
      if (changed === body) throw new Error("app.js no longer creates hls.js as expected");
      await route.fulfill({ body: changed, contentType: "text/javascript" });
    });
  }
  await page.goto(`${BASE}/#play=${PLAY}`);
  await page.waitForFunction(
    () => {
      const v = document.getElementById("video");
      return v.currentTime > 1 && !v.paused && v.readyState >= 3;
    },
    null,
    { timeout: 60000, polling: 100 },
  );
  // LEVEL=480 watches that rendition of the ladder instead of what hls.js picks.
  if (process.env.LEVEL) {
    await page.evaluate((h) => {
      const hls = window.streamedge.hls;
      const i = hls.levels.findIndex((l) => l.height === h);
      if (i < 0) throw new Error(`no ${h}p rendition: ${hls.levels.map((l) => l.height)}`);
      hls.currentLevel = i;
    }, Number(process.env.LEVEL));
  }
  // hls.js settles on its live edge in the first seconds (SETTLE_SECONDS); measure after.
  await page.waitForTimeout(1000 * Number(process.env.SETTLE_SECONDS || 6));
  const found = await page.evaluate(
    async ([t0, seconds]) => {
      const v = document.getElementById("video");
      const canvas = document.createElement("canvas");
      canvas.width = 320;
      canvas.height = 180;
      const g = canvas.getContext("2d", { willReadFrequently: true });
      const delays = [];
      const latencies = [];
      const heights = new Set();
      let stalls = 0;
      v.addEventListener("waiting", () => stalls++);
      const end = performance.now() + seconds * 1000;
      while (performance.now() < end) {
        g.drawImage(v, 0, 0, 320, 180);
        const row = g.getImageData(0, 9, 320, 1).data;
        let tenths = 0;
        for (let i = 0; i < 16; i++) {
          const x = Math.floor((i + 0.5) * 20);
          if (row[x * 4] > 128) tenths += 2 ** i;
        }
        const delay = Date.now() - (t0 + tenths * 100);
        // A frame caught mid-change reads as nonsense: keep the plausible ones.
        if (delay > 0 && delay < 60000) delays.push(delay);
        const hls = window.streamedge.hls;
        if (hls && Number.isFinite(hls.latency)) latencies.push(hls.latency);
        heights.add(v.videoHeight);
        await new Promise((r) => setTimeout(r, 100));
      }
      return { delays, latencies, heights: [...heights], stalls, fatal: window.streamedge.fatalErrors };
    },
    [Number(T0), SECONDS],
  );
  await page.close();
  return found;
}

const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--autoplay-policy=no-user-gesture-required"],
});
const out = {};
try {
  const viewers = [];
  for (let n = 0; n < VIEWERS; n++) viewers.push(await watch(await browser.newPage()));
  const all = viewers.flatMap((v) => v.delays);
  out.viewers = viewers.map((v) => median(v.delays) / 1000);
  out.samples = all.length;
  out.delay_s = median(all) / 1000;
  out.delay_min_s = Math.min(...all) / 1000;
  out.delay_max_s = Math.max(...all) / 1000;
  out.hls_latency_s = median(viewers.flatMap((v) => v.latencies));
  out.heights = [...new Set(viewers.flatMap((v) => v.heights))];
  out.stalls = viewers.reduce((n, v) => n + v.stalls, 0);
  out.fatal = viewers.flatMap((v) => v.fatal);
  if (viewers.some((v) => v.delays.length < SECONDS * 5)) out.error = "too few readable frames";
} catch (e) {
  out.error = String(e);
} finally {
  await browser.close();
  console.log(JSON.stringify(out));
  process.exitCode = out.error ? 1 : 0;
}
