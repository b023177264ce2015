/*
 * Switchboard agent console: one plain script, no build step, no dependencies.
 *
 * It speaks the hub's websocket protocol (docs/hub-protocol.md) from the page the hub serves:
 * the token comes from the URL fragment (#token=...) or the form, the socket subscribes to
 * every queue the token allows, and per queue the open conversations are kept from the
 * snapshot and then from events, soonest SLA deadline first. After a dropped connection it
 * reconnects and resumes each queue after the last event id it applied, and sends again every
 * action not yet acknowledged with the same id (the hub publishes each id once). An open
 * conversation shows its transcript as the hub keeps it (every message in and out, notes, SLA
 * events, why it was routed), asked again whenever one of its events arrives, a page at a time.
 * An open incident (many customers with one problem) is a banner above the queues with its
 * linked open conversations, from the snapshot and then from routed events naming it, and one
 * button that sends all of their customers the incident's status update.
 * A supervisor token (its `role` claim) also shows each queue's figures above the queues: asked
 * once when the socket opens, then pushed by the hub whenever they change (the page never
 * polls); the oldest wait counts on between pushes.
 *
 * Customer and agent text only ever reaches the page through textContent.
 */
(function () {
  "use strict";

  var WS_URL = (location.protocol === "https:" ? "wss://" : "ws://") + location.host +
    "/v1/agents/ws";
  var PROTOCOL = "switchboard.v1";
  var TOKEN_PROTOCOL = "switchboard.token.";
  var FINAL_CLOSES = {
    4401: "The token was refused: get a valid one.",
    4402: "The token has expired: get a new one.",
    4403: "The token does not allow one of the queues."
  };
  var RETRY_ACTION_MS = 1000;
  var MAX_BACKOFF_MS = 10000;
  var RUNNING = { started: true, warning: true, breached: true, resumed: true, recomputed: true };
  var RESPONSE_METRICS = ["first_response", "next_response"];
  var URGENT_SECONDS = 5 * 60;   // a countdown this short is urgent, under an hour soon
  var SOON_SECONDS = 60 * 60;
  var TRANSCRIPT_PAGE = 50;
  var OUTBOUND_LABELS = { auto_ack: "Acknowledgement", after_hours: "After-hours notice",
                          status_update: "Status update", survey: "Survey" };

  var token = null;
  var socket = null;
  var attempt = 0;
  var agent = null;
  var queues = {};       // name -> {lastId, conversations: {id -> conversation}}
  var order = [];        // queue names, as hello listed them
  var selected = null;   // conversation id
  var pending = {};      // client action id -> {frame, message}
  var issueTypes = [];   // the configured issue types, as hello listed them
  var retypeTo = null;   // the issue type last chosen in the change list (kept across renders)
  var transferTo = null;  // the queue last chosen in the transfer list (kept across renders)
  var customers = {};    // conversation id -> the hub's customer frame (profile, history)
  var transcripts = {};  // conversation id -> {entries, more, asking, stale}
  var asked = {};        // client id of a transcript request -> {id, older}
  var early = {};        // conversation id -> {metric -> SLA data}: clocks ahead of their routed
  var MAX_EARLY = 500;
  var incidents = {};    // incident id -> {id, issueType, customers, linked: {conversation id}}
  var supervisor = false;  // the token's role claim; the hub refuses figures to the others
  var figures = null;      // the latest figures frame (asked for or pushed)
  var figuresAt = 0;       // when it arrived (ms): the oldest wait counts on from there
  var actionCount = 0;
  var errorText = "";

  // --- DOM helpers: text goes in through textContent, never as markup ----------------------

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function $(id) { return document.getElementById(id); }

  function setStatus(text, online) {
    var status = $("status");
    status.textContent = text;
    status.className = "status " + (online ? "online" : "offline");
  }

  // --- ids and time ------------------------------------------------------------------------

  function entryOrder(id) {
    var parts = String(id).split("-");
    return [Number(parts[0]) || 0, Number(parts[1]) || 0];
  }

  function newer(a, b) {  // is stream id a newer than b?
    if (!b) return true;
    var x = entryOrder(a), y = entryOrder(b);
    return x[0] > y[0] || (x[0] === y[0] && x[1] > y[1]);
  }

  function clientId() {
    var bytes = new Uint8Array(8);
    crypto.getRandomValues(bytes);
    actionCount += 1;
    return "c-" + Array.prototype.map.call(bytes, function (b) {
      return ("0" + b.toString(16)).slice(-2);
    }).join("") + "-" + actionCount;
  }

  function ms(iso) { return iso ? Date.parse(iso) : NaN; }

  function clock(seconds) {
    var s = Math.max(0, Math.floor(seconds));
    var h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
    var mm = (h && m < 10 ? "0" : "") + m, ss = (r < 10 ? "0" : "") + r;
    return (h ? h + ":" : "") + mm + ":" + ss;
  }

  function shortTime(iso) {
    var t = ms(iso);
    return isNaN(t) ? "" : new Date(t).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }

  // --- conversations -----------------------------------------------------------------------

  function blank(id, queue) {
    return { id: id, queue: queue, reference: null, channel: null, customer: null,
             assignee: null, lastText: null, lastAt: null, deadlines: {}, clocks: {},
             messages: [], receipts: {}, status: "open" };
  }

  function fromSnapshot(row, queue, previous) {
    var c = blank(row.conversation_id, queue);
    c.reference = row.reference;
    c.channel = row.channel;
    c.customer = labelled(row.customer, row.customer_verified);
    c.assignee = row.assignee;
    c.lastText = row.last_text;
    c.lastAt = row.last_at;
    c.issueType = row.issue_type;
    c.priority = row.priority;
    c.windowClosesAt = row.reply_window_closes_at;
    c.requires = row.requires;
    c.ladderStep = row.ladder_step;
    if (previous) c.routing = previous.routing;
    var deadlines = row.deadlines || {}, clocks = row.clocks || {};
    for (var metric in clocks) c.clocks[metric] = clocks[metric];
    for (metric in deadlines) {
      if (deadlines[metric]) {
        c.deadlines[metric] = deadlines[metric];
        c.clocks[metric] = clocks[metric] || "running";
      }
    }
    if (previous) {
      c.messages = previous.messages;
      c.receipts = previous.receipts;
      for (var m in previous.clocks) if (!(m in c.clocks)) c.clocks[m] = previous.clocks[m];
    } else if (row.last_text) {
      c.messages.push({ who: "customer", text: row.last_text, at: row.last_at, from: c.customer,
                        fromSnapshot: true });
    }
    return c;
  }

  function customerName(customer) {
    if (!customer) return null;
    return labelled(customer.display_name || customer.email || customer.phone ||
      customer.social_handle || null, customer.verified);
  }

  /* A sender the channel does not vouch for (an address typed into the chat) is marked. */
  function labelled(name, verified) {
    return name && verified === false ? name + " (unverified)" : name;
  }

  function nextDeadline(c) {
    var best = Infinity;
    for (var metric in c.deadlines) best = Math.min(best, ms(c.deadlines[metric]));
    return best;
  }

  function sorted(queue) {
    var list = Object.keys(queue.conversations).map(function (id) {
      return queue.conversations[id];
    });
    return list.sort(function (a, b) {
      return nextDeadline(a) - nextDeadline(b) || (ms(a.lastAt) || 0) - (ms(b.lastAt) || 0);
    });
  }

  /* What the SLA badge shows: the response clock the customer is waiting on, counting down;
     "breached" once breached; "met" once the first response is in and nothing else runs. */
  function slaBadge(c, now) {
    for (var i = 0; i < RESPONSE_METRICS.length; i++) {
      var metric = RESPONSE_METRICS[i], state = c.clocks[metric];
      if (state === "breached") return { text: "breached", cls: "breached" };
      if (state && RUNNING[state] && c.deadlines[metric]) {
        var left = (ms(c.deadlines[metric]) - now) / 1000;
        var label = metric === "first_response" ? "" : "next ";
        return left > 0
          ? { text: label + clock(left), cls: urgency(left, state === "warning") }
          : { text: "due", cls: "due" };
      }
      if (state === "paused") return { text: "paused", cls: "paused" };
    }
    if (c.clocks.first_response === "met") return { text: "met", cls: "met" };
    return { text: "no clock", cls: "" };
  }

  /* WhatsApp's customer-service window: a free-form reply reaches the customer only until
     it closes (24 hours after their latest message); after it only approved templates do. */
  function windowBadge(c, now) {
    if (!c.windowClosesAt) return null;
    var left = (ms(c.windowClosesAt) - now) / 1000;
    return left > 0 ? { text: "window " + clock(left), cls: urgency(left, false), open: true }
      : { text: "window closed", cls: "breached", open: false };
  }

  /* The countdown's colour says how soon it ends: minutes left are urgent, hours are not; a
     clock past its warning point is never shown calmer than "warning". */
  function urgency(left, warned) {
    if (left <= URGENT_SECONDS) return "urgent";
    if (warned) return "warning";
    return left <= SOON_SECONDS ? "soon" : "later";
  }

  function find(id) {
    for (var name in queues) {
      if (queues[name].conversations[id]) return queues[name].conversations[id];
    }
    return null;
  }

  // --- frames from the hub -----------------------------------------------------------------

  function onFrame(frame) {
    switch (frame.type) {
      case "hello": return onHello(frame);
      case "snapshot": return onSnapshot(frame);
      case "event": return onEvent(frame);
      case "ack": return onAck(frame);
      case "customer": return onCustomer(frame);
      case "transcript": return onTranscript(frame);
      case "figures": return onFigures(frame);
      case "error": return onError(frame);
      default: return;  // subscribed, resync and later additions need nothing here
    }
  }

  function onHello(frame) {
    agent = frame.agent;
    order = frame.queues.slice();
    issueTypes = (frame.issue_types || []).slice();
    var wanted = {};
    order.forEach(function (name) {
      if (!queues[name]) queues[name] = { lastId: null, conversations: {} };
      wanted[name] = queues[name].lastId;
    });
    $("agent").textContent = agent;
    send({ type: "subscribe", queues: wanted });
    if (supervisor) askFigures();
    for (var id in pending) send(pending[id].frame);  // the same id: published at most once
    if (selected) select(selected);  // a request sent while disconnected was lost
    else render();
  }

  function onSnapshot(frame) {
    var queue = queues[frame.queue];
    if (!queue) return;
    var fresh = {};
    frame.conversations.forEach(function (row) {
      fresh[row.conversation_id] = fromSnapshot(
        row, frame.queue, queue.conversations[row.conversation_id]);
      delete early[row.conversation_id];  // the snapshot has the clocks
    });
    (frame.incidents || []).forEach(function (row) {
      noteIncident(row.incident_id, row, row.conversations);
    });
    queue.conversations = fresh;
    queue.lastId = frame.id;
    render();
  }

  function applyClock(c, data) {
    c.clocks[data.metric] = data.kind;
    if (RUNNING[data.kind]) c.deadlines[data.metric] = data.deadline;
    else delete c.deadlines[data.metric];
  }

  /* SLA events and routed events come from different topics, so a clock can start before the
     conversation arrives: keep it (a bounded number) until the conversation does. */
  function keepEarly(id, data) {
    var clocks = early[id] || (early[id] = {});
    clocks[data.metric] = data;
    var ids = Object.keys(early);
    if (ids.length > MAX_EARLY) delete early[ids[0]];
  }

  function withEarlyClocks(c) {
    var clocks = early[c.id];
    delete early[c.id];
    for (var metric in clocks) applyClock(c, clocks[metric]);
    return c;
  }

  function onEvent(frame) {
    var queue = queues[frame.queue];
    if (!queue || !newer(frame.id, queue.lastId)) return;
    queue.lastId = frame.id;
    var id = frame.conversation_id, data = frame.data || {};
    var c = queue.conversations[id];
    switch (frame.kind) {
      case "routed":
        c = c || withEarlyClocks(blank(id, frame.queue));
        c.reference = data.reference;
        c.channel = data.channel;
        var sender = customerName(data.customer);
        c.customer = sender || c.customer;
        c.lastText = data.text;
        c.lastAt = data.received_at || frame.time;
        c.status = "open";
        c.issueType = data.issue_type;
        c.priority = data.priority;
        c.routing = data.explanation;
        c.windowClosesAt = data.reply_window_closes_at;
        if (!shownBySnapshot(c, data)) {
          addMessage(c, { who: "customer", text: data.text, at: c.lastAt, from: sender,
                          eventId: frame.event_id });
        }
        if (data.linked_conversation_id) {
          addMessage(c, { who: "info", text: "The sender named another conversation but is " +
            "not part of it: kept apart", eventId: frame.event_id + "/linked" });
        }
        queue.conversations[id] = c;
        if (data.incident_id) noteIncident(data.incident_id, {}, [id]);
        break;
      case "sla":
        if (c) applyClock(c, data);
        else keepEarly(id, data);
        break;
      case "receipt":
        if (c) {
          c.receipts[data.command_id] = data;  // for a reply whose ack is still on its way
          c.messages.forEach(function (m) {
            if (m.commandId && m.commandId === data.command_id) applyReceipt(m, data);
          });
        }
        break;
      case "delivery":  // the provider's later word on a sent message: WhatsApp's "read"
        if (c) c.delivery = { status: data.status, at: data.at };
        break;
      case "incident":
        noteIncident(data.incident_id, data, [id]);
        if (c) addMessage(c, { who: "info", text: "Incident: " + (data.customers || "many") +
          " customers reported the same problem", eventId: frame.event_id });
        break;
      case "action":
        if (c) onAction(queue, c, data, frame);
        break;
      case "transferred_out":
        if (c) delete queue.conversations[id];
        if (selected === id && !find(id)) selected = null;
        break;
      case "relaxed":  // a step of the relaxation ladder: the transcript, re-read below, says why
        if (c) c.ladderStep = data.step;
        break;
      case "transferred_in":
        var known = c || find(id);
        c = frame.conversation ? fromSnapshot(frame.conversation, frame.queue, known)
          : known || withEarlyClocks(blank(id, frame.queue));
        c.queue = frame.queue;
        addMessage(c, { who: "info", text: "Transferred here by " + data.agent,
          eventId: frame.event_id, transfer: true });
        queue.conversations[id] = c;
        break;
    }
    if (id && id === selected) askTranscript(id, false);
    render();
  }

  /* A snapshot may already show the message of an event that follows it (the protocol says
     so): the snapshot's last message stands for that event rather than appearing twice. */
  function shownBySnapshot(c, data) {
    var last = c.messages[c.messages.length - 1];
    if (!last || !last.fromSnapshot || String(data.text).indexOf(last.text) !== 0) return false;
    if (!(Math.abs(ms(last.at) - ms(data.received_at)) < 1000)) return false;
    last.fromSnapshot = false;
    return true;
  }

  function onAction(queue, c, data, frame) {
    switch (data.kind) {
      case "claim":
        c.assignee = data.agent;
        break;
      case "reply":
      case "note":
        var mine = c.messages.filter(function (m) { return m.actionId === data.action_id; })[0];
        if (mine) break;  // our own, already shown when sent
        if (claimInFlight(c, data)) break;  // our own, its event ahead of its ack
        addMessage(c, { who: data.kind === "reply" ? "agent" : "note", text: data.text,
          agent: data.agent, at: data.at, actionId: data.action_id, eventId: frame.event_id });
        break;
      case "waiting":
        c.status = "waiting on the customer";
        break;
      case "change_issue_type":
        c.issueType = data.issue_type;
        break;
      case "resolve":
        delete queue.conversations[c.id];
        break;
    }
  }

  /* The hub acknowledges an action after Kafka took it, so the action's own event can arrive
     first: the oldest unacknowledged reply or note of this agent with the same text is it. */
  function claimInFlight(c, data) {
    if (data.agent !== agent) return false;
    for (var id in pending) {
      var entry = pending[id], frame = entry.frame;
      if (entry.message && !entry.message.actionId && frame.conversation_id === c.id &&
          frame.kind === data.kind && frame.text === data.text) {
        entry.message.actionId = data.action_id;
        return true;
      }
    }
    return false;
  }

  /* A reply that did not reach the customer says so: its clock keeps running. */
  function applyReceipt(m, data) {
    m.notSent = data.status !== "sent" && data.status !== "delivered";
    m.status = m.notSent ? "not sent: " + (data.error || data.status) : data.status;
  }

  function addMessage(c, message) {
    var dup = message.eventId && c.messages.some(function (m) {
      return m.eventId === message.eventId;
    });
    if (!dup) c.messages.push(message);
  }

  function onAck(frame) {
    var entry = pending[frame.id];
    if (!entry) return;
    delete pending[frame.id];
    if (entry.incident) answeredIncident(entry.incident, frame);
    if (entry.message) {
      entry.message.actionId = frame.action_id;
      entry.message.commandId = frame.command_id;
      entry.message.status = "queued";
      var c = find(entry.frame.conversation_id);
      var receipt = c && frame.command_id && c.receipts[frame.command_id];
      if (receipt) applyReceipt(entry.message, receipt);
    }
    render();
  }

  function onCustomer(frame) {
    customers[frame.conversation_id] = frame;
    if (frame.conversation_id === selected) render();
  }

  function select(id) {
    selected = id;
    delete customers[id];  // asked again on every selection: the history moves on
    send({ type: "customer", id: clientId(), conversation_id: id });
    if (transcripts[id]) transcripts[id].asking = false;  // a request before a reconnect is lost
    askTranscript(id, false);
    render();
  }

  /* The newest page (again: the hub writes what an event announces before sending it), or
     with `older` the page before the oldest entry shown. One request at a time. */
  function askTranscript(id, older) {
    var t = transcripts[id] || (transcripts[id] = { entries: null, more: false, asking: false,
                                                    stale: false });
    if (t.asking) {
      t.stale = t.stale || !older;
      return;
    }
    var frame = { type: "transcript", id: clientId(), conversation_id: id,
                  limit: TRANSCRIPT_PAGE };
    if (older && t.entries && t.entries.length) frame.before = t.entries[0].id;
    t.asking = true;
    asked[frame.id] = { id: id, older: !!frame.before };
    send(frame);
  }

  function onTranscript(frame) {
    var ask = asked[frame.id];
    delete asked[frame.id];
    var t = ask && transcripts[ask.id];
    if (!t) return;
    t.asking = false;
    var known = {};
    var entries = (t.entries || []).slice();
    entries.forEach(function (e, i) { known[e.id] = i; });
    frame.entries.forEach(function (e) {
      if (e.id in known) entries[known[e.id]] = e;
      else entries.push(e);
    });
    entries.sort(function (a, b) { return ms(a.at) - ms(b.at); });
    if (ask.older || !t.entries) t.more = frame.more;
    t.entries = entries;
    if (t.stale) {
      t.stale = false;
      askTranscript(ask.id, false);
    }
    if (ask.id === selected) render();
  }

  function onError(frame) {
    var ask = frame.id ? asked[frame.id] : null;
    if (ask) {
      delete asked[frame.id];
      if (transcripts[ask.id]) transcripts[ask.id].asking = false;
      if (frame.retry) setTimeout(function () { askTranscript(ask.id, ask.older); },
                                  RETRY_ACTION_MS);
      return;
    }
    var entry = frame.id ? pending[frame.id] : null;
    if (entry && frame.retry) {
      setTimeout(function () { send(entry.frame); }, RETRY_ACTION_MS);
      return;
    }
    if (entry) {
      delete pending[frame.id];
      if (entry.message) entry.message.status = "refused";
      if (entry.incident && incidents[entry.incident]) incidents[entry.incident].answering = false;
    }
    errorText = frame.code + ": " + frame.message;
    render();
  }

  // --- incidents ---------------------------------------------------------------------------

  /* An incident and the conversations linked to it, from a snapshot row, an incident event
     (its first conversation) or a routed event naming it (fields: the hub's names). */
  function noteIncident(id, fields, conversations) {
    if (!id) return;
    var i = incidents[id] || (incidents[id] = { id: id, issueType: null, customers: null,
                                                linked: {}, answering: false, result: null });
    if (fields.issue_type) i.issueType = fields.issue_type;
    if (fields.customers) i.customers = fields.customers;
    conversations.forEach(function (cid) { if (cid) i.linked[cid] = true; });
  }

  /* Its linked conversations still open in one of this console's queues. */
  function openLinked(i) {
    return Object.keys(i.linked).map(find).filter(Boolean).sort(function (a, b) {
      return nextDeadline(a) - nextDeadline(b);
    });
  }

  function answerIncident(i) {
    var frame = { type: "answer_incident", id: clientId(), incident_id: i.id };
    pending[frame.id] = { frame: frame, message: null, incident: i.id };
    i.answering = true;
    errorText = "";
    send(frame);
    render();
  }

  function answeredIncident(id, frame) {
    var i = incidents[id];
    if (!i) return;
    i.answering = false;
    i.result = "Status update sent to " + frame.answered + " customer" +
      (frame.answered === 1 ? "" : "s") +
      (frame.already_answered ? " (" + frame.already_answered + " had it already)" : "");
  }

  // --- actions -----------------------------------------------------------------------------

  function act(kind, c, text) {
    var frame = { type: "action", id: clientId(), kind: kind, conversation_id: c.id };
    var message = null;
    if (text !== undefined) {
      frame.text = text;
      message = { who: kind === "reply" ? "agent" : "note", text: text, agent: agent,
                  at: new Date().toISOString(), status: "sending" };
      c.messages.push(message);
    }
    pending[frame.id] = { frame: frame, message: message };
    errorText = "";
    send(frame);
    render();
  }

  // --- supervisor figures ------------------------------------------------------------------

  /* The role claim of the token (a JWT: its middle part is base64url JSON). Only what to show
     depends on it: the hub checks the signature and answers figures to supervisors only. */
  function roleOf(value) {
    try {
      var part = value.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
      return JSON.parse(atob(part + "===".slice((part.length + 3) % 4))).role || "agent";
    } catch (e) {
      return "agent";
    }
  }

  /* The first load; after it the hub pushes figures (an id-less frame) when they change. */
  function askFigures() {
    send({ type: "figures", id: clientId() });
  }

  function onFigures(frame) {
    figures = frame;
    figuresAt = Date.now();
    renderFigures();
  }

  function waited(q) {
    if (q.oldest_wait_seconds === null) return null;
    return q.oldest_wait_seconds + (Date.now() - figuresAt) / 1000;
  }

  function percent(ratio) { return ratio === null ? "\u2013" : Math.round(ratio * 1000) / 10 + "%"; }

  function attained(a) { return percent(a.ratio) + " (" + a.met + "/" + (a.met + a.breached) + ")"; }

  function seconds(value) { return value === null ? "\u2013" : clock(value); }

  function times(byChannel) {
    var parts = Object.keys(byChannel).map(function (channel) {
      var t = byChannel[channel];
      return channel + " " + seconds(t.p50) + " / " + seconds(t.p90);
    });
    return parts.length ? parts.join(", ") : "\u2013";
  }

  var FIGURE_COLUMNS = [
    ["Queue", "queue", function (q) { return q.queue; }],
    ["Waiting", "waiting", function (q) { return q.waiting; }],
    ["Oldest wait", "oldest-wait", function (q) { return seconds(waited(q)); }],
    ["At risk", "at-risk", function (q) { return q.at_risk; }],
    ["Breached today", "breached", function (q) { return q.breached_today; }],
    ["First response met", "first-response",
     function (q) { return attained(q.attainment.first_response); }],
    ["Resolution met", "resolution", function (q) { return attained(q.attainment.resolution); }],
    ["First response p50 / p90", "first-response-times",
     function (q) { return times(q.response_times.first_response); }],
    ["Resolution p50 / p90", "resolution-times",
     function (q) { return times(q.response_times.resolution); }],
    ["CSAT", "csat", function (q) {
      return q.csat.average === null ? "\u2013" : q.csat.average + " (" + q.csat.answers + ")";
    }],
    ["NPS", "nps", function (q) {
      return q.nps.score === null ? "\u2013" : q.nps.score + " (" + q.nps.answers + ")";
    }],
    ["Agents (load)", "agents", function (q) {
      var list = q.agents.map(function (a) { return a.agent + " " + (a.status || "offline") +
        " \u00b7 " + a.load; });
      return list.length ? list.join(", ") : "none";
    }],
    // Waiting for a requirement nobody online meets, and the relaxation ladder step each is on.
    ["Nobody online can answer", "unmet", function (q) {
      var list = (q.unmet || []).map(function (u) {
        return (u.reference || u.conversation_id) + " (" + requirement(u.requires) +
          "; step " + u.ladder_step + ")";
      });
      return list.length ? list.join(", ") : "none";
    }]
  ];

  function requirement(r) {
    if (!r) return "anyone";
    return r.skills.concat(r.language ? ["language " + r.language] : []).join(", ");
  }

  function renderFigures() {
    var box = $("figures");
    box.hidden = !figures;
    if (!figures) return;
    var table = el("table"), head = el("tr");
    FIGURE_COLUMNS.forEach(function (c) { head.append(el("th", null, c[0])); });
    table.append(el("caption", null, "Today (UTC " + (figures.queues[0] || {}).day +
      "), as of " + shortTime(figures.at)), head);
    figures.queues.forEach(function (q) {
      var row = el("tr");
      row.setAttribute("data-queue", q.queue);
      FIGURE_COLUMNS.forEach(function (c) {
        var cell = el("td", null, c[2](q));
        cell.setAttribute("data-figure", c[1]);
        row.append(cell);
      });
      table.append(row);
    });
    box.replaceChildren(table);
  }

  function send(frame) {
    if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(frame));
  }

  // --- connection --------------------------------------------------------------------------

  // The token travels as a subprotocol, never in the URL, where access logs would keep it;
  // the hub selects PROTOCOL.
  function connect() {
    setStatus("Connecting\u2026", false);
    try {
      socket = new WebSocket(WS_URL, [PROTOCOL, TOKEN_PROTOCOL + token]);
    } catch (e) {  // characters no subprotocol can carry: not a token
      socket = null;
      stop(FINAL_CLOSES[4401]);
      return;
    }
    socket.onopen = function () { attempt = 0; setStatus("Online", true); };
    socket.onmessage = function (event) {
      var frame;
      try { frame = JSON.parse(event.data); } catch (e) { return; }
      if (frame && typeof frame === "object") onFrame(frame);
    };
    socket.onclose = function (event) {
      socket = null;
      if (FINAL_CLOSES[event.code]) {
        stop(FINAL_CLOSES[event.code]);
        return;
      }
      attempt += 1;
      var wait = Math.min(MAX_BACKOFF_MS, 500 * Math.pow(2, attempt - 1));
      setStatus("Reconnecting\u2026", false);
      setTimeout(connect, wait * (0.5 + Math.random() / 2));
    };
  }

  function stop(reason) {
    setStatus("Disconnected", false);
    errorText = reason;
    $("token-form").hidden = false;
    render();
  }

  function start(value) {
    token = value;
    supervisor = roleOf(value) === "supervisor";
    $("token-form").hidden = true;
    errorText = "";
    connect();
  }

  // --- rendering ---------------------------------------------------------------------------

  function render() {
    var now = Date.now();
    renderIncidents();
    var nav = $("queues");
    nav.replaceChildren();
    order.forEach(function (name) {
      var queue = queues[name];
      var list = sorted(queue);
      var head = el("h2");
      head.append(el("span", "", name), el("span", "count", list.length));
      var ul = el("ul");
      ul.setAttribute("data-queue", name);
      list.forEach(function (c) { ul.append(item(c, now)); });
      nav.append(head, ul);
    });
    detail(now);
  }

  function renderIncidents() {
    var box = $("incidents");
    box.replaceChildren();
    Object.keys(incidents).forEach(function (id) {
      var i = incidents[id], open = openLinked(i);
      if (!open.length) return;
      var banner = el("div", "incident");
      banner.setAttribute("data-incident", id);
      banner.setAttribute("role", "alert");
      var head = el("div", "incident-head");
      head.append(
        el("strong", "", "Incident"),
        el("span", "", [i.issueType, i.customers ? i.customers + " customers reported it" : null]
          .filter(Boolean).join(" \u00b7 ")),
        el("span", "count", open.length),
        el("span", "", "open conversation" + (open.length === 1 ? "" : "s") + " linked")
      );
      var answer = el("button", "primary", i.answering ? "Answering\u2026" : "Answer all");
      answer.disabled = i.answering;
      answer.title = "Send every linked customer the status update";
      answer.onclick = function () { answerIncident(i); };
      head.append(answer);
      if (i.result) head.append(el("span", "answered", i.result));
      var list = el("ul", "linked");
      list.setAttribute("aria-label", "Conversations linked to the incident");
      open.forEach(function (c) {
        var li = el("li", c.id === selected ? "selected" : "", [c.reference || "(new)",
          c.channel, c.customer].filter(Boolean).join(" \u00b7 "));
        li.tabIndex = 0;
        li.onclick = function () { select(c.id); };
        list.append(li);
      });
      banner.append(head, list);
      box.append(banner);
    });
  }

  function item(c, now) {
    var li = el("li", "conv" + (c.id === selected ? " selected" : ""));
    li.setAttribute("data-id", c.id);
    li.tabIndex = 0;
    var badge = slaBadge(c, now), replyWindow = windowBadge(c, now);
    li.append(
      el("span", "ref", c.reference || "(new)"),
      el("span", "sla " + badge.cls, badge.text),
      replyWindow ? el("span", "sla window " + replyWindow.cls, replyWindow.text) : "",
      el("span", "meta", [c.channel, c.customer, c.assignee ? "\u2192 " + c.assignee : null]
        .filter(Boolean).join(" \u00b7 ")),
      el("span", "meta", shortTime(c.lastAt)),
      el("span", "last", c.lastText || "")
    );
    li.onclick = function () { select(c.id); };
    li.onkeydown = function (e) { if (e.key === "Enter") li.onclick(); };
    return li;
  }

  function detail(now) {
    var section = $("conversation");
    var c = selected ? find(selected) : null;
    var draft = section.querySelector("textarea");
    var draftText = draft && draft.getAttribute("data-id") === selected ? draft.value : "";
    var focused = draft && document.activeElement === draft;
    section.replaceChildren();
    if (errorText) section.append(el("p", "error", errorText));
    if (!c) {
      section.append(el("p", "empty", selected ? "This conversation is no longer open here."
        : "Choose a conversation."));
      return;
    }
    var head = el("div", "detail-head");
    var badge = slaBadge(c, now);
    var claim = el("button", "", c.assignee === agent ? "Claimed" : "Claim");
    claim.disabled = c.assignee === agent;
    claim.onclick = function () { act("claim", c); };
    var resolve = el("button", "", "Resolve");
    resolve.onclick = function () { act("resolve", c); };
    var buttons = el("span", "buttons");
    buttons.append(claim, resolve, transferControl(c), issueTypeControl(c));
    var replyWindow = windowBadge(c, now);
    head.append(
      el("h1", "", c.reference || "(new)"),
      el("span", "sla " + badge.cls, badge.text),
      replyWindow ? el("span", "sla window " + replyWindow.cls, replyWindow.text) : "",
      c.delivery ? el("span", "meta delivery", "last message " + c.delivery.status + " " +
        shortTime(c.delivery.at)) : "",
      el("span", "meta", [c.queue, c.channel, c.customer].filter(Boolean).join(" \u00b7 ")),
      el("span", "meta", c.assignee ? "assigned to " + c.assignee : "unassigned"),
      buttons,
      el("div", "routing", routingText(c, transcripts[c.id]))
    );
    var messages = el("div", "messages");
    var t = transcripts[c.id];
    if (t && t.more) {
      var earlier = el("button", "earlier", "Earlier messages");
      earlier.onclick = function () { askTranscript(c.id, true); };
      messages.append(earlier);
    }
    shownMessages(c, t).forEach(function (m) {
      var node = el("div", "msg " + m.who + (m.notSent ? " not-sent" : ""));
      if (m.subject) node.append(el("strong", "subject", m.subject));
      node.append(document.createTextNode(m.text || ""));
      var who = m.who === "customer" ? m.from || c.customer : m.agent;
      var foot = [m.label, who, m.channel, shortTime(m.at), m.status].filter(Boolean)
        .join(" \u00b7 ");
      if (foot) node.append(el("small", "", foot));
      if (m.why) node.append(el("small", "why", m.why));
      messages.append(node);
    });
    var form = el("form", "reply");
    var box = el("textarea");
    box.placeholder = "Reply to the customer";
    box.setAttribute("aria-label", "Reply");
    box.setAttribute("data-id", c.id);
    box.value = draftText;
    var sendButton = el("button", "primary", "Send reply");
    sendButton.type = "submit";
    var noteButton = el("button", "", "Add note");
    noteButton.type = "button";
    noteButton.onclick = function () {
      var text = box.value.trim();
      if (!text) return;
      box.value = "";
      act("note", c, text);
    };
    if (replyWindow && !replyWindow.open) {
      sendButton.disabled = true;
      form.append(el("p", "error window-closed", "WhatsApp's 24-hour window has closed: a " +
        "reply would not be sent (window_closed) until the customer writes again."));
    }
    form.append(box, sendButton, noteButton);
    form.onsubmit = function (e) {
      e.preventDefault();
      var text = box.value.trim();
      if (!text) return;
      box.value = "";
      act("reply", c, text);
    };
    section.append(head, customerPanel(customers[c.id]), messages, form);
    messages.scrollTop = messages.scrollHeight;
    if (focused) box.focus();
  }

  /* What the conversation shows: its transcript once the hub sent it, with what this console
     sent that is not in it yet and notices only the live events carry (incidents, links);
     until then, what the console has seen. */
  function shownMessages(c, t) {
    if (!t || !t.entries) return c.messages;
    var inTranscript = {};
    t.entries.forEach(function (e) { if (e.action_id) inTranscript[e.action_id] = true; });
    var shown = t.entries.map(function (e) { return fromEntry(c, e); });
    c.messages.forEach(function (m) {
      var unsent = (m.who === "agent" || m.who === "note") && !inTranscript[m.actionId];
      var notice = m.who === "info" && !m.transfer;
      if (unsent || notice) shown.push(m);
    });
    return shown;
  }

  function fromEntry(c, e) {
    switch (e.kind) {
      case "inbound":
        return { who: "customer", text: e.text, subject: e.subject, at: e.at,
                 from: customerName(e.sender), channel: e.channel, why: whyRouted(e.routing) };
      case "outbound":
        var notSent = e.delivery !== "pending" && e.delivery !== "sent" &&
          e.delivery !== "delivered";
        return { who: e.command_kind === "agent_reply" ? "agent" : "auto",
                 label: OUTBOUND_LABELS[e.command_kind], text: e.text, agent: e.agent, at: e.at,
                 notSent: notSent, status: notSent ? "not sent: " + e.delivery : e.delivery };
      case "note":
        return { who: "note", text: e.text, agent: e.agent, at: e.at };
      case "sla":
        return { who: "info", at: e.at, text: e.metric.replace("_", " ") + " clock " + e.sla +
                 (e.sla === "started" ? ", due " + shortTime(e.deadline) : "") };
      case "assignment":
        return { who: "info", at: e.at, text: "assignment: " + e.text };
      default:
        return { who: "info", at: e.at, text: e.agent + " " + ({ claim: "claimed it",
                 waiting: "set it waiting on the customer", resolve: "resolved it",
                 transfer: "transferred it to " + e.queue,
                 change_issue_type: "changed the issue type from " + e.previous_issue_type +
                   " to " + e.issue_type }[e.action] || e.action) };
    }
  }

  function whyRouted(r) {
    if (!r) return null;
    return "routed to " + r.queue + " by rule " + r.rule + " (" + r.issue_type + " " +
      Math.round(r.confidence * 100) + "%, priority " + r.priority + ")";
  }

  /* Issue type, priority and why the conversation is in its queue: the latest routing. */
  function routingText(c, t) {
    var routing = c.routing, at = -Infinity;
    ((t && t.entries) || []).forEach(function (e) {
      if (e.routing && ms(e.at) >= at) { routing = e.routing; at = ms(e.at); }
    });
    var parts = [c.issueType ? "issue " + c.issueType : null,
                 c.priority ? "priority " + c.priority : null];
    if (routing) {
      parts[0] = c.issueType && c.issueType !== routing.issue_type
        ? "issue " + c.issueType + " (set by an agent; routed as " + routing.issue_type + ")"
        : "issue " + routing.issue_type + " (" + Math.round(routing.confidence * 100) +
          "% sure)";
      parts.push("rule " + routing.rule + (routing.conditions && routing.conditions.length
        ? ": " + routing.conditions.join(", ") : ""));
      (routing.notes || []).forEach(function (note) { parts.push(note); });
    }
    if (c.requires) {
      parts.push("needs " + requirement(c.requires) + (c.ladderStep
        ? " (relaxed: ladder step " + c.ladderStep + ")" : ""));
    }
    return parts.filter(Boolean).join(" \u00b7 ");
  }

  /* Transfer to another of the token's queues (the hub refuses queues it does not know). */
  function transferControl(c) {
    var span = el("span", "transfer");
    var choice = el("select");
    choice.setAttribute("aria-label", "Transfer to queue");
    order.filter(function (name) { return name !== c.queue; }).forEach(function (name) {
      var option = el("option", "", name);
      option.value = name;
      choice.append(option);
    });
    if (transferTo && transferTo !== c.queue && order.indexOf(transferTo) >= 0) {
      choice.value = transferTo;
    }
    choice.onchange = function () { transferTo = choice.value; };
    var button = el("button", "", "Transfer");
    button.disabled = !choice.options.length;
    button.onclick = function () {
      var frame = { type: "action", id: clientId(), kind: "transfer", conversation_id: c.id,
                    queue: choice.value };
      pending[frame.id] = { frame: frame, message: null };
      errorText = "";
      send(frame);
    };
    span.append(choice, button);
    return span;
  }

  /* Correct the router: the conversation's latest message is of another issue type. The hub
     records the correction for the classifier; the conversation stays in its queue. */
  function issueTypeControl(c) {
    var span = el("span", "issue-type");
    var choice = el("select");
    choice.setAttribute("aria-label", "Change the issue type to");
    issueTypes.filter(function (name) { return name !== c.issueType; }).forEach(function (name) {
      var option = el("option", "", name);
      option.value = name;
      choice.append(option);
    });
    if (retypeTo && retypeTo !== c.issueType && issueTypes.indexOf(retypeTo) >= 0) {
      choice.value = retypeTo;
    }
    choice.onchange = function () { retypeTo = choice.value; };
    var button = el("button", "", "Change type");
    button.disabled = !choice.options.length;
    button.onclick = function () {
      var frame = { type: "action", id: clientId(), kind: "change_issue_type",
                    conversation_id: c.id, issue_type: choice.value };
      pending[frame.id] = { frame: frame, message: null };
      errorText = "";
      send(frame);
    };
    span.append(choice, button);
    return span;
  }

  /* The customer's profile and conversations on every channel, as the router keeps them. */
  function customerPanel(view) {
    var panel = el("div", "customer-view");
    if (!view) {
      panel.append(el("span", "meta", "Loading the customer\u2026"));
      return panel;
    }
    var p = view.profile, hint = view.identity;
    if (hint && hint.verified === false && (hint.name || hint.email)) {
      panel.append(el("div", "unverified", "Unverified: " + [hint.name, hint.email]
        .filter(Boolean).join(" \u00b7 ") + " (given by the sender, not proven)"));
    }
    if (!p) {
      panel.append(el("span", "meta", "No known identity for this customer."));
      return panel;
    }
    var who = [p.name, p.tier ? "tier " + p.tier : null, p.email, p.phone,
               p.social ? "X " + p.social : null, p.first_seen ? "since " + shortDate(p.first_seen)
               : null].filter(Boolean).join(" \u00b7 ");
    panel.append(el("div", "profile", who));
    var list = el("ul", "history");
    list.setAttribute("aria-label", "Conversations of this customer");
    view.history.forEach(function (h) {
      var li = el("li", h.conversation_id === selected ? "current" : "");
      li.append(el("span", "meta", [h.reference, h.channel, h.queue, h.status,
        shortDate(h.opened_at)].filter(Boolean).join(" \u00b7 ")));
      if (h.last_text) li.append(el("span", "last", h.last_text));
      list.append(li);
    });
    panel.append(list);
    return panel;
  }

  function shortDate(iso) {
    var t = ms(iso);
    return isNaN(t) ? "" : new Date(t).toLocaleDateString([], { day: "numeric", month: "short" });
  }

  function tick() {
    var now = Date.now();
    if (figures) renderFigures();
    document.querySelectorAll(".conv").forEach(function (li) {
      var c = find(li.getAttribute("data-id"));
      if (!c) return;
      var badge = slaBadge(c, now), node = li.querySelector(".sla");
      node.textContent = badge.text;
      node.className = "sla " + badge.cls;
      showWindow(li.querySelector(".window"), c, now);
    });
    var head = document.querySelector(".detail-head .sla");
    var open = selected ? find(selected) : null;
    if (head && open) {
      var b = slaBadge(open, now);
      head.textContent = b.text;
      head.className = "sla " + b.cls;
      showWindow(document.querySelector(".detail-head .window"), open, now);
    }
  }

  function showWindow(node, c, now) {
    var shown = node && windowBadge(c, now);
    if (!shown) return;
    node.textContent = shown.text;
    node.className = "sla window " + shown.cls;
  }

  // --- start -------------------------------------------------------------------------------

  $("token-form").onsubmit = function (e) {
    e.preventDefault();
    var value = $("token-input").value.trim();
    if (value) start(value);
  };
  var fragment = new URLSearchParams(location.hash.slice(1)).get("token");
  if (fragment) start(fragment);
  else $("token-form").hidden = false;
  setInterval(tick, 1000);
})();
