// Glass-to-glass delay: what a viewer of the web page is behind the publisher. The publisher
// (bench/glass.sh) draws its own clock into every frame: 16 blocks across the top of the
// picture, block i white when bit i of the frame's time in tenths of a second is set. This
// opens the page in Debian's Chromium (headless, through playwright-core) on BASE/#play=PLAY,
// reads the blocks back off the picture on screen every 100 ms and compares the time they
// carry with the wall clock: delay = now - (T0 + frame time). Prints one JSON line.
import { chromium } from "playwright-core";

const { BASE, PLAY, T0 } = process.env;
const SECONDS = Number(process.env.SECONDS_MEASURED || 30);
if (!BASE || !PLAY || !T0) throw new Error("BASE, PLAY and T0 must be set");

const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--autoplay-policy=no-user-gesture-required"],
});
const out = {};
try {
  const page = await browser.newPage();
  await page.goto(`${BASE}/#play=${PLAY}`);
  await page.waitForFunction(
    () => {
      const v = document.getElementById("video");
      return v.currentTime > 1 && !v.paused && v.readyState >= 3;
    },
    null,
    { timeout: 60000, polling: 100 },
  );
  // hls.js settles on its live edge in the first seconds; measure after that.
  await page.waitForTimeout(5000);
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
      return { delays, latencies, heights: [...heights], stalls };
    },
    [Number(T0), SECONDS],
  );
  const median = (a) => {
    const s = [...a].sort((x, y) => x - y);
    return s.length ? s[Math.floor(s.length / 2)] : null;
  };
  out.samples = found.delays.length;
  out.delay_s = median(found.delays) / 1000;
  out.delay_min_s = Math.min(...found.delays) / 1000;
  out.delay_max_s = Math.max(...found.delays) / 1000;
  out.hls_latency_s = median(found.latencies);
  out.heights = found.heights;
  out.stalls = found.stalls;
  out.fatal = await page.evaluate(() => window.streamedge.fatalErrors);
  if (out.samples < SECONDS * 5) out.error = `only ${out.samples} readable frames`;
} catch (e) {
  out.error = String(e);
} finally {
  await browser.close();
  console.log(JSON.stringify(out));
  process.exitCode = out.error ? 1 : 0;
}
