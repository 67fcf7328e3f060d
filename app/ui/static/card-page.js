// /ui/card?customer=C1&lang=zh&channel=rm: the card alone, for an <iframe>.
// The parent page sends the features: frame.contentWindow.postMessage(
//   {type: "tierwise-features", customer_id: "C1", features: {...}}, tierwiseOrigin).
// Outcomes go back to that parent as {type: "tierwise-outcome", detail}, to the origin of
// its message only. ?sample=1 scores the demo customer instead.
const card = document.getElementById("card");
const params = new URLSearchParams(location.search);
for (const name of ["customer", "lang", "channel", "top-n"]) {
  if (params.get(name)) card.setAttribute(name, params.get(name));
}
let parentOrigin = null;
let announcing = null;  // the timer repeating "tierwise-ready" until the features come

window.addEventListener("message", (e) => {
  if (e.source !== window.parent || !e.data || e.data.type !== "tierwise-features") return;
  clearInterval(announcing);
  parentOrigin = e.origin;
  if (e.data.customer_id) card.setAttribute("customer", String(e.data.customer_id));
  card.features = e.data.features;
});
card.addEventListener("tierwise-outcome", (e) => {
  if (parentOrigin) window.parent.postMessage({ type: "tierwise-outcome", detail: e.detail }, parentOrigin);
});
if (params.get("sample") === "1") {
  const sample = await fetch("/ui/sample-customer.json").then((r) => r.json());
  if (!params.get("customer")) card.setAttribute("customer", sample.customer_id);
  card.features = sample.features;
} else if (window.parent !== window) {
  // Said again every half second (for a minute at most) until the parent answers: the frame
  // may load before the parent page's script listens, and a message then is lost.
  const ready = () => window.parent.postMessage({ type: "tierwise-ready" }, "*");  // no data
  let left = 120;
  ready();
  announcing = setInterval(() => { if (--left <= 0) clearInterval(announcing); else ready(); }, 500);
}
