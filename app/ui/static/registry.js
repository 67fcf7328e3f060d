// /ui/registry: families, versions, aliases, approvals and the ledger; approve, promote and
// roll back, each after a confirmation dialog. The registry enforces four eyes and every
// other rule; this page shows what it answers.
import { api, el, keyArea, showError, showOk, when } from "/ui/console.js";

const message = document.getElementById("message");
const families = document.getElementById("families");
const ledger = document.getElementById("ledger");
const dialog = document.getElementById("confirm");

function confirmAction(title, text) {
  document.getElementById("confirm-title").textContent = title;
  document.getElementById("confirm-text").textContent = text;
  document.getElementById("confirm-note").value = "";
  dialog.returnValue = "";
  dialog.showModal();
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"
      ? { note: document.getElementById("confirm-note").value } : null), { once: true });
  });
}

async function act(title, text, call, done) {
  const answer = await confirmAction(title, text);
  if (!answer) return;
  try {
    await call(answer.note);
    showOk(message, done);
  } catch (err) {
    showError(message, err);
  }
  await load();
}

function versionRow(family, v) {
  const production = family.aliases.production;
  const isProduction = production === v.version;
  const name = `${family.name} v${v.version}`;
  return el("tr", { "data-version": v.version },
    el("td", {}, el("a", { href: `/ui/registry/${encodeURIComponent(family.name)}/${v.version}` }, `v${v.version}`)),
    el("td", {}, v.label),
    el("td", {}, v.aliases.map((a) => el("span", { class: `alias ${a}` }, a))),
    el("td", {}, v.created_by.name, el("div", { class: "who" }, when(v.created_at))),
    el("td", { class: "num" }, v.approvals),
    el("td", {},
      el("button", { type: "button", class: "approve", "aria-label": `Approve ${name}`,
        onclick: () => act(`Approve ${name}?`,
          `You approve ${name} (${v.label}), published by ${v.created_by.name}. ` +
          "The registry refuses an approval by the version's publisher.",
          (note) => api(`/v1/models/${family.name}/versions/${v.version}/approve`, { method: "POST", body: { note } }),
          `Approved ${name}.`) }, "Approve"), " ",
      el("button", { type: "button", class: "promote primary", disabled: isProduction,
        "aria-label": `Promote ${name} to production`,
        onclick: () => act(`Promote ${name} to production?`,
          `Production of ${family.name} moves from v${production ?? "none"} to v${v.version}; ` +
          "every replica swaps to it within seconds.",
          (note) => api("/v1/models/aliases", { method: "POST", body: { note, moves: [
            { family: family.name, alias: "production", version: v.version,
              expected_version: production ?? null }] } }),
          `${family.name} production is now v${v.version}.`) }, "Promote")));
}

function familyBox(family) {
  const production = family.aliases.production;
  return el("section", { class: "family", "data-family": family.name, "aria-labelledby": `f-${family.name}` },
    el("h2", { id: `f-${family.name}` }, family.name, " ", el("span", { class: "who" }, family.kind)),
    el("p", {}, Object.entries(family.aliases).map(([a, v]) => el("span", { class: `alias ${a}` }, `${a}: v${v}`)),
      " ", el("button", { type: "button", class: "rollback danger", disabled: production == null,
        "aria-label": `Roll back ${family.name} production`,
        onclick: () => act(`Roll back ${family.name}?`,
          `Production of ${family.name} (now v${production}) moves back to the version it had before.`,
          (note) => api(`/v1/models/${family.name}/rollback`, { method: "POST", body: { note } }),
          `${family.name} production rolled back.`) }, "Roll back production")),
    el("table", {}, el("thead", {}, el("tr", {}, ["Version", "Label", "Aliases", "Published by", "Approvals", "Actions"].map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", {}, [...family.versions].reverse().map((v) => versionRow(family, v)))));
}

async function loadLedger() {
  try {
    let after = 0, entries = [];
    for (let page = 0; page < 20; page++) {  // oldest first: read to the end, show the newest
      const data = await api(`/v1/ledger?after_id=${after}&limit=1000`);
      entries = entries.concat(data.entries);
      if (data.next_after_id == null) break;
      after = data.next_after_id;
    }
    const recent = entries.slice(-30).reverse();
    ledger.replaceChildren(el("table", {}, el("thead", {}, el("tr", {}, ["When", "Who", "Action", "Family", "Version", "Alias", "Before", "Note"].map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", {}, recent.map((e) => el("tr", {}, el("td", {}, when(e.at)), el("td", {}, `${e.actor.name} (${e.actor.role})`),
        el("td", {}, e.action), el("td", {}, e.family ?? ""), el("td", { class: "num" }, e.version ?? ""),
        el("td", {}, e.alias ?? ""), el("td", { class: "num" }, e.previous_version ?? ""),
        el("td", {}, (e.detail && e.detail.note) || ""))))));
  } catch (err) {
    ledger.replaceChildren(el("p", { class: "missing" }, `The ledger is not shown: ${err.message}`));
  }
}

async function load() {
  try {
    const data = await api("/v1/models");
    families.replaceChildren(...data.families.map(familyBox));
  } catch (err) {
    showError(message, err);
  }
  await loadLedger();
}

keyArea(document.getElementById("key-area"), load);
