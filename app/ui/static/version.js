// /ui/registry/{family}/{version}: a version's summary, its metrics as plots, and what
// differs from the version in production.
import { api, el, keyArea, showError, when } from "/ui/console.js";
import { bars, calibrationCurve, figure, missing, scoreHistogram } from "/ui/plots.js";

const [, , , family, versionText] = location.pathname.split("/");
const version = Number(versionText);
const message = document.getElementById("message");
const CONFIG_FAMILIES = ["features", "catalog", "policy"];

function summary(v) {
  return el("div", {},
    el("table", {}, el("tbody", {},
      [["Label", v.label], ["sha256", v.sha256], ["Published by", `${v.created_by.name} (${v.created_by.principal_id}), ${when(v.created_at)}`],
       ["Aliases", v.aliases.join(", ") || "none"], ["Features", v.manifest.features.length],
       ["Calibrator", v.manifest.calibrator ?? "none"], ["Reference rows replayed at load", v.manifest.reference_rows],
       ["Approved by", v.approved_by.length ? v.approved_by.map((a) => `${a.approver.name} (${when(a.at)})`).join(", ") : "not approved yet"]]
        .map(([k, val]) => el("tr", {}, el("th", { scope: "row" }, k), el("td", {}, val))))));
}

function intervalItems(metrics, names) {
  const intervals = metrics.intervals_95 || {};
  return names.filter((n) => typeof metrics[n] === "number").map((n) => ({
    name: n, value: metrics[n], low: intervals[n]?.[0], high: intervals[n]?.[1] }));
}

function plots(v) {
  const m = v.metrics || {};
  const out = [];
  if (Array.isArray(m.reliability) && m.reliability.length) {
    out.push(figure("Calibration curve (test rows)", calibrationCurve(m.reliability)));
    out.push(figure("Score histogram (test rows per probability bin)", scoreHistogram(m.reliability)));
  } else {
    out.push(missing("Calibration curve", "Not in this version's manifest (no metrics.reliability)."));
    out.push(missing("Score histogram", "Not in this version's manifest (no metrics.reliability)."));
  }
  if (v.importance) {
    // Summed over the bundle's models (one for tier and churn, one per product).
    const total = {};
    for (const counts of Object.values(v.importance.models)) {
      for (const [name, n] of Object.entries(counts)) total[name] = (total[name] || 0) + n;
    }
    const top = Object.entries(total).sort((a, b) => b[1] - a[1]).slice(0, 15);
    const models = Object.keys(v.importance.models).length;
    out.push(figure(`Feature importance (splits per feature${models > 1 ? `, over ${models} models` : ""}; top ${top.length})`,
      bars(top.map(([name, value]) => ({ name, value })), "splits")));
  } else {
    out.push(missing("Feature importance", "Not recorded in tierwise manifests, and a configuration family has no trees to count."));
  }
  if (m.calibrated) {
    out.push(figure("Reference metrics (calibrated, with 95% intervals)", bars(intervalItems(m.calibrated, ["auc", "brier", "log_loss", "ece"]), "value")));
  } else if (m.products) {
    out.push(figure("Reference metrics: AUC per product (95% intervals)", bars(Object.entries(m.products).map(([name, p]) => ({
      name, value: p.auc, low: p.auc_95?.[0], high: p.auc_95?.[1] })), "AUC", 1)));
  } else if (m.test && m.test.tier && m.test.tier.per_tier) {
    out.push(figure("Reference metrics: F1 per tier (test rows)", bars(Object.entries(m.test.tier.per_tier).map(([name, p]) => ({
      name, value: p.f1 })), "F1", 1)));
  } else {
    out.push(missing("Reference metrics", "This version's manifest records no metrics (a configuration family)."));
  }
  return out;
}

// Every number of a metrics tree under its dotted path.
export function flatten(tree, prefix = "", out = {}) {
  for (const [k, v] of Object.entries(tree || {})) {
    const path = prefix ? `${prefix}.${k}` : k;
    if (typeof v === "number") out[path] = v;
    else if (v && typeof v === "object" && !Array.isArray(v)) flatten(v, path, out);
  }
  return out;
}

function diff(v, prod) {
  if (!prod) return [el("p", { class: "missing" }, `${family} has no production version to compare with.`)];
  if (prod.version === v.version) return [el("p", {}, "This version is the one in production.")];
  const parts = [el("p", {}, `Compared with production, ${family} v${prod.version} (${prod.label}).`)];
  const a = flatten(prod.metrics), b = flatten(v.metrics);
  const names = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort()
    .filter((n) => a[n] !== b[n]);
  parts.push(el("h3", {}, "Metrics"), names.length ? el("table", { id: "diff-metrics" },
    el("thead", {}, el("tr", {}, ["Metric", `Production v${prod.version}`, `This v${v.version}`, "Change"].map((h) => el("th", { scope: "col" }, h)))),
    el("tbody", {}, names.map((n) => el("tr", {}, el("td", {}, n), el("td", { class: "num" }, a[n] ?? "—"),
      el("td", { class: "num" }, b[n] ?? "—"),
      el("td", { class: "num" }, a[n] != null && b[n] != null ? (b[n] - a[n] >= 0 ? "+" : "") + +(b[n] - a[n]).toFixed(6) : "")))))
    : el("p", {}, "No metric differs."));
  const fa = new Set(prod.manifest.features), fb = new Set(v.manifest.features);
  const added = [...fb].filter((f) => !fa.has(f)), removed = [...fa].filter((f) => !fb.has(f));
  parts.push(el("h3", {}, "Features"), added.length || removed.length ? el("ul", { id: "diff-features" },
    added.map((f) => el("li", { class: "added" }, `added: ${f}`)), removed.map((f) => el("li", { class: "removed" }, `removed: ${f}`)))
    : el("p", {}, "The same features."));
  const files = [...new Set([...Object.keys(prod.manifest.files), ...Object.keys(v.manifest.files)])].sort();
  const changed = files.filter((f) => prod.manifest.files[f] !== v.manifest.files[f]);
  parts.push(el("h3", {}, family === "catalog" || family === "policy" ? `${family === "catalog" ? "Catalogue" : "Policy"} changes` : "Files"),
    changed.length ? el("ul", { id: "diff-files" }, changed.map((f) => el("li", { class: "changed" },
      `${f}: ${(prod.manifest.files[f] || "absent").slice(0, 12)} → ${(v.manifest.files[f] || "absent").slice(0, 12)}`)))
    : el("p", {}, "The same files."));
  if (v.config && prod.config) parts.push(...configDiff(prod.config, v.config));
  return parts;
}

function configDiff(before, after) {
  const a = flattenAll(before), b = flattenAll(after);
  const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort().filter((k) => a[k] !== b[k]);
  return [el("h3", {}, "Settings that differ"), keys.length ? el("table", { id: "diff-config" },
    el("thead", {}, el("tr", {}, ["Setting", "Production", "This version"].map((h) => el("th", { scope: "col" }, h)))),
    el("tbody", {}, keys.map((k) => el("tr", {}, el("td", {}, k), el("td", {}, a[k] ?? "—"), el("td", {}, b[k] ?? "—")))))
    : el("p", {}, "No setting differs.")];
}

function flattenAll(tree, prefix = "", out = {}) {
  if (tree && typeof tree === "object") {
    for (const [k, v] of Object.entries(tree)) {
      const key = Array.isArray(tree) ? `${prefix}[${(v && (v.id || v.tier || v.band || v.name)) || k}]` : (prefix ? `${prefix}.${k}` : k);
      flattenAll(v, key, out);
    }
  } else out[prefix] = JSON.stringify(tree);
  return out;
}

async function load() {
  try {
    const [v, fam] = await Promise.all([api(`/v1/models/${family}/versions/${version}`), api(`/v1/models/${family}/versions`)]);
    document.title = `tierwise – ${family} v${version}`;
    document.getElementById("title").textContent = `${family} v${version}`;
    if (!CONFIG_FAMILIES.includes(family)) {
      v.importance = await api(`/v1/models/${family}/versions/${version}/importance`);
    }
    document.getElementById("summary").replaceChildren(summary(v));
    document.getElementById("plots").replaceChildren(...plots(v));
    const production = fam.aliases.production;
    const prod = production == null ? null : production === version ? v : await api(`/v1/models/${family}/versions/${production}`);
    if (prod && prod !== v && CONFIG_FAMILIES.includes(family)) {
      [v.config, prod.config] = await Promise.all([version, production].map((n) =>
        api(`/v1/models/${family}/versions/${n}/config`).then((c) => c.document)));
    }
    document.getElementById("diff").replaceChildren(...diff(v, prod));
  } catch (err) {
    showError(message, err);
  }
}

keyArea(document.getElementById("key-area"), load);
