// The streamedge web player: live streams from /api/streams, the library from /api/library,
// fetch jobs through /api/jobs, restreams and relays through /api/restreams and /api/relays,
// a live stream's chat over a WebSocket (/api/streams/NAME/chat/ws), likes through
// /api/streams/NAME/like. Plain DOM, hls.js for HLS where the browser lacks it. Text from
// others (titles, chat) only ever goes into text nodes, never into HTML.
"use strict";

const $ = (id) => document.getElementById(id);
const video = $("video");
const TOKEN_KEY = "streamedge-token";

// What the browser test (and a curious person in the console) can read.
const state = (window.streamedge = {
  current: null, // { kind: "live", name } or { kind: "vod", src, title }
  fatalErrors: [],
  hls: null,
  chat: null, // { name, ws, retry }
  live: null, // the entry of /api/streams of the live stream shown
});
const NICK_KEY = "streamedge-nick";
const LIKE_PAUSE_MS = 10000;

function token() {
  return localStorage.getItem(TOKEN_KEY) || "";
}

async function api(path, options = {}) {
  const headers = { Accept: "application/json", ...(options.headers || {}) };
  if (token()) headers.Authorization = "Bearer " + token();
  const resp = await fetch(path, { ...options, headers, cache: "no-store" });
  let body = null;
  if (resp.status !== 204) {
    try {
      body = await resp.json();
    } catch {
      body = null;
    }
  }
  return { status: resp.status, ok: resp.ok, body };
}

function el(tag, props = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null) e.setAttribute(k, v);
  }
  for (const c of children) e.append(c);
  return e;
}

function clock(seconds) {
  seconds = Math.max(0, Math.round(seconds));
  const h = Math.floor(seconds / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = String(seconds % 60).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${s}` : `${m}:${s}`;
}

function say(text) {
  $("player-status").textContent = text;
}

// --- playing -------------------------------------------------------------------------

function stop() {
  if (state.hls) {
    state.hls.destroy();
    state.hls = null;
  }
  video.removeAttribute("src");
  video.load();
  audioOnly(false);
}

// A stream or item with sound and no picture shows the audio view over a slim player.
function audioOnly(on) {
  $("audio-view").hidden = !on;
  $("player").classList.toggle("player-audio", on);
}

// One id per playback, sent with each request as Apple's players do: the server counts a
// player once however often it asks, and tells players behind one address apart.
function sessionId() {
  const b = new Uint8Array(16);
  crypto.getRandomValues(b);
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

function play(src, title, isLive) {
  stop();
  $("now-playing").textContent = title;
  const nativeHls = video.canPlayType("application/vnd.apple.mpegurl");
  if (window.Hls && window.Hls.isSupported()) {
    // Two segments behind the live edge, and a little faster (at most 1.1x) when further
    // behind: bench/glass.sh measured what each setting gives.
    const session = sessionId();
    const hls = new window.Hls({
      liveDurationInfinity: true,
      enableWorker: true,
      liveSyncDurationCount: 2,
      maxLiveSyncPlaybackRate: 1.1,
      xhrSetup: (xhr) => xhr.setRequestHeader("X-Playback-Session-Id", session),
    });
    state.hls = hls;
    hls.on(window.Hls.Events.BUFFER_CODECS, (_, tracks) => audioOnly(!tracks.video && !!tracks.audio));
    hls.on(window.Hls.Events.ERROR, (_, data) => {
      if (!data.fatal) return;
      state.fatalErrors.push(`${data.type}: ${data.details}`);
      stop();
      if (isLive) {
        say("The stream stopped. It plays again when it comes back.");
        state.playingLive = null;
      } else {
        say(`Cannot play this item (${data.details}).`);
      }
    });
    hls.loadSource(src);
    hls.attachMedia(video);
  } else if (nativeHls) {
    video.src = src;
  } else {
    say("This browser cannot play HLS.");
    return;
  }
  video.play().catch(() => say("Press play to start."));
  say(isLive ? "Live." : "Playing.");
}

function watchLive(name) {
  state.current = { kind: "live", name };
  state.playingLive = null;
  stop();
  $("now-playing").textContent = name;
  openChat(name);
  refreshLive();
}

function watchItem(src, title) {
  state.current = { kind: "vod", src, title };
  closeChat();
  showLive(null);
  play(src, title, false);
}

// --- the live bar: time on air, viewers, likes ----------------------------------------

function plural(n, one, many) {
  return `${n} ${n === 1 ? one : many}`;
}

function showLive(s) {
  state.live = s && s.live ? s : null;
  $("live-bar").hidden = !state.live;
  if (!state.live) return;
  tickOnAir();
  const a = s.audience || { viewers: 0, likes: 0 };
  $("viewers").textContent = plural(a.viewers, "watching", "watching");
  $("likes").textContent = plural(a.likes, "like", "likes");
}

function tickOnAir() {
  const s = state.live;
  if (s && s.since) $("on-air").textContent = `on air ${clock((Date.now() - Date.parse(s.since)) / 1000)}`;
}

async function like() {
  const cur = state.current;
  if (!cur || cur.kind !== "live") return;
  const button = $("like");
  button.disabled = true;
  setTimeout(() => (button.disabled = false), LIKE_PAUSE_MS);
  const r = await api(`/api/streams/${encodeURIComponent(cur.name)}/like`, { method: "POST" });
  if (r.ok && r.body && typeof r.body.likes === "number") {
    $("likes").textContent = plural(r.body.likes, "like", "likes");
  } else if (r.status === 429) {
    say("Too many likes from here: wait a little.");
  }
}

// --- chat ----------------------------------------------------------------------------

function closeChat() {
  const c = state.chat;
  state.chat = null;
  if (c) {
    clearTimeout(c.retry);
    if (c.ws) c.ws.close();
  }
  $("chat").hidden = true;
  $("chat-messages").replaceChildren();
}

function chatLine(m) {
  const li = el("li", { "data-id": String(m.id) }, el("span", { class: "nick" }, m.nick), m.text);
  li.title = new Date(m.at).toLocaleTimeString();
  if (token()) {
    li.append(el("button", { type: "button", class: "del", "aria-label": `Delete the message of ${m.nick}`, onclick: () => deleteMessage(m.id) }, "✕"));
  }
  return li;
}

function addMessages(list, replace) {
  const box = $("chat-messages");
  const atEnd = box.scrollTop + box.clientHeight >= box.scrollHeight - 8;
  const lines = list.map(chatLine);
  if (replace) box.replaceChildren(...lines);
  else box.append(...lines);
  while (box.children.length > 100) box.firstChild.remove();
  if (atEnd || replace) box.scrollTop = box.scrollHeight;
}

function openChat(name, tries = 0) {
  if (state.chat && state.chat.name === name) return;
  closeChat();
  const c = (state.chat = { name, ws: null, retry: null, tries });
  $("chat").hidden = false;
  $("chat-status").textContent = "Connecting…";
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${scheme}://${location.host}/api/streams/${encodeURIComponent(name)}/chat/ws`);
  c.ws = ws;
  let banned = false;
  ws.onmessage = (ev) => {
    let e;
    try {
      e = JSON.parse(ev.data);
    } catch {
      return;
    }
    if (e.type === "hello") {
      c.tries = 0;
      addMessages(e.messages || [], true);
      $("chat-status").textContent = "";
      if (e.audience) audience(e.audience);
    } else if (e.type === "message") {
      addMessages([e.message], false);
    } else if (e.type === "deleted") {
      const li = $("chat-messages").querySelector(`li[data-id="${Number(e.id)}"]`);
      if (li) li.remove();
    } else if (e.type === "audience") {
      audience(e);
    } else if (e.type === "refused") {
      banned = banned || /banned/.test(e.error);
      $("chat-status").textContent = e.error;
    }
  };
  ws.onclose = () => {
    if (state.chat !== c) return;
    if (banned) {
      $("chat-status").textContent = "You are banned from this chat.";
      return;
    }
    // Again after a while, longer each time, and never all viewers at once.
    const tries = (c.tries || 0) + 1;
    const wait = Math.min(60000, 2000 * 2 ** Math.min(tries, 5)) * (0.5 + Math.random());
    $("chat-status").textContent = "The chat is not connected; trying again…";
    c.retry = setTimeout(() => {
      if (state.chat === c) {
        state.chat = null;
        openChat(name, tries);
      }
    }, wait);
  };
}

// Counts as the chat hears them, between two polls of /api/streams.
function audience(a) {
  if (!state.live) return;
  state.live.audience = { viewers: a.viewers, likes: a.likes, peak: a.peak, total: a.total };
  showLive(state.live);
}

function sendChat(ev) {
  ev.preventDefault();
  const c = state.chat;
  if (!c || !c.ws || c.ws.readyState !== WebSocket.OPEN) {
    $("chat-status").textContent = "The chat is not connected.";
    return;
  }
  const nick = $("chat-nick").value.trim();
  const text = $("chat-text").value;
  localStorage.setItem(NICK_KEY, nick);
  c.ws.send(JSON.stringify({ nick, text }));
  $("chat-text").value = "";
  $("chat-status").textContent = "";
}

async function deleteMessage(id) {
  const c = state.chat;
  if (!c) return;
  const r = await api(`/api/streams/${encodeURIComponent(c.name)}/chat/messages/${id}`, { method: "DELETE" });
  if (!r.ok) $("chat-status").textContent = (r.body && r.body.error) || `Deleting failed (${r.status}).`;
}

// A signed link opens a private stream or item: /#play=/s/TOKEN/live/NAME/
// (the part after # never reaches the server, so it is never logged). Links of the older
// form, /live/NAME/index.m3u8?st=TOKEN, still open: the server redirects them.
function openFromHash() {
  const m = location.hash.match(/^#play=(.+)$/);
  if (!m) return;
  const src = decodeURIComponent(m[1]);
  const parts = src.match(/^(?:\/s\/[A-Za-z0-9._-]+)?\/(live|vod)\/([A-Za-z0-9_-]+)\//);
  if (!parts) return;
  state.current = { kind: "link", src };
  // A private stream has no chat or likes: they are for public names.
  closeChat();
  showLive(null);
  play(src, parts[2], parts[1] === "live");
}

// --- live ----------------------------------------------------------------------------

async function refreshLive() {
  let streams = [];
  try {
    const r = await api("/api/streams");
    if (r.ok && Array.isArray(r.body)) streams = r.body;
  } catch {
    return;
  }
  const list = $("live");
  list.replaceChildren(
    ...streams.map((s) => {
      const since = s.since ? (Date.now() - Date.parse(s.since)) / 1000 : null;
      const badge = s.live
        ? el("span", { class: "badge live" }, "LIVE")
        : el("span", { class: "badge offline" }, "offline");
      const watching = s.live && s.audience ? ` · ${s.audience.viewers} watching` : "";
      const meta = s.live && since !== null ? `for ${clock(since)}${watching}` : "not streaming";
      const shownTitle = s.title || (s.live && scheduledFor(s.name) && untilText(scheduledFor(s.name).start, scheduledFor(s.name).end) === "on now" ? scheduledFor(s.name).title : null);
      const title = s.live && shownTitle ? el("span", { class: "description" }, shownTitle) : "";
      return el(
        "li",
        { class: "card", "data-stream": s.name },
        el(
          "button",
          { class: "play", type: "button", onclick: () => watchLive(s.name) },
          s.thumbnail
            ? // A new picture every 10 s, as the server makes them.
              el("img", { src: `${s.thumbnail}?v=${Math.floor(Date.now() / 10000)}`, alt: "" })
            : el("span", { class: "noposter", "aria-hidden": "true" }, s.live ? "●" : "○"),
          el("span", { class: "title" }, badge, s.name),
          el("span", { class: "meta" }, meta),
          title,
        ),
      );
    }),
  );
  $("live-empty").hidden = streams.length > 0;

  const cur = state.current;
  if (cur && cur.kind === "live") {
    const s = streams.find((x) => x.name === cur.name);
    showLive(s);
    if (s && s.live && state.playingLive !== cur.name) {
      state.playingLive = cur.name;
      // The stream's entry: its adaptive ladder when one runs, else the source.
      play(`/live/${cur.name}/`, s.title ? `${cur.name}: ${s.title}` : cur.name, true);
    } else if (!s || !s.live) {
      if (state.playingLive === cur.name) stop();
      state.playingLive = null;
      say(`${cur.name} is offline. It starts playing here when it goes live.`);
    }
  }
}

// --- scheduled broadcasts --------------------------------------------------------------

function untilText(startIso, endIso) {
  const now = Date.now();
  const start = Date.parse(startIso);
  if (start > now) return `in ${clock((start - now) / 1000)}`;
  return Date.parse(endIso) > now ? "on now" : "over";
}

// The broadcast of `name` that is on now or next, if any.
function scheduledFor(name) {
  return (state.schedule || []).find((b) => b.stream === name);
}

async function refreshSchedule() {
  let list = [];
  try {
    const r = await api("/api/schedule");
    if (r.ok && Array.isArray(r.body)) list = r.body;
  } catch {
    return;
  }
  state.schedule = list;
  $("schedule").replaceChildren(
    ...list.map((b) => {
      const li = el(
        "li",
        { "data-broadcast": b.id },
        el(
          "button",
          { type: "button", class: "linkish", onclick: () => watchLive(b.stream) },
          el("strong", {}, b.title),
          ` · ${b.stream} · ${new Date(b.start).toLocaleString()} · `,
          el("span", { class: "countdown", "data-start": b.start, "data-end": b.end }, untilText(b.start, b.end)),
        ),
      );
      if (b.description) li.append(el("div", { class: "hint" }, b.description));
      if (token()) {
        li.append(
          button("Remove", `Remove the broadcast ${b.title}`, async () => {
            await change(`/api/schedule/${encodeURIComponent(b.id)}`, { method: "DELETE" }, "schedule-status");
            refreshSchedule();
          }),
        );
      }
      return li;
    }),
  );
  $("schedule-form").hidden = !token();
  $("schedule-section").hidden = list.length === 0 && !token();
}

function tickCountdowns() {
  for (const c of document.querySelectorAll(".countdown")) {
    c.textContent = untilText(c.dataset.start, c.dataset.end);
  }
  const cur = state.current;
  if (cur && cur.kind === "live" && !state.playingLive) {
    const b = scheduledFor(cur.name);
    if (b && Date.parse(b.start) > Date.now()) say(`“${b.title}” starts ${untilText(b.start, b.end)}. It plays here when it goes live.`);
  }
}

async function submitSchedule(ev) {
  ev.preventDefault();
  const when = (id) => {
    const v = $(id).value;
    return v ? new Date(v).toISOString() : "";
  };
  const body = {
    stream: $("schedule-stream").value.trim(),
    title: $("schedule-title").value.trim(),
    start: when("schedule-start"),
    end: when("schedule-end"),
  };
  const d = $("schedule-description").value.trim();
  if (d) body.description = d;
  const r = await api("/api/schedule", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
  if (r.ok) {
    $("schedule-status").textContent = `Scheduled “${r.body.title}”.`;
    $("schedule-form").reset();
    refreshSchedule();
  } else {
    $("schedule-status").textContent = (r.body && r.body.error) || `Scheduling failed (${r.status}).`;
  }
}

// --- library -------------------------------------------------------------------------

async function refreshLibrary() {
  let items = [];
  try {
    const r = await api("/api/library");
    if (r.ok && Array.isArray(r.body)) items = r.body;
  } catch {
    return;
  }
  $("library").replaceChildren(
    ...items.map((it) => {
      const art = it.poster
        ? el("img", { src: it.poster, alt: "", loading: "lazy" })
        : el("span", { class: "noposter", "aria-hidden": "true" }, it.kind === "audio" ? "♪" : "▶");
      const actions = el("span", { class: "actions" });
      if (it.download) actions.append(el("a", { href: it.download, download: "" }, "Download MP3"));
      if (token()) {
        actions.append(
          el(
            "button",
            {
              type: "button",
              "aria-label": `Remove ${it.title}`,
              onclick: async () => {
                if (!confirm(`Remove “${it.title}” from the library?`)) return;
                const r = await api(`/api/library/${encodeURIComponent(it.id)}`, { method: "DELETE" });
                if (!r.ok) alert((r.body && r.body.error) || `Removing failed (${r.status}).`);
                refreshLibrary();
              },
            },
            "Remove",
          ),
        );
      }
      return el(
        "li",
        { class: "card", "data-item": it.id },
        el(
          "button",
          {
            class: "play",
            type: "button",
            onclick: () => watchItem(it.playlist, it.title),
          },
          art,
          el("span", { class: "title" }, it.private ? el("span", { class: "badge offline" }, "private") : "", it.title),
          el("span", { class: "meta" }, `${it.kind} · ${clock(it.duration)}`),
          it.description ? el("span", { class: "description" }, it.description) : "",
        ),
        actions,
      );
    }),
  );
  $("library-empty").hidden = items.length > 0;
}

// --- fetch jobs ----------------------------------------------------------------------

let jobsTimer = null;

async function refreshJobs() {
  clearTimeout(jobsTimer);
  if (!token()) {
    $("jobs").replaceChildren();
    return;
  }
  let jobs = [];
  try {
    const r = await api("/api/jobs");
    if (r.status === 401) return askToken("The saved API token is not valid.");
    if (r.ok && Array.isArray(r.body)) jobs = r.body;
  } catch {
    jobsTimer = setTimeout(refreshJobs, 5000);
    return;
  }
  const recent = jobs.slice(0, 10);
  $("jobs").replaceChildren(
    ...recent.map((j) => {
      const li = el("li", { "data-job": j.id, "data-state": j.state });
      li.append(el("strong", {}, j.title || j.url), " — ");
      const active = !["done", "failed", "cancelled"].includes(j.state);
      if (j.state === "failed") li.append(el("span", { class: "failed" }, `failed: ${j.error || "no reason given"}`));
      else li.append(j.state);
      if (active && j.percent !== null && j.percent !== undefined) {
        li.append(el("progress", { max: "100", value: String(j.percent), "aria-label": `${j.state} progress` }));
        li.append(`${Math.round(j.percent)}%` + (j.eta ? `, ${clock(j.eta)} left` : ""));
      }
      if (active) {
        li.append(
          " ",
          el(
            "button",
            {
              type: "button",
              onclick: async () => {
                await api(`/api/jobs/${encodeURIComponent(j.id)}`, { method: "DELETE" });
                refreshJobs();
              },
            },
            "Cancel",
          ),
        );
      }
      return li;
    }),
  );
  const running = jobs.some((j) => !["done", "failed", "cancelled"].includes(j.state));
  const done = jobs.filter((j) => j.state === "done").map((j) => j.id).join();
  if (done !== state.doneJobs) {
    state.doneJobs = done;
    refreshLibrary();
  }
  jobsTimer = setTimeout(refreshJobs, running ? 1000 : 10000);
}

async function submitFetch(ev) {
  ev.preventDefault();
  const status = $("fetch-status");
  if (!token()) return askToken("Fetching needs the API token.");
  const url = $("fetch-url").value.trim();
  status.textContent = "Sending…";
  const r = await api("/api/jobs", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ url, kind: $("fetch-kind").value }),
  });
  if (r.status === 401) return askToken("The API token is not valid.");
  if (!r.ok) {
    status.textContent = (r.body && r.body.error) || `The server refused (${r.status}).`;
    return;
  }
  status.textContent = `Queued as job ${r.body.id}.`;
  $("fetch-url").value = "";
  refreshJobs();
}

// --- restreams and relays (the owner's: with the token) ---------------------------------

function button(text, label, onclick) {
  return el("button", { type: "button", "aria-label": label, onclick }, text);
}

async function change(path, options, statusId) {
  const r = await api(path, options);
  if (r.status === 401) return askToken("The API token is not valid.");
  if (!r.ok) $(statusId).textContent = (r.body && r.body.error) || `The server refused (${r.status}).`;
  refreshRestreams();
  return r;
}

function when(rfc3339) {
  return rfc3339 ? new Date(rfc3339).toLocaleTimeString() : "";
}

async function refreshRestreams() {
  const section = $("restream-section");
  if (!token()) {
    section.hidden = true;
    return;
  }
  let dests, relays;
  try {
    const [d, r] = await Promise.all([api("/api/restreams"), api("/api/relays")]);
    if (d.status === 401 || r.status === 401) {
      section.hidden = true;
      return;
    }
    if (!d.ok || !r.ok) return;
    dests = d.body;
    relays = r.body;
  } catch {
    return;
  }
  section.hidden = false;
  $("restreams").replaceChildren(
    ...dests.map((d) => {
      const st = d.status;
      const name = d.label || d.id;
      const li = el("li", { "data-restream": d.id, "data-state": st ? st.state : d.enabled ? "idle" : "disabled" });
      li.append(el("strong", {}, name), ` ${d.stream}${d.rendition ? ` (${d.rendition})` : ""} → ${d.url} `);
      if (!d.enabled) li.append(el("span", { class: "badge offline" }, "disabled"));
      else if (st) {
        li.append(el("span", { class: st.state === "sending" ? "badge live" : "badge offline" }, st.state));
        if (st.bitrate_kbps) li.append(` ${Math.round(st.bitrate_kbps)} kbit/s`);
        if (st.program === "slate") li.append(" (slate)");
      } else li.append(el("span", { class: "badge offline" }, "waiting for the stream"));
      li.append(
        button(d.enabled ? "Disable" : "Enable", `${d.enabled ? "Disable" : "Enable"} ${name}`, () =>
          change(
            `/api/restreams/${encodeURIComponent(d.id)}`,
            {
              method: "PATCH",
              headers: { "Content-Type": "application/json" },
              body: JSON.stringify({ enabled: !d.enabled }),
            },
            "restream-status",
          ),
        ),
        button("Remove", `Remove ${name}`, () => {
          if (confirm(`Stop sending ${d.stream} to ${name} and forget it?`)) {
            change(`/api/restreams/${encodeURIComponent(d.id)}`, { method: "DELETE" }, "restream-status");
          }
        }),
      );
      if (st && st.last_error) li.append(el("span", { class: "detail failed" }, `last error: ${st.last_error}`));
      return li;
    }),
  );
  $("relays").replaceChildren(
    ...relays.map((r) => {
      const st = r.status;
      const li = el("li", { "data-relay": r.stream, "data-state": st ? st.state : "stopped" });
      const w = r.watch_seconds;
      const every = w ? `, watched every ${w % 60 ? `${w} s` : `${w / 60} min`}` : "";
      li.append(el("strong", {}, r.stream), ` ← ${r.from}${every} `);
      li.append(el("span", { class: st && st.state === "live" ? "badge live" : "badge offline" }, st ? st.state : "stopped"));
      if (st && st.title) li.append(` ${st.title}`);
      li.append(
        button("Remove", `Remove the relay ${r.stream}`, () => {
          if (confirm(`Stop relaying into ${r.stream} and remove its key?`)) {
            change(`/api/relays/${encodeURIComponent(r.stream)}`, { method: "DELETE" }, "relay-status");
          }
        }),
      );
      if (st && st.last_check) {
        const failed = st.last_check.startsWith("failed");
        li.append(el("span", { class: failed ? "detail failed" : "detail" }, `${when(st.last_check_at)}: ${st.last_check}`));
      }
      return li;
    }),
  );
}

async function submitRestream(ev) {
  ev.preventDefault();
  const label = $("restream-label").value.trim();
  const r = await change(
    "/api/restreams",
    {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ stream: $("restream-stream").value.trim(), url: $("restream-url").value.trim(), label: label || undefined }),
    },
    "restream-status",
  );
  if (r && r.ok) {
    // The key leaves the page once the server has it.
    $("restream-url").value = "";
    $("restream-label").value = "";
    $("restream-status").textContent = `Added: ${r.body.stream} → ${r.body.url}.`;
  }
}

async function submitRelay(ev) {
  ev.preventDefault();
  const r = await change(
    "/api/relays",
    {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({
        stream: $("relay-stream").value.trim(),
        from: $("relay-from").value.trim(),
        watch: $("relay-watch").checked,
        record: $("relay-record").checked,
      }),
    },
    "relay-status",
  );
  if (r && r.ok) {
    $("relay-stream").value = "";
    $("relay-from").value = "";
    $("relay-status").textContent = `Added: ${r.body.stream} from ${r.body.from}.`;
  }
}

// --- token ---------------------------------------------------------------------------

function askToken(message) {
  const form = $("token-form");
  form.hidden = false;
  $("token-button").setAttribute("aria-expanded", "true");
  if (message) $("fetch-status").textContent = message;
  $("token").focus();
}

function setupToken() {
  $("token-button").addEventListener("click", () => {
    const form = $("token-form");
    form.hidden = !form.hidden;
    $("token-button").setAttribute("aria-expanded", String(!form.hidden));
    if (!form.hidden) $("token").focus();
  });
  $("token-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    localStorage.setItem(TOKEN_KEY, $("token").value.trim());
    $("token").value = "";
    $("token-form").hidden = true;
    $("token-button").setAttribute("aria-expanded", "false");
    $("fetch-status").textContent = "Token saved.";
    refreshJobs();
    refreshLibrary();
    refreshRestreams();
    refreshSchedule();
  });
  $("token-forget").addEventListener("click", () => {
    localStorage.removeItem(TOKEN_KEY);
    $("fetch-status").textContent = "Token forgotten.";
    refreshJobs();
    refreshLibrary();
    refreshRestreams();
    refreshSchedule();
  });
}

// --- start ---------------------------------------------------------------------------

setupToken();
$("fetch-form").addEventListener("submit", submitFetch);
$("chat-form").addEventListener("submit", sendChat);
$("schedule-form").addEventListener("submit", submitSchedule);
setInterval(tickCountdowns, 1000);
setInterval(refreshSchedule, 30000);
refreshSchedule();
$("like").addEventListener("click", like);
$("chat-nick").value = localStorage.getItem(NICK_KEY) || "";
setInterval(tickOnAir, 1000);
$("restream-form").addEventListener("submit", submitRestream);
$("relay-form").addEventListener("submit", submitRelay);
window.addEventListener("hashchange", openFromHash);
openFromHash();
refreshLive();
refreshLibrary();
refreshJobs();
setInterval(refreshLive, 3000);
setInterval(refreshLibrary, 30000);
refreshRestreams();
setInterval(refreshRestreams, 3000);
