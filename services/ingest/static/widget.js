/*
 * Switchboard chat widget: one plain script, no build step, no dependencies.
 *
 *   <script src="https://support.example.com/widget.js" defer
 *           data-title="Chat with us" data-open="false" data-color="#4f46e5"></script>
 *
 * The widget talks to the server it was loaded from. It keeps the visitor's session token,
 * the id of the last reply it showed, the conversation and every message not yet acknowledged
 * in localStorage, so a reload or a lost connection loses nothing: unacknowledged messages are
 * sent again with the same client id (the server publishes each client id once) and replies
 * are fetched after the last one shown (the server delivers each reply once per cursor).
 */
(function () {
  "use strict";

  var script = document.currentScript;
  if (!script || window.__switchboardChat) return;
  window.__switchboardChat = true;

  var ORIGIN = new URL(script.src, location.href).origin;
  var WS_ORIGIN = ORIGIN.replace(/^http/, "ws");
  var PROTOCOL = "switchboard.v1";
  var TOKEN_PROTOCOL = "switchboard.token.";
  var STORE_KEY = "switchboard-chat:" + ORIGIN;
  var MAX_TEXT = 4000;
  var MAX_PENDING = 50;
  var MAX_TRANSCRIPT = 100;
  var RESEND_AFTER_MS = 10000;
  var TITLE = script.getAttribute("data-title") || "Chat with us";
  var START_OPEN = script.getAttribute("data-open") === "true";
  var COLOR = script.getAttribute("data-color") || "#4f46e5";

  // --- state, persisted -------------------------------------------------------------------

  var state = load();
  var socket = null;
  var connected = false;
  var connecting = false;
  var attempt = 0;
  var reconnectTimer = null;
  var retryTimers = {};

  function load() {
    var blank = { token: null, visitorId: null, cursor: null, pending: [], transcript: [],
                  name: "", email: "" };
    try {
      var saved = JSON.parse(localStorage.getItem(STORE_KEY) || "null");
      if (saved && typeof saved === "object") {
        for (var key in blank) if (!(key in saved)) saved[key] = blank[key];
        return saved;
      }
    } catch (e) { /* unavailable or corrupt: start afresh */ }
    return blank;
  }

  function save() {
    try { localStorage.setItem(STORE_KEY, JSON.stringify(state)); } catch (e) { /* full */ }
  }

  function newClientId() {
    var bytes = new Uint8Array(12);
    crypto.getRandomValues(bytes);
    return "c" + Array.prototype.map.call(bytes, function (b) {
      return ("0" + b.toString(16)).slice(-2);
    }).join("");
  }

  function entryOrder(id) {
    var parts = String(id).split("-");
    return [Number(parts[0]) || 0, Number(parts[1]) || 0];
  }

  function after(a, b) {  // is stream id a newer than b?
    if (!b) return true;
    var x = entryOrder(a), y = entryOrder(b);
    return x[0] > y[0] || (x[0] === y[0] && x[1] > y[1]);
  }

  // --- user interface ---------------------------------------------------------------------

  var CSS = [
    ":host{all:initial}",
    "*{box-sizing:border-box;font-family:system-ui,-apple-system,'Segoe UI',Roboto,'DejaVu Sans',sans-serif}",
    ".launcher{position:fixed;right:24px;bottom:24px;width:56px;height:56px;border-radius:50%;",
    "border:0;background:var(--accent);color:#fff;font-size:24px;cursor:pointer;",
    "box-shadow:0 6px 20px rgba(15,23,42,.25);z-index:2147483000}",
    ".panel{position:fixed;right:24px;bottom:24px;width:360px;max-width:calc(100vw - 32px);",
    "height:540px;max-height:calc(100vh - 48px);display:flex;flex-direction:column;",
    "background:#fff;border-radius:16px;overflow:hidden;z-index:2147483001;",
    "box-shadow:0 12px 40px rgba(15,23,42,.22);border:1px solid #e2e8f0}",
    ".panel[hidden],.launcher[hidden]{display:none}",
    "header{background:var(--accent);color:#fff;padding:14px 16px;display:flex;align-items:center;gap:10px}",
    ".title{font-weight:600;font-size:15px;flex:1}",
    ".status{font-size:12px;opacity:.9;display:flex;align-items:center;gap:6px}",
    ".dot{width:8px;height:8px;border-radius:50%;background:#fbbf24}",
    ".online .dot{background:#34d399}",
    ".close{background:transparent;border:0;color:#fff;font-size:20px;cursor:pointer;line-height:1}",
    "details{border-bottom:1px solid #e2e8f0;padding:8px 16px;font-size:13px;color:#475569;background:#f8fafc}",
    "summary{cursor:pointer}",
    "details input{display:block;width:100%;margin-top:6px;padding:7px 9px;border:1px solid #cbd5e1;",
    "border-radius:8px;font-size:13px}",
    ".log{list-style:none;margin:0;padding:14px 12px;flex:1;overflow-y:auto;background:#f8fafc;",
    "display:flex;flex-direction:column;gap:8px}",
    ".empty{color:#64748b;font-size:13px;text-align:center;margin:auto 16px}",
    ".msg{max-width:80%;display:flex;flex-direction:column;gap:3px}",
    ".msg .bubble{padding:9px 12px;border-radius:14px;font-size:14px;line-height:1.4;",
    "white-space:pre-wrap;overflow-wrap:anywhere}",
    ".me{align-self:flex-end;align-items:flex-end}",
    ".me .bubble{background:var(--accent);color:#fff;border-bottom-right-radius:4px}",
    ".agent{align-self:flex-start}",
    ".agent .bubble{background:#fff;color:#0f172a;border:1px solid #e2e8f0;border-bottom-left-radius:4px}",
    ".meta{font-size:11px;color:#64748b}",
    ".failed .bubble{background:#fee2e2;color:#991b1b}",
    "form{display:flex;gap:8px;padding:10px;border-top:1px solid #e2e8f0;background:#fff}",
    "textarea{flex:1;resize:none;border:1px solid #cbd5e1;border-radius:10px;padding:9px 10px;",
    "font-size:14px;min-height:40px;max-height:120px;outline-color:var(--accent)}",
    "form button{border:0;border-radius:10px;background:var(--accent);color:#fff;",
    "padding:0 16px;font-size:14px;font-weight:600;cursor:pointer}",
    "form button:disabled{opacity:.5;cursor:default}"
  ].join("");

  var host = document.createElement("div");
  host.id = "switchboard-chat";
  var root = host.attachShadow({ mode: "open" });
  root.innerHTML =
    "<style>" + CSS + "</style>" +
    "<button class='launcher' type='button' aria-label='Open chat'>\uD83D\uDCAC</button>" +
    "<section class='panel' role='dialog' hidden>" +
    "  <header><div class='title'></div>" +
    "    <div class='status'><span class='dot'></span><span class='status-text'>Connecting\u2026</span></div>" +
    "    <button class='close' type='button' aria-label='Close chat'>\u00D7</button></header>" +
    "  <details><summary>Your name and email (optional)</summary>" +
    "    <input class='name' type='text' maxlength='100' placeholder='Name' autocomplete='name'>" +
    "    <input class='email' type='email' maxlength='254' placeholder='Email' autocomplete='email'>" +
    "  </details>" +
    "  <ol class='log' aria-live='polite'></ol>" +
    "  <form><textarea rows='1' placeholder='Type a message\u2026' aria-label='Message'></textarea>" +
    "    <button type='submit'>Send</button></form>" +
    "</section>";
  host.style.setProperty("--accent", COLOR);

  var $ = function (selector) { return root.querySelector(selector); };
  var panel = $(".panel"), launcher = $(".launcher"), log = $(".log"), form = $("form");
  var input = $("textarea"), nameInput = $(".name"), emailInput = $(".email");
  var statusBox = $(".status"), statusText = $(".status-text");
  $(".title").textContent = TITLE;
  panel.setAttribute("aria-label", TITLE);
  input.maxLength = MAX_TEXT;
  nameInput.value = state.name || "";
  emailInput.value = state.email || "";

  function setOpen(open) {
    panel.hidden = !open;
    launcher.hidden = open;
    if (open) { input.focus(); scrollDown(); }
  }

  function setStatus(online, text) {
    statusBox.classList.toggle("online", online);
    statusText.textContent = text;
  }

  function time(iso) {
    var d = iso ? new Date(iso) : new Date();
    return isNaN(d) ? "" : d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }

  function render() {
    log.textContent = "";
    if (!state.transcript.length) {
      var empty = document.createElement("li");
      empty.className = "empty";
      empty.textContent = "Hi! Send us a message and we\u2019ll get back to you here.";
      log.appendChild(empty);
    }
    state.transcript.forEach(function (item) {
      var li = document.createElement("li");
      li.className = "msg " + item.kind + (item.status === "failed" ? " failed" : "");
      if (item.clientId) li.setAttribute("data-client-id", item.clientId);
      if (item.commandId) li.setAttribute("data-command-id", item.commandId);
      var bubble = document.createElement("div");
      bubble.className = "bubble";
      bubble.textContent = item.text;
      var meta = document.createElement("div");
      meta.className = "meta";
      var status = { sending: "Sending\u2026", sent: "Sent \u2713", failed: "Not sent: " +
                     (item.error || "rejected") }[item.status] || "";
      meta.textContent = item.kind === "agent"
        ? "Support \u00B7 " + time(item.at) : [time(item.at), status].filter(Boolean).join(" \u00B7 ");
      li.appendChild(bubble);
      li.appendChild(meta);
      log.appendChild(li);
    });
    scrollDown();
  }

  function scrollDown() { log.scrollTop = log.scrollHeight; }

  function remember(item) {
    state.transcript.push(item);
    if (state.transcript.length > MAX_TRANSCRIPT) {
      state.transcript.splice(0, state.transcript.length - MAX_TRANSCRIPT);
    }
  }

  function mark(clientId, status, error) {
    state.transcript.forEach(function (item) {
      if (item.clientId === clientId) { item.status = status; item.error = error || null; }
    });
  }

  // --- protocol ---------------------------------------------------------------------------

  function ensureSession() {
    return fetch(ORIGIN + "/v1/chat/session", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(state.token ? { token: state.token } : {})
    }).then(function (response) {
      if (!response.ok) throw new Error("session " + response.status);
      return response.json();
    }).then(function (session) {
      if (session.visitor_id !== state.visitorId) state.cursor = null;  // a new mailbox
      state.token = session.token;
      state.visitorId = session.visitor_id;
      save();
    });
  }

  function connect() {
    if (connecting || socket) return;  // one socket per page
    connecting = true;
    clearTimeout(reconnectTimer);
    setStatus(false, attempt ? "Reconnecting\u2026" : "Connecting\u2026");
    ensureSession().then(function () {
      var url = WS_ORIGIN + "/v1/chat/ws";
      if (state.cursor) url += "?after=" + encodeURIComponent(state.cursor);
      // The token travels as a subprotocol, never in the URL, where access logs would keep
      // it; the server selects PROTOCOL.
      socket = new WebSocket(url, [PROTOCOL, TOKEN_PROTOCOL + state.token]);
      socket.onmessage = function (event) { onFrame(event.data); };
      socket.onclose = onClose;
      connecting = false;
    }).catch(function () {
      connecting = false;
      scheduleReconnect();
    });
  }

  function scheduleReconnect() {
    connected = false;
    var delay = Math.min(30000, 1000 * Math.pow(2, attempt)) * (0.5 + Math.random() / 2);
    attempt += 1;
    setStatus(false, "Offline \u2014 retrying");
    clearTimeout(reconnectTimer);
    reconnectTimer = setTimeout(connect, delay);
  }

  function onClose(event) {
    socket = null;
    if (event.code === 4401) state.token = null;   // expired or unknown: a new session
    if (event.code === 4400) state.cursor = null;  // our cursor was corrupt
    save();
    scheduleReconnect();
  }

  function onFrame(raw) {
    var frame;
    try { frame = JSON.parse(raw); } catch (e) { return; }
    if (!frame || typeof frame !== "object") return;
    if (frame.type === "ready") {
      connected = true;
      attempt = 0;
      setStatus(true, "Online");
      state.pending.forEach(function (p) { transmit(p); });
    } else if (frame.type === "ack") {
      state.pending = state.pending.filter(function (p) { return p.clientId !== frame.client_id; });
      mark(frame.client_id, "sent");
      save();
      render();
    } else if (frame.type === "error") {
      onError(frame);
    } else if (frame.type === "reply") {
      onReply(frame);
    }
  }

  function onError(frame) {
    var pending = state.pending.filter(function (p) { return p.clientId === frame.client_id; })[0];
    if (!pending) return;
    if (frame.retry) {
      clearTimeout(retryTimers[pending.clientId]);
      retryTimers[pending.clientId] = setTimeout(function () {
        if (state.pending.indexOf(pending) >= 0) transmit(pending);
      }, Math.max(500, (frame.retry_after || 2) * 1000));
      return;
    }
    state.pending = state.pending.filter(function (p) { return p !== pending; });
    mark(pending.clientId, "failed", frame.message);
    save();
    render();
  }

  function onReply(frame) {
    if (typeof frame.id !== "string" || typeof frame.text !== "string") return;
    if (state.cursor && !after(frame.id, state.cursor)) return;
    var shown = state.transcript.some(function (item) {
      return item.commandId && item.commandId === frame.command_id;
    });
    state.cursor = frame.id;
    if (!shown) {
      remember({ kind: "agent", commandId: frame.command_id, text: frame.text, at: frame.at });
    }
    save();
    render();
  }

  function transmit(pending) {
    if (!connected || !socket || socket.readyState !== WebSocket.OPEN) return;
    pending.sentAt = Date.now();
    var frame = { type: "message", client_id: pending.clientId, text: pending.text };
    if (pending.name) frame.name = pending.name;
    if (pending.email) frame.email = pending.email;
    // The browser's language: a hint for the text's, which decides when the text cannot.
    if (navigator.language) frame.language = navigator.language;
    socket.send(JSON.stringify(frame));
  }

  function submit(text) {
    text = text.trim();
    if (!text) return;
    if (state.pending.length >= MAX_PENDING) {
      setStatus(false, "Too many unsent messages");
      return;
    }
    state.name = nameInput.value.trim();
    state.email = emailInput.value.trim();
    $("details").open = false;  // room for the conversation; the details stay editable
    var pending = { clientId: newClientId(), text: text.slice(0, MAX_TEXT),
                    name: state.name || null, email: state.email || null, sentAt: 0 };
    state.pending.push(pending);
    remember({ kind: "me", clientId: pending.clientId, text: pending.text,
               at: new Date().toISOString(), status: "sending" });
    save();
    render();
    transmit(pending);
  }

  // Messages whose ack never came (a dropped connection, a lost frame) go again.
  setInterval(function () {
    var now = Date.now();
    state.pending.forEach(function (p) {
      if (now - (p.sentAt || 0) > RESEND_AFTER_MS) transmit(p);
    });
  }, 2500);

  // --- wiring -----------------------------------------------------------------------------

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    submit(input.value);
    input.value = "";
    input.focus();
  });
  input.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && !event.shiftKey) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
  launcher.addEventListener("click", function () { setOpen(true); });
  $(".close").addEventListener("click", function () { setOpen(false); });
  window.addEventListener("online", function () { attempt = 0; connect(); });
  window.addEventListener("storage", function (event) {
    if (event.key === STORE_KEY) { state = load(); render(); }  // another tab
  });

  function start() {
    document.body.appendChild(host);
    render();
    setOpen(START_OPEN);
    connect();
  }

  if (document.body) start();
  else document.addEventListener("DOMContentLoaded", start);
})();
