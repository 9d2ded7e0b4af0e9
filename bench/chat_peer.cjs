// The peer of bench/chat.sh: the plain Node.js chat server people write with the `ws` library
// (Debian's node-ws): one room, a hello on connect, every message broadcast to every client
// as JSON. No history file, no limits, no nginx in front: a floor to compare against.
// node chat_peer.cjs PORT
"use strict";
const { WebSocketServer, WebSocket } = require("ws");

const wss = new WebSocketServer({ host: "127.0.0.1", port: Number(process.argv[2]) });
let next = 0;
wss.on("connection", (ws) => {
  ws.send(JSON.stringify({ type: "hello", messages: [] }));
  ws.on("message", (data) => {
    let m;
    try {
      m = JSON.parse(data);
    } catch {
      return;
    }
    const event = JSON.stringify({ type: "message", message: { id: ++next, nick: String(m.nick), text: String(m.text), at: new Date().toISOString() } });
    for (const c of wss.clients) if (c.readyState === WebSocket.OPEN) c.send(event);
  });
});
wss.on("listening", () => console.log("listening"));
