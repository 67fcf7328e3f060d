// What the registry pages share: building DOM safely, the session's key, calling /v1.
// The key lives in sessionStorage only (gone when the browser session ends); it is sent as
// X-API-Key and never put in a URL.
const KEY_STORE = "tierwise.apiKey";

export function el(tag, attrs = {}, ...children) {
  const svg = ["svg", "path", "circle", "text", "line", "rect", "polyline", "g", "title"].includes(tag);
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

export function key() {
  return sessionStorage.getItem(KEY_STORE) || "";
}

export class ApiError extends Error {
  constructor(status, body) {
    const error = (body && body.error) || { code: "http_" + status, message: `HTTP ${status}`, details: [] };
    super(error.message);
    this.status = status;
    this.code = error.code;
    this.details = error.details || [];
  }
}

export async function api(path, { method = "GET", body } = {}) {
  const headers = { "X-API-Key": key() };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const r = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const data = await r.json().catch(() => null);
  if (!r.ok) throw new ApiError(r.status, data);
  return data;
}

export function showError(target, err) {
  target.replaceChildren(el("div", { class: "error" },
    el("strong", {}, err.code ? `${err.code}: ` : ""), err.message,
    err.details && err.details.length
      ? el("ul", {}, err.details.map((d) => el("li", {}, `${d.field}: ${d.problem}`))) : null));
}

export function showOk(target, message) {
  target.replaceChildren(el("div", { class: "ok" }, message));
}

// The key form when no key is kept yet; `then` runs once one is.
export function keyArea(target, then) {
  if (key()) {
    target.replaceChildren(el("p", { class: "who" }, "Using the API key kept for this browser session. ",
      el("button", { type: "button", id: "forget-key", onclick: () => {
        sessionStorage.removeItem(KEY_STORE); location.reload(); } }, "Forget key")));
    then();
    return;
  }
  const input = el("input", { type: "password", id: "api-key", autocomplete: "off", required: true, size: 40 });
  target.replaceChildren(el("form", { class: "key", onsubmit: (e) => {
    e.preventDefault();
    sessionStorage.setItem(KEY_STORE, input.value.trim());
    keyArea(target, then);
  } }, el("div", {}, el("label", { for: "api-key" }, "API key (kept for this browser session only)"), input),
     el("button", { type: "submit", class: "primary" }, "Use key")));
}

export function when(iso) {
  return iso ? iso.replace("T", " ").slice(0, 19) : "";
}
