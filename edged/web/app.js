// edged live page: reads /events (Server-Sent Events) and shows transcripts and translations.
// Text is only ever set with textContent: a transcript is never markup.
"use strict";
(() => {
  const MAX_UTTERANCES = 30; // kept on the page; older ones scroll away and are dropped
  const RETRY_MAX_MS = 10000;

  const single = document.getElementById("single");
  const conversation = document.getElementById("conversation");
  const deviceEl = document.getElementById("device");
  const langsEl = document.getElementById("langs");

  let state = {};
  let boot = "";
  let connected = false;
  let everConnected = false;
  let layout = ""; // "single" or the conversation languages joined by ","
  let panes = []; // [{lang, lines}] in conversation mode
  const records = new Map(); // boot:utt -> record; Map keeps arrival order
  let latest = null;

  // --- state and status ---------------------------------------------------------------

  function statusText() {
    if (connected) return state.state || "online";
    return everConnected ? "disconnected" : "connecting";
  }

  function showStatus() {
    const text = statusText();
    for (const el of document.querySelectorAll(".status")) {
      el.textContent = text;
      el.dataset.state = text;
    }
  }

  function languageName(code) {
    try {
      return new Intl.DisplayNames([code], { type: "language" }).of(code) || code;
    } catch (_) {
      return code;
    }
  }

  function setState(next) {
    state = next;
    if (next.boot) boot = next.boot; // a restarted daemon numbers utterances afresh
    const device = next.device || "edged";
    deviceEl.textContent = device;
    document.title = device + " — live";
    const from = (next.languages || []).join(", ");
    const to = (next.targets || []).join(", ");
    let langs = from || to ? from + " → " + to : "";
    if (next.listening === false) langs += " · paused";
    langsEl.textContent = langs;
    const conv = Array.isArray(next.conversation) && next.conversation.length >= 2;
    const wanted = conv ? next.conversation.join(",") : "single";
    if (wanted !== layout) buildLayout(conv ? next.conversation : null);
    showStatus();
  }

  // --- records: one per utterance -------------------------------------------------------

  function record(ev) {
    const key = boot + ":" + ev.utt;
    let r = records.get(key);
    if (!r) {
      r = { key, src: "", text: "", stable: "", final: false, tr: new Map(), error: "" };
      r.node = null;
      r.paneNodes = new Map();
      records.set(key, r);
      if (latest) markLatest(latest, false);
      latest = r;
      trim();
    }
    if (ev.src && !r.src) r.src = ev.src;
    return r;
  }

  function trim() {
    while (records.size > MAX_UTTERANCES) {
      const [key, old] = records.entries().next().value;
      if (old.node) old.node.remove();
      for (const node of old.paneNodes.values()) node.remove();
      records.delete(key);
    }
  }

  function onEvent(ev) {
    let r;
    switch (ev.type) {
      case "speech.start":
        r = record(ev);
        break;
      case "asr.partial":
        r = record(ev);
        if (!r.final) {
          r.src = ev.src || r.src;
          r.text = ev.text || "";
          r.stable = ev.stable || "";
        }
        break;
      case "asr.final":
        r = record(ev);
        r.src = ev.src || r.src;
        r.text = r.stable = ev.text || "";
        r.final = true;
        break;
      case "mt.interim": {
        r = record(ev);
        const had = r.tr.get(ev.tgt);
        if (!had || !had.final) r.tr.set(ev.tgt, { text: ev.text || "", final: false });
        break;
      }
      case "mt.final":
        r = record(ev);
        r.tr.set(ev.tgt, { text: ev.text || "", final: true });
        break;
      case "error":
        r = record(ev);
        r.error = ev.message || ev.code || "error";
        break;
      case "status":
        setState(Object.assign({}, state, { state: ev.state }));
        return;
      default:
        return; // tts.start / tts.end: nothing to show
    }
    render(r);
  }

  // --- drawing ------------------------------------------------------------------------------

  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function transcript(r, cls) {
    const line = el("div", cls);
    let stable = r.final ? r.text : r.stable;
    if (!r.text.startsWith(stable)) stable = "";
    line.append(el("span", "stable", stable), el("span", "unstable", r.text.slice(stable.length)));
    return line;
  }

  function targetOrder(r) {
    const targets = state.targets || [];
    const rank = (t) => (targets.indexOf(t) + targets.length + 1) % (targets.length + 1);
    return [...r.tr.keys()].sort((a, b) => rank(a) - rank(b));
  }

  function markLatest(r, on) {
    if (r.node) r.node.classList.toggle("latest", on);
    for (const node of r.paneNodes.values()) node.classList.toggle("latest", on);
  }

  function render(r) {
    if (panes.length) renderPanes(r);
    else renderSingle(r);
    markLatest(r, r === latest);
  }

  function renderSingle(r) {
    if (!r.node) {
      r.node = el("section", "utt");
      single.prepend(r.node); // column-reverse: first in the DOM is shown at the bottom
    }
    const parts = [];
    if (r.text) {
      const src = transcript(r, "src");
      if (r.src) {
        src.lang = r.src;
        src.prepend(el("span", "tag", r.src));
      }
      parts.push(src);
    }
    for (const tgt of targetOrder(r)) {
      const t = r.tr.get(tgt);
      const line = el("div", t.final ? "tr" : "tr interim");
      line.dataset.tgt = tgt;
      line.lang = tgt;
      line.append(el("span", "tag", tgt), el("span", "text", t.text));
      parts.push(line);
    }
    if (r.error) parts.push(el("div", "error", r.error));
    r.node.replaceChildren(...parts);
  }

  // Conversation: each pane is one person's. It shows what the others said, translated into
  // that person's language, in large type, and that person's own words smaller.
  function renderPanes(r) {
    for (const pane of panes) {
      let node = r.paneNodes.get(pane.lang);
      if (!node) {
        node = el("div", "item");
        r.paneNodes.set(pane.lang, node);
        pane.lines.prepend(node);
      }
      const own = r.src === pane.lang;
      node.className = "item " + (own ? "own" : "said") + (r === latest ? " latest" : "");
      const parts = [];
      if (own && r.text) {
        parts.push(transcript(r, "text"));
      } else if (!own && r.tr.has(pane.lang)) {
        const t = r.tr.get(pane.lang);
        parts.push(el("div", t.final ? "text" : "text interim", t.text));
      }
      if (r.error) parts.push(el("div", "error", r.error));
      node.replaceChildren(...parts);
      node.hidden = parts.length === 0;
    }
  }

  function buildLayout(languages) {
    layout = languages ? languages.join(",") : "single";
    document.body.dataset.mode = languages ? "conversation" : "single";
    single.replaceChildren();
    conversation.replaceChildren();
    panes = [];
    single.hidden = Boolean(languages);
    conversation.hidden = !languages;
    if (languages) {
      // The first language's person holds the device the right way up (the bottom half);
      // the others sit across from them and read the top, turned 180°.
      const order = [...languages.slice(1)].reverse().concat(languages[0]);
      for (const lang of order) {
        const pane = el("section", "pane");
        pane.dataset.lang = lang;
        pane.lang = lang;
        if (lang !== languages[0]) pane.classList.add("flipped");
        const head = el("div", "pane-head");
        head.append(el("span", "pane-lang", languageName(lang)), el("span", "status"));
        const lines = el("div", "pane-lines");
        pane.append(head, lines);
        conversation.append(pane);
        panes.push({ lang, lines });
      }
    }
    for (const r of records.values()) {
      r.node = null;
      r.paneNodes = new Map();
      render(r);
    }
  }

  // --- the stream ------------------------------------------------------------------------

  let source = null;
  let retryMs = 1000;

  function connect() {
    source = new EventSource("/events");
    source.onopen = () => {
      retryMs = 1000;
    };
    // Every (re)connection starts with the state, then the recent finals: after a daemon
    // restart the page re-reads both without a reload.
    source.addEventListener("state", (message) => {
      connected = everConnected = true;
      setState(JSON.parse(message.data));
    });
    source.onmessage = (message) => {
      let ev;
      try {
        ev = JSON.parse(message.data);
      } catch (_) {
        return; // not ours
      }
      onEvent(ev);
    };
    source.onerror = () => {
      connected = false;
      showStatus();
      // EventSource retries by itself after a dropped stream; it gives up on an HTTP error
      // (e.g. 503 with too many pages open), so then we start a new one, backing off.
      if (source.readyState === EventSource.CLOSED) {
        source.close();
        setTimeout(connect, retryMs);
        retryMs = Math.min(retryMs * 2, RETRY_MAX_MS);
      }
    };
  }

  buildLayout(null);
  showStatus();
  connect();
})();
