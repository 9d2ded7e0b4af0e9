// Two viewers of one live stream in Debian's Chromium (headless, through playwright-core),
// against a real streamedge server that the Rust test (tests/tests/web.rs) set up: both
// play it, both are counted, they chat (a script payload shows as text and runs nowhere),
// and a like from one reaches the other. Prints one JSON line of findings last; exits
// non-zero on failure.
//
// Environment: BASE, STREAM (a live stream), SHOTS.
import { chromium } from "playwright-core";

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set`);
  return v;
};
const BASE = env("BASE");
const STREAM = env("STREAM");
const PAYLOAD = `<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>`;
const found = { consoleErrors: [], external: [] };

const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-sync", "--autoplay-policy=no-user-gesture-required"],
});

async function viewer(nick) {
  // A context each: two browsers, as two people would have.
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  page.on("request", (r) => {
    if (!r.url().startsWith(BASE) && !r.url().startsWith("data:") && !r.url().startsWith("blob:")) found.external.push(r.url());
  });
  page.on("console", (m) => {
    if (m.type() === "error") found.consoleErrors.push(m.text());
  });
  page.on("pageerror", (e) => found.consoleErrors.push(String(e)));
  await page.goto(`${BASE}/`);
  await page.locator(`[data-stream="${STREAM}"] .play`).click();
  await page.waitForFunction(() => document.getElementById("video").currentTime > 0.5, null, { timeout: 30000, polling: 250 });
  await page.locator("#chat-status").waitFor({ state: "visible" });
  await page.waitForFunction(() => document.getElementById("chat-status").textContent === "", null, { timeout: 10000 });
  await page.fill("#chat-nick", nick);
  return page;
}

const text = (page, sel) => page.locator(sel).textContent();

try {
  const ann = await viewer("Ann");
  const bob = await viewer("Bob");
  found.live_bar = await ann.locator("#live-bar").isVisible();

  // Both are counted: the same address and browser, told apart by their session ids.
  await ann.waitForFunction(() => document.getElementById("viewers").textContent.startsWith("2 "), null, { timeout: 30000, polling: 500 });
  found.viewers = await text(ann, "#viewers");

  // A script in a message is text for everyone.
  await ann.fill("#chat-text", PAYLOAD);
  const sent = Date.now();
  await ann.keyboard.press("Enter");
  await bob.waitForFunction((p) => [...document.querySelectorAll("#chat-messages li")].some((li) => li.textContent.includes(p)), PAYLOAD, { timeout: 5000, polling: 20 });
  found.delivery_ms = Date.now() - sent;
  found.bob_saw = await bob.locator("#chat-messages li").last().textContent();
  await bob.waitForTimeout(300);
  found.elements_in_chat = await bob.evaluate(() => document.querySelectorAll("#chat-messages img, #chat-messages script").length);
  found.xss = await bob.evaluate(() => window.__xss ?? null);
  found.xss_sender = await ann.evaluate(() => window.__xss ?? null);

  await bob.fill("#chat-text", "hello Ann");
  await bob.keyboard.press("Enter");
  await ann.waitForFunction(() => [...document.querySelectorAll("#chat-messages li")].some((li) => li.textContent === "Bobhello Ann"), null, { timeout: 5000 });
  found.ann_saw = true;

  // A like: the button rests for 10 s, and the other viewer hears of it.
  await ann.click("#like");
  found.like_disabled = await ann.locator("#like").isDisabled();
  await bob.waitForFunction(() => document.getElementById("likes").textContent === "1 like", null, { timeout: 10000, polling: 100 });
  found.bob_likes = await text(bob, "#likes");
  await ann.waitForFunction(() => !document.getElementById("like").disabled, null, { timeout: 15000 });
  found.like_enabled_again = true;

  // A newcomer gets the history.
  const carol = await viewer("Carol");
  found.carol_history = await carol.locator("#chat-messages li").count();
  await ann.screenshot({ path: `${env("SHOTS")}/chat.png` });

  await ann.setViewportSize({ width: 390, height: 844 });
  found.phone_overflow = await ann.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  console.log(JSON.stringify(found));
} catch (e) {
  console.log(JSON.stringify({ ...found, error: String(e.message || e) }));
  process.exitCode = 1;
} finally {
  await browser.close();
}
