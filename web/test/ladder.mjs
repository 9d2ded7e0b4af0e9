// Plays a live stream's adaptive ladder in the web player, in Debian's Chromium (headless,
// through playwright-core), and forces hls.js onto each rendition in turn: the picture must
// change to that rendition's height and keep playing. The Rust test (tests/tests/live.rs)
// publishes the stream and starts this with BASE (http://127.0.0.1:PORT) and STREAM. Prints
// one JSON line of findings; exits non-zero on failure.
import { chromium } from "playwright-core";

const BASE = process.env.BASE;
const STREAM = process.env.STREAM;
if (!BASE || !STREAM) throw new Error("BASE and STREAM must be set");
const found = { levels: [], switched: [], failed: [] };

const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--autoplay-policy=no-user-gesture-required"],
});
try {
  const page = await browser.newPage();
  page.on("response", (r) => {
    if (r.status() >= 400) found.failed.push(`${r.status()} ${new URL(r.url()).pathname}`);
  });
  // The page's own way in for a link to a stream.
  await page.goto(`${BASE}/#play=/live/${STREAM}/`);
  await page.waitForFunction(
    () => {
      const s = window.streamedge;
      const v = document.getElementById("video");
      return s.hls && s.hls.levels.length > 1 && v.currentTime > 1 && !v.paused;
    },
    null,
    { timeout: 60000, polling: 250 },
  );
  found.levels = await page.evaluate(() => window.streamedge.hls.levels.map((l) => l.height));
  for (let i = 0; i < found.levels.length; i++) {
    const height = found.levels[i];
    const start = await page.evaluate((level) => {
      window.streamedge.hls.currentLevel = level;
      return document.getElementById("video").currentTime;
    }, i);
    // The new rendition is on screen and the clock goes on.
    await page.waitForFunction(
      ([h, t]) => {
        const v = document.getElementById("video");
        return v.videoHeight === h && v.currentTime > t + 1 && !v.paused;
      },
      [height, start],
      { timeout: 45000, polling: 250 },
    );
    found.switched.push(height);
  }
  found.fatal = await page.evaluate(() => window.streamedge.fatalErrors);
} catch (e) {
  found.error = String(e);
} finally {
  await browser.close();
  console.log(JSON.stringify(found));
  process.exitCode = found.error ? 1 : 0;
}
