// Drives the web page's restream and relay section in Debian's Chromium (headless, through
// playwright-core) against a real streamedge server that the Rust test (tests/tests/web.rs)
// set up: hidden without the token; with it, a destination is added (its key typed into a
// password field, never shown after), disabled and removed, and a relay of a live channel is
// added, whose stream's tile then shows the channel's title. Prints one JSON line of findings
// last; exits non-zero on failure.
//
// Environment: BASE, TOKEN, DEST_URL (an RTMP URL with a stream key), DEST_KEY (that key),
// CHANNEL (a channel page that is live), TITLE (its title), SHOTS.
import { chromium } from "playwright-core";

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set`);
  return v;
};
const BASE = env("BASE");
const KEY = env("DEST_KEY");
const found = { consoleErrors: [], external: [] };

const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-sync"],
});
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
  page.on("request", (r) => {
    if (!r.url().startsWith(BASE) && !r.url().startsWith("data:")) found.external.push(r.url());
  });
  page.on("console", (m) => {
    if (m.type() === "error") found.consoleErrors.push(m.text());
  });
  page.on("pageerror", (e) => found.consoleErrors.push(String(e)));
  page.on("dialog", (d) => d.accept());

  await page.goto(`${BASE}/`);
  await page.waitForTimeout(500);
  found.hidden_without_token = await page.locator("#restream-section").isHidden();

  await page.click("#token-button");
  await page.fill("#token", env("TOKEN"));
  await page.keyboard.press("Enter");
  await page.locator("#restream-section").waitFor({ state: "visible", timeout: 10000 });

  // A destination: the key goes into a password field and is gone from the page after.
  await page.fill("#restream-stream", "cam");
  await page.fill("#restream-url", env("DEST_URL"));
  found.url_field_type = await page.getAttribute("#restream-url", "type");
  await page.fill("#restream-label", "Sink");
  await page.click('#restream-form button[type="submit"]');
  const row = page.locator("#restreams li[data-restream]").first();
  await row.waitFor({ timeout: 10000 });
  found.destination_row = await row.textContent();
  found.url_field_after = await page.inputValue("#restream-url");
  found.key_in_page = (await page.content()).includes(KEY);
  found.destination = await row.getAttribute("data-restream");

  await row.locator("button", { hasText: "Disable" }).click();
  await page.waitForSelector(`#restreams li[data-restream="${found.destination}"][data-state="disabled"]`, { timeout: 10000 });
  found.disabled = true;

  // A bad one: the server's reason, shown.
  await page.fill("#restream-stream", "cam");
  await page.fill("#restream-url", "http://example.invalid/x");
  await page.click('#restream-form button[type="submit"]');
  await page.waitForFunction(() => document.getElementById("restream-status").textContent.includes("rtmp://"), null, { timeout: 10000 });
  found.bad_status = await page.locator("#restream-status").textContent();

  // A relay of the live channel: watched; its stream's tile shows the channel's title.
  await page.fill("#relay-stream", "dj");
  await page.fill("#relay-from", env("CHANNEL"));
  await page.click('#relay-form button[type="submit"]');
  await page.waitForSelector('#relays li[data-relay="dj"][data-state="live"]', { timeout: 90000 });
  found.relay_row = await page.locator('#relays li[data-relay="dj"]').textContent();
  await page.waitForFunction(
    (title) => document.querySelector('[data-stream="dj"] .description')?.textContent === title,
    env("TITLE"),
    { timeout: 30000, polling: 250 },
  );
  found.tile_title = await page.locator('[data-stream="dj"] .description').textContent();
  await page.screenshot({ path: `${env("SHOTS")}/restream.png`, fullPage: true });

  // Removed, both.
  await page.locator(`#restreams li[data-restream="${found.destination}"] button`, { hasText: "Remove" }).click();
  await page.waitForSelector(`#restreams li[data-restream="${found.destination}"]`, { state: "detached", timeout: 10000 });
  await page.locator('#relays li[data-relay="dj"] button', { hasText: "Remove" }).click();
  await page.waitForSelector('#relays li[data-relay="dj"]', { state: "detached", timeout: 10000 });
  found.removed = true;

  await page.setViewportSize({ width: 390, height: 844 });
  found.phone_overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  console.log(JSON.stringify(found));
} catch (e) {
  console.log(JSON.stringify({ ...found, error: String(e.message || e) }));
  process.exitCode = 1;
} finally {
  await browser.close();
}
