// <tierwise-card>: one customer's tier, churn risk and next-best actions, for any CRM page.
//
//   <script type="module" src="https://tierwise.example/ui/tierwise-card.js"></script>
//   <tierwise-card customer="C000123" lang="zh"></tierwise-card>
//   card.features = {...};                       // scores the customer
//   card.addEventListener("tierwise-outcome", e => save(e.detail));
//
// Plain ES module, no build step, nothing loaded from anywhere but the tierwise server it
// came from. The API key is typed once per browser session (or set as card.apiKey by the
// host page) and kept in sessionStorage only, never in a URL or an attribute.
// Accept / decline: (1) a `tierwise-outcome` event and card.onoutcome(detail); (2) a POST to
// /v1/outcomes when the server has that route and the recommendation has a decision_id;
// (3) the event kept in sessionStorage and sent as context.history on the next score, so the
// contact policy suppresses a declined action for its cool-off with or without (2).

const KEY_STORE = "tierwise.apiKey";
const HISTORY_STORE = "tierwise.history.";
const MAX_HISTORY = 200;

export const STRINGS = {
  en: {
    title: "Customer insight", booked: "Booked tier", predicted: "Likely tier",
    upgrade: "Upgrade candidate", churn: "Churn risk (90 days)", band: "band",
    reasons: "Why", actions: "Next best actions", none: "No action to offer now.",
    category: "Category", risk: "Risk level", priority: "Priority", accept: "Accept",
    decline: "Decline", keyLabel: "API key (kept for this browser session only)",
    keySave: "Use key", loading: "Scoring…", scored: "Scored {customer}.",
    accepted: "Accepted: {action}. Recommendations updated.",
    declined: "Declined: {action}. Recommendations updated.",
    error: "Could not score: {message}", noFeatures: "No customer data given to the card.",
    tiers: { mass: "Mass", affluent: "Affluent", hnw: "High net worth", private: "Private" },
    bands: { low: "low", medium: "medium", high: "high" },
  },
  zh: {
    title: "客户洞察", booked: "账面等级", predicted: "预测等级", upgrade: "升级潜力客户",
    churn: "流失风险（90天）", band: "等级", reasons: "原因", actions: "推荐行动",
    none: "目前没有可推荐的行动。", category: "类别", risk: "风险等级", priority: "优先级",
    accept: "接受", decline: "拒绝", keyLabel: "API 密钥（仅在本次浏览器会话中保存）",
    keySave: "使用密钥", loading: "评分中…", scored: "已为 {customer} 评分。",
    accepted: "已接受：{action}。推荐已更新。", declined: "已拒绝：{action}。推荐已更新。",
    error: "评分失败：{message}", noFeatures: "未向卡片提供客户数据。",
    tiers: { mass: "大众", affluent: "富裕", hnw: "高净值", private: "私人银行" },
    bands: { low: "低", medium: "中", high: "高" },
  },
};

function text(lang, key, vars = {}) {
  const table = STRINGS[lang] || STRINGS.en;
  return String(table[key] ?? STRINGS.en[key]).replace(/\{(\w+)\}/g, (_, n) => vars[n] ?? "");
}

function el(tag, attrs = {}, ...children) {
  const svg = ["svg", "path", "circle", "text", "line"].includes(tag);
  const node = svg ? document.createElementNS("http://www.w3.org/2000/svg", tag)
                   : document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === false || value == null) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child == null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function today() {
  return new Date().toISOString().slice(0, 10);  // the server's decision day is UTC too
}

export function readKey() {
  try { return sessionStorage.getItem(KEY_STORE) || ""; } catch { return ""; }
}

export function storeKey(key) {
  sessionStorage.setItem(KEY_STORE, key);
}

export function historyOf(customer) {
  try { return JSON.parse(sessionStorage.getItem(HISTORY_STORE + customer) || "[]"); }
  catch { return []; }
}

function remember(customer, event) {
  const events = [...historyOf(customer), event].slice(-MAX_HISTORY);
  sessionStorage.setItem(HISTORY_STORE + customer, JSON.stringify(events));
}

const outcomeRoutes = new Map();  // API base → Promise<boolean>: does it have /v1/outcomes?

function hasOutcomesRoute(base) {
  if (!outcomeRoutes.has(base)) {
    outcomeRoutes.set(base, fetch(base + "/openapi.json")
      .then(r => (r.ok ? r.json() : {}))
      .then(doc => Boolean(doc.paths && doc.paths["/v1/outcomes"]
                           && doc.paths["/v1/outcomes"].post))
      .catch(() => false));
  }
  return outcomeRoutes.get(base);
}

const SCRIPT_BASE = new URL(".", import.meta.url);

export class TierwiseCard extends HTMLElement {
  static observedAttributes = ["customer", "lang", "channel", "top-n"];

  constructor() {
    super();
    this._features = null;
    this._apiKey = "";
    this._result = null;
    this._busy = false;
    this.onoutcome = null;
    const root = this.attachShadow({ mode: "open" });
    root.append(el("link", { rel: "stylesheet", href: new URL("tierwise-card.css", SCRIPT_BASE) }));
    this._live = el("p", { class: "live", role: "status", "aria-live": "polite" });
    this._body = el("div", { class: "body" });
    root.append(el("section", { class: "card", part: "card" }, this._body, this._live));
  }

  get lang() {
    const given = this.getAttribute("lang") || navigator.language || "en";
    return given.toLowerCase().startsWith("zh") ? "zh" : "en";
  }
  set lang(value) { this.setAttribute("lang", value); }

  get apiBase() {
    return (this.getAttribute("api-base") || SCRIPT_BASE.origin).replace(/\/$/, "");
  }

  get apiKey() { return this._apiKey || readKey(); }
  set apiKey(value) { this._apiKey = String(value || ""); }

  get features() { return this._features; }
  set features(value) { this._features = value; this.score(); }

  get result() { return this._result; }

  connectedCallback() { this.render(); if (this._features) this.score(); }

  attributeChangedCallback(name, old, value) {
    if (old === value || !this.isConnected) return;
    if (name === "lang") this.render();
    else if (this._features) this.score();
  }

  _say(message) {
    // Cleared first so that a repeated message is announced again.
    this._live.textContent = "";
    requestAnimationFrame(() => { this._live.textContent = message; });
    this._live.dataset.message = message;
  }

  async score() {
    const customer = this.getAttribute("customer") || "";
    if (!this._features) { this.render(); return; }
    if (!this.apiKey) { this.render(); return; }
    this._busy = true;
    this.render();
    const context = { history: historyOf(customer) };
    if (this.getAttribute("channel")) context.channel = this.getAttribute("channel");
    const options = { explain: true };
    const topN = parseInt(this.getAttribute("top-n") || "", 10);
    if (topN > 0) options.top_n = topN;
    try {
      const r = await fetch(this.apiBase + "/v1/score", {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-API-Key": this.apiKey },
        body: JSON.stringify({ customer_id: customer, features: this._features, context,
                               options }),
      });
      const body = await r.json();
      if (!r.ok) throw new Error(body.error ? body.error.message : `HTTP ${r.status}`);
      this._result = body;
      this._error = null;
      this._busy = false;
      this.render();
      this.dispatchEvent(new CustomEvent("tierwise-scored", { detail: body, bubbles: true,
                                                              composed: true }));
      return body;
    } catch (err) {
      this._error = err.message;
      this._busy = false;
      this.render();
      this._say(text(this.lang, "error", { message: err.message }));
      return null;
    }
  }

  async decide(rec, outcome) {
    const customer = this.getAttribute("customer") || "";
    const detail = { customer_id: customer, action_id: rec.action_id, outcome, date: today(),
                     decision_id: rec.decision_id ?? null };
    this.dispatchEvent(new CustomEvent("tierwise-outcome", { detail, bubbles: true,
                                                             composed: true }));
    if (typeof this.onoutcome === "function") this.onoutcome(detail);
    remember(customer, { action_id: rec.action_id, date: detail.date, outcome });
    const url = this.getAttribute("outcome-url");
    if (rec.decision_id && (url || await hasOutcomesRoute(this.apiBase))) {
      try {
        await fetch(url || this.apiBase + "/v1/outcomes", {
          method: "POST",
          headers: { "Content-Type": "application/json", "X-API-Key": this.apiKey },
          body: JSON.stringify({ outcomes: [{ decision_id: rec.decision_id, outcome,
                                              date: detail.date }] }),
        });
      } catch { /* kept in the session history; the next score still honours it */ }
    }
    await this.score();
    // The clicked button is gone with its action: keep keyboard focus in the card.
    const next = this.shadowRoot.querySelector("li.action button");
    if (next) next.focus();
    else { const title = this.shadowRoot.querySelector("h2"); title.tabIndex = -1; title.focus(); }
    this._say(text(this.lang, outcome === "accepted" ? "accepted" : "declined",
                   { action: rec.name }));
  }

  render() {
    const lang = this.lang;
    const t = (key, vars) => text(lang, key, vars);
    this._body.replaceChildren(el("h2", {}, t("title"),
      this.getAttribute("customer") ? el("span", { class: "cid" }, " · ", this.getAttribute("customer")) : null));
    if (!this.apiKey) {
      const input = el("input", { type: "password", id: "key", autocomplete: "off", required: true });
      const form = el("form", { class: "key", onsubmit: (e) => {
        e.preventDefault();
        storeKey(input.value.trim());
        this.score();
      } }, el("label", { for: "key" }, t("keyLabel")), input, el("button", { type: "submit" }, t("keySave")));
      this._body.append(form);
      return;
    }
    if (!this._features) { this._body.append(el("p", {}, t("noFeatures"))); return; }
    if (this._busy && !this._result) { this._body.append(el("p", {}, t("loading"))); return; }
    if (this._error && !this._result) { this._body.append(el("p", { class: "error" }, t("error", { message: this._error }))); return; }
    const r = this._result;
    if (!r) return;
    this._body.setAttribute("aria-busy", this._busy ? "true" : "false");
    if (r.tier) this._body.append(this._tier(r.tier, t));
    if (r.churn) this._body.append(this._churn(r.churn, t));
    if (r.recommendations) this._body.append(this._actions(r.recommendations, t));
  }

  _tier(tier, t) {
    const name = (code) => (STRINGS[this.lang].tiers[code] || code || "—");
    return el("div", { class: "tier" },
      el("div", {}, el("span", { class: "label" }, t("booked")), el("strong", { class: "booked" }, name(tier.booked))),
      el("span", { class: "arrow", "aria-hidden": "true" }, "→"),
      el("div", {}, el("span", { class: "label" }, t("predicted")), el("strong", { class: "predicted" }, name(tier.predicted))),
      tier.upgrade_candidate ? el("span", { class: "badge" }, t("upgrade")) : null);
  }

  _churn(churn, t) {
    const p = Math.max(0, Math.min(1, churn.probability));
    const angle = Math.PI * (1 - p);
    const x = 60 + 50 * Math.cos(angle), y = 60 - 50 * Math.sin(angle);
    const percent = `${Math.round(p * 100)}%`;
    const band = STRINGS[this.lang].bands[churn.band] || churn.band;
    const gauge = el("svg", { viewBox: "0 0 120 70", class: `gauge band-${churn.band}`, role: "img",
                              "aria-label": `${t("churn")}: ${percent}, ${t("band")} ${band}` },
      el("path", { d: "M10 60 A50 50 0 0 1 110 60", class: "track" }),
      p > 0 ? el("path", { d: `M10 60 A50 50 0 0 1 ${x.toFixed(2)} ${y.toFixed(2)}`, class: "fill" }) : null,
      el("text", { x: 60, y: 56, "text-anchor": "middle", class: "value" }, percent));
    return el("div", { class: "churn" }, el("h3", {}, t("churn")),
      el("div", { class: "row" }, gauge, el("span", { class: `band band-${churn.band}` }, band)),
      churn.reasons && churn.reasons.length ? el("div", {}, el("h4", {}, t("reasons")),
        el("ul", { class: "reasons" }, churn.reasons.map((x) => el("li", {}, x.text)))) : null);
  }

  _actions(recs, t) {
    const list = el("ol", { class: "actions" });
    for (const rec of recs) {
      list.append(el("li", { class: "action", "data-action": rec.action_id },
        el("div", { class: "head" }, el("strong", {}, rec.name),
           el("span", { class: "priority" }, `${t("priority")} ${rec.priority.toFixed(3)}`)),
        el("dl", {},
          el("dt", {}, t("category")), el("dd", {}, rec.category),
          el("dt", {}, t("risk")), el("dd", {}, rec.risk_level || "—")),
        el("ul", { class: "reasons" }, (rec.reasons || []).map((x) => el("li", {}, x))),
        el("div", { class: "buttons" },
          el("button", { type: "button", class: "accept", onclick: () => this.decide(rec, "accepted"),
                         "aria-label": `${t("accept")}: ${rec.name}` }, t("accept")),
          el("button", { type: "button", class: "decline", onclick: () => this.decide(rec, "declined"),
                         "aria-label": `${t("decline")}: ${rec.name}` }, t("decline")))));
    }
    return el("div", {}, el("h3", {}, t("actions")),
      recs.length ? list : el("p", {}, t("none")));
  }
}

if (!customElements.get("tierwise-card")) customElements.define("tierwise-card", TierwiseCard);
