// Drives the web player in Debian's Chromium (headless, through playwright-core) against a
// real streamedge server that the Rust test (tests/tests/web.rs) set up. Talks to it on
// stdin/stdout: prints "offline-selected" and waits for "published" before checking that the
// stream starts by itself. Prints one JSON line of findings last; exits non-zero on failure.
//
// Environment: BASE (http://127.0.0.1:PORT), STREAM (a stream name that is offline),
// ITEM (a library item id), TOKEN (the API token), FETCH_URL, SHOTS (folder for screenshots).
import { chromium } from "playwright-core";
import { createInterface } from "node:readline";

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set`);
  return v;
};
const BASE = env("BASE");
const STREAM = env("STREAM");
const ITEM = env("ITEM");
const SHOTS = env("SHOTS");
const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
const found = { external: [], consoleErrors: [], failed: [] };

async function waitPlaying(page, what, timeout) {
  await page.waitForFunction(
    () => {
      const v = document.getElementById("video");
      return v.currentTime > 1.5 && !v.paused && window.streamedge.fatalErrors.length === 0;
    },
    null,
    { timeout, polling: 250 },
  ).catch(async (e) => {
    const st = await page.evaluate(() => ({
      t: document.getElementById("video").currentTime,
      status: document.getElementById("player-status").textContent,
      fatal: window.streamedge.fatalErrors,
    }));
    throw new Error(`${what} does not play: ${JSON.stringify(st)} (${e.message})`);
  });
}

const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
  ],
});
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.on("request", (r) => {
    const u = r.url();
    if (!u.startsWith(BASE) && !u.startsWith("blob:") && !u.startsWith("data:")) found.external.push(u);
  });
  page.on("response", (r) => {
    if (r.status() >= 400) found.failed.push(`${r.status()} ${new URL(r.url()).pathname}`);
  });
  page.on("console", (m) => {
    if (m.type() === "error") found.consoleErrors.push(m.text());
  });
  page.on("pageerror", (e) => found.consoleErrors.push(String(e)));

  await page.goto(`${BASE}/`);
  found.mse_h264 = await page.evaluate(() =>
    window.MediaSource ? MediaSource.isTypeSupported('video/mp4; codecs="avc1.64001f,mp4a.40.2"') : false,
  );

  // Live: the offline stream is listed; choosing it waits for it.
  const card = page.locator(`[data-stream="${STREAM}"] button.play`);
  await card.waitFor({ timeout: 15000 });
  await card.click();
  await page.waitForFunction(
    (name) => document.getElementById("player-status").textContent.includes(`${name} is offline`),
    STREAM,
    { timeout: 10000 },
  );
  console.log("offline-selected");
  const go = await lines.next();
  if (go.value !== "published") throw new Error(`unexpected instruction ${go.value}`);
  // No reload: the list refreshes itself and the player starts.
  await page.waitForSelector(`[data-stream="${STREAM}"] .badge.live`, { timeout: 30000 });
  await waitPlaying(page, "the live stream", 45000);
  found.live_time = await page.evaluate(() => document.getElementById("video").currentTime);
  found.live_meta = await page.locator(`[data-stream="${STREAM}"] .meta`).textContent();
  // The live tile shows the stream's thumbnail once the server has made one.
  found.live_thumbnail = await page
    .waitForFunction(
      (name) => {
        const img = document.querySelector(`[data-stream="${name}"] img`);
        return img && img.complete && img.naturalWidth > 0;
      },
      STREAM,
      { timeout: 30000, polling: 250 },
    )
    .then(
      () => true,
      async () => page.evaluate(async () => ({
        streams: await (await fetch("/api/streams")).json(),
        tile: document.querySelector(".card")?.outerHTML,
      })),
    );

  // Library, with the keyboard only.
  const item = page.locator(`[data-item="${ITEM}"] button.play`);
  await item.waitFor({ timeout: 10000 });
  await item.focus();
  await page.keyboard.press("Enter");
  await waitPlaying(page, "the library item", 30000);
  found.item_title = await page.locator("#now-playing").textContent();
  found.item_poster = await page.locator(`[data-item="${ITEM}"] img`).evaluate((i) => i.complete && i.naturalWidth > 0);

  // Fetch form: without a token it asks for one; with it, a job appears and finishes.
  await page.fill("#fetch-url", env("FETCH_URL"));
  await page.selectOption("#fetch-kind", "audio");
  await page.click('#fetch-form button[type="submit"]');
  await page.locator("#token-form").waitFor({ state: "visible", timeout: 5000 });
  await page.fill("#token", env("TOKEN"));
  await page.keyboard.press("Enter");
  await page.click('#fetch-form button[type="submit"]');
  const job = page.locator("#jobs li[data-job]").first();
  await job.waitFor({ timeout: 10000 });
  found.job = await job.getAttribute("data-job");
  await page.waitForSelector(`#jobs li[data-job="${found.job}"][data-state="done"]`, { timeout: 90000 });
  await page.waitForSelector(`[data-item="${found.job}"]`, { timeout: 40000 });
  found.fetch_status = await page.locator("#fetch-status").textContent();
  await page.screenshot({ path: `${SHOTS}/player.png`, fullPage: true });

  // A private item opens from the link `streamedge sign` prints, and only with it.
  console.log("want-signed");
  const link = (await lines.next()).value;
  await page.goto(link);
  await waitPlaying(page, "the signed link", 30000);
  found.unsigned_status = await page.evaluate(
    async (id) => (await fetch(`/vod/${id}/master.m3u8`, { cache: "no-store" })).status,
    ITEM,
  );

  // A phone screen: nothing wider than the screen.
  await page.setViewportSize({ width: 390, height: 844 });
  found.phone_overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  await page.screenshot({ path: `${SHOTS}/player-phone.png` });
  console.log(JSON.stringify(found));
} catch (e) {
  console.log(JSON.stringify({ ...found, error: String(e.message || e) }));
  process.exitCode = 1;
} finally {
  await browser.close();
  // Stop reading stdin, so node exits.
  process.stdin.destroy();
}
