// Plots drawn as inline SVG from a manifest's numbers (no chart library, nothing fetched).
import { el } from "/ui/console.js";

const W = 320, H = 220, L = 44, R = 12, T = 12, B = 34;

function frame(xLabel, yLabel, yMax, xTicks = []) {
  const svg = el("svg", { viewBox: `0 0 ${W} ${H}`, class: "plot", role: "img" });
  for (let i = 0; i <= 4; i++) {
    const y = T + (H - T - B) * (1 - i / 4);
    svg.append(el("line", { x1: L, x2: W - R, y1: y, y2: y, class: "grid" }),
      el("text", { x: L - 4, y: y + 3, "text-anchor": "end" }, +(yMax * i / 4).toFixed(3)));
  }
  svg.append(el("line", { x1: L, x2: W - R, y1: H - B, y2: H - B, class: "axis" }),
    el("line", { x1: L, x2: L, y1: T, y2: H - B, class: "axis" }),
    ...xTicks.map(([at, label]) => el("text", { x: at, y: H - B + 12, "text-anchor": "middle" }, label)),
    el("text", { x: (L + W - R) / 2, y: H - 4, "text-anchor": "middle" }, xLabel),
    el("text", { x: 10, y: (T + H - B) / 2, "text-anchor": "middle", transform: `rotate(-90 10 ${(T + H - B) / 2})` }, yLabel));
  return svg;
}

const sx = (v, max = 1) => L + (W - L - R) * (v / max);
const sy = (v, max = 1) => H - B - (H - T - B) * (v / max);

export function figure(caption, content) {
  return el("figure", {}, el("figcaption", {}, caption), content);
}

export function missing(caption, why) {
  return figure(caption, el("p", { class: "missing" }, why));
}

// Calibration: observed rate against predicted probability per bin, with the diagonal.
export function calibrationCurve(bins) {
  const max = Math.max(0.05, ...bins.map((b) => Math.max(b.predicted, b.observed))) * 1.05;
  const top = Math.min(1, max);
  const svg = frame("predicted probability", "observed rate", top,
    [0, 0.25, 0.5, 0.75, 1].map((f) => [sx(top * f, top), +(top * f).toFixed(2)]));
  svg.setAttribute("aria-label", "Calibration curve: " + bins.map((b) => `predicted ${b.predicted.toFixed(3)}, observed ${b.observed.toFixed(3)}`).join("; "));
  svg.append(el("line", { x1: sx(0, top), y1: sy(0, top), x2: sx(top, top), y2: sy(top, top), class: "ideal" }));
  const points = bins.filter((b) => b.rows > 0);
  svg.append(el("polyline", { class: "series", points: points.map((b) => `${sx(b.predicted, top).toFixed(1)},${sy(b.observed, top).toFixed(1)}`).join(" ") }));
  for (const b of points) {
    svg.append(el("circle", { cx: sx(b.predicted, top), cy: sy(b.observed, top), r: 3, class: "dot" },
      el("title", {}, `predicted ${b.predicted}, observed ${b.observed}, ${b.rows} rows`)));
  }
  return svg;
}

// Histogram of the test rows' scores by bin (the rows each calibration bin holds).
export function scoreHistogram(bins) {
  const max = Math.max(...bins.map((b) => b.rows), 1);
  const width = (W - L - R) / bins.length;
  const svg = frame("score bin (calibrated probability)", "rows", max,
    [...bins.map((b, i) => [L + i * width, b.bin[0]]), [W - R, bins[bins.length - 1].bin[1]]]);
  svg.setAttribute("aria-label", "Score histogram: " + bins.map((b) => `${b.bin[0]}–${b.bin[1]}: ${b.rows}`).join("; "));
  bins.forEach((b, i) => {
    const h = (H - T - B) * (b.rows / max);
    svg.append(el("rect", { x: L + i * width + 1, y: H - B - h, width: width - 2, height: h, class: "bar" },
      el("title", {}, `${b.bin[0]}–${b.bin[1]}: ${b.rows} rows`)));
  });
  return svg;
}

// Horizontal bars with optional 95% intervals: [{name, value, low?, high?}] on [0, max].
export function bars(items, xLabel, max = null) {
  const top = max ?? Math.max(...items.map((i) => i.high ?? i.value), 1e-9) * 1.05;
  const rowH = 18, left = 130, height = T + B + rowH * items.length;
  const svg = el("svg", { viewBox: `0 0 ${W} ${height}`, class: "plot", role: "img",
    "aria-label": `${xLabel}: ` + items.map((i) => `${i.name} ${i.value}`).join("; ") });
  const x = (v) => left + (W - left - R - 40) * (v / top);  // 40: room for the value
  items.forEach((item, n) => {
    const y = T + n * rowH;
    svg.append(el("text", { x: left - 4, y: y + 12, "text-anchor": "end" }, item.name),
      el("rect", { x: left, y: y + 3, width: Math.max(0, x(item.value) - left), height: rowH - 6, class: "bar" },
        el("title", {}, `${item.name}: ${item.value}` + (item.low != null ? ` (95% ${item.low}–${item.high})` : ""))));
    if (item.low != null) svg.append(el("line", { x1: x(item.low), x2: x(item.high), y1: y + rowH / 2, y2: y + rowH / 2, class: "ci" }));
    const end = Math.max(x(item.value), item.high != null ? x(item.high) : 0);
    svg.append(el("text", { x: end + 4, y: y + 12, class: "value" }, +item.value.toFixed(4)));
  });
  svg.append(el("line", { x1: left, x2: left, y1: T, y2: height - B, class: "axis" }),
    el("text", { x: (left + W - R) / 2, y: height - 8, "text-anchor": "middle" }, `${xLabel} (0 – ${+top.toFixed(3)})`));
  return svg;
}
