// Two viewers of one live stream in Debian's Chromium (headless, through playwright-core),
// against a real streamedge server that the Rust test (tests/tests/web.rs) set up: both
// play it, both are counted, they chat (a script payload shows as text and runs nowhere),
// and a like from one reaches the other. Then a scheduled broadcast of an audio stream:
// counted down, and played in the audio view once its DJ goes live (the test prints
// "schedule-selected" and waits for a line on stdin: the DJ is live). Prints one JSON line
// of findings last; exits non-zero on failure.
//
// Environment: BASE, STREAM (a live stream), SCHEDULED (the audio stream's name), SHOTS.
import { chromium } from "playwright-core";
import { createInterface } from "node:readline";

const lines = createInterface({ input: process.stdin });
const input = lines[Symbol.asyncIterator]();

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

async function openPage() {
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
  return page;
}

async function viewer(nick) {
  const page = await openPage();
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

  // The scheduled broadcast: listed with a countdown; chosen, it says when it starts.
  const dave = await openPage();
  const item = dave.locator("#schedule li[data-broadcast]").first();
  await item.waitFor({ timeout: 10000 });
  found.scheduled = await item.textContent();
  // It counts down by itself: within a few seconds (timers run late on a busy machine).
  const first = await item.locator(".countdown").textContent();
  found.countdown_moves = await dave
    .waitForFunction((was) => document.querySelector("#schedule li[data-broadcast] .countdown")?.textContent !== was, first, { timeout: 5000, polling: 100 })
    .then(() => true, () => false);
  await item.locator("button").first().click();
  await dave.waitForFunction(() => /starts in/.test(document.getElementById("player-status").textContent), null, { timeout: 5000 });
  found.waiting_status = await text(dave, "#player-status");
  console.log("schedule-selected");
  await input.next();
  // The DJ is live: the page plays it, as sound, without a reload.
  await dave.waitForFunction(() => document.getElementById("video").currentTime > 0.5, null, { timeout: 40000, polling: 250 });
  found.audio_view = await dave.locator("#audio-view").isVisible();
  found.audio_live_bar = await dave.locator("#live-bar").isVisible();
  found.audio_chat = await dave.locator("#chat").isVisible();
  await dave.screenshot({ path: `${env("SHOTS")}/audio.png` });

  await ann.setViewportSize({ width: 390, height: 844 });
  found.phone_overflow = await ann.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  console.log(JSON.stringify(found));
} catch (e) {
  console.log(JSON.stringify({ ...found, error: String(e.message || e) }));
  process.exitCode = 1;
} finally {
  lines.close();
  await browser.close();
}
