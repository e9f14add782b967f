"use strict";
// addrspace map: draws the embedded map (one column per flat view) on a log-like axis over
// the address window [lo, hi), zooms that window from the whole 2^64 space down to bytes,
// and shows the lookup answer of the hovered range. Addresses are BigInts throughout.

const DATA = JSON.parse(document.getElementById("map-data").textContent);
const KINDS = JSON.parse(document.getElementById("map-kinds").textContent);
const TOP = 1n << 64n;
const MIN_SPAN = 16n;
// The scale of layout.rs: a piece gets MIN_H + PER_DOUBLING * log2(size) pixels, the log
// interpolated linearly between powers of two; stretched when the window is short.
const MIN_H = 14, PER_DOUBLING = 2.5;
const GUTTER = 130, COLUMN = 260, GAP = 16, HEAD_LINE = 14;
const SVGNS = "http://www.w3.org/2000/svg";

function hex16(a) {
  if (a >= TOP) a = TOP - 1n;
  return a.toString(16).padStart(16, "0");
}
function sizeText(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
  let u = 0;
  while (u + 1 < units.length && n >= 1n << BigInt(10 * (u + 1))) u++;
  const scale = 1n << BigInt(10 * u);
  const h = (n * 100n + scale / 2n) / scale;
  const whole = h / 100n, frac = Number(h % 100n);
  const about = h * scale === n * 100n ? "" : "~";
  if (frac === 0) return `${about}${whole} ${units[u]}`;
  if (frac % 10 === 0) return `${about}${whole}.${frac / 10} ${units[u]}`;
  return `${about}${whole}.${String(frac).padStart(2, "0")} ${units[u]}`;
}
function height(size) {
  const fl = size.toString(2).length - 1;
  const rest = size - (1n << BigInt(fl));
  const frac = Number((rest * 1024n) >> BigInt(fl)) / 1024;
  return MIN_H + PER_DOUBLING * (fl + frac);
}
function cmp(a, b) { return a < b ? -1 : a > b ? 1 : 0; }

// Columns as pieces (ranges and holes) from 0 to 2^64, and the union of all boundaries.
const columns = DATA.columns.map((c) => {
  const pieces = [];
  let at = 0n;
  for (const r of c.ranges) {
    const start = BigInt(r.start), end = BigInt(r.last) + 1n;
    if (start > at) pieces.push({ hole: true, start: at, end: start });
    pieces.push({ hole: false, start, end, r });
    at = end;
  }
  if (at < TOP) pieces.push({ hole: true, start: at, end: TOP });
  return { spaces: c.spaces, root: c.root, pieces };
});
const ALL_BOUNDS = (() => {
  const seen = new Map();
  for (const c of columns) for (const p of c.pieces) { seen.set(String(p.start), p.start); seen.set(String(p.end), p.end); }
  return [...seen.values()].sort(cmp);
})();

let lo = 0n, hi = TOP;
let layout = null; // {bounds, ys, top}

function el(name, attrs, parent) {
  const e = document.createElementNS(SVGNS, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (parent) parent.appendChild(e);
  return e;
}
function text(parent, x, y, s, cls, maxChars) {
  if (maxChars && s.length > maxChars) s = s.slice(0, maxChars - 1) + "\u2026";
  const t = el("text", { x, y }, parent);
  if (cls) t.setAttribute("class", cls);
  t.textContent = s;
  return t;
}

// The boundaries inside the window with their heights, stretched to fill `avail` pixels.
function axis(avail) {
  const bounds = [lo];
  for (const b of ALL_BOUNDS) if (b > lo && b < hi) bounds.push(b);
  bounds.push(hi);
  const ys = [0];
  for (let i = 1; i < bounds.length; i++) ys.push(ys[i - 1] + height(bounds[i] - bounds[i - 1]));
  const stretch = Math.max(1, avail / ys[ys.length - 1]);
  return { bounds, ys: ys.map((y) => y * stretch) };
}
function yOf(a) {
  const { bounds, ys } = layout;
  let l = 0, h = bounds.length - 1;
  while (l < h) { const m = (l + h) >> 1; if (bounds[m] < a) l = m + 1; else h = m; }
  return ys[l];
}
// The address at height y (inside the drawing), interpolated within its piece.
function addrAt(y) {
  const { bounds, ys } = layout;
  let i = 0;
  while (i + 2 < ys.length && ys[i + 1] <= y) i++;
  const f = Math.min(1, Math.max(0, (y - ys[i]) / (ys[i + 1] - ys[i])));
  const span = bounds[i + 1] - bounds[i];
  const a = bounds[i] + (span * BigInt(Math.floor(f * 1048576))) / 1048576n;
  return a >= hi ? hi - 1n : a;
}

function render() {
  const map = document.getElementById("map");
  const headLines = Math.max(1, ...columns.map((c) => c.spaces.length + 1));
  const top = headLines * HEAD_LINE + 10;
  const avail = Math.max(200, window.innerHeight - document.querySelector("header").offsetHeight - top - 30);
  layout = axis(avail);
  layout.top = top;
  const total = layout.ys[layout.ys.length - 1];
  const width = GUTTER + columns.length * (COLUMN + GAP);
  map.textContent = "";
  const svg = el("svg", { width, height: top + total + 20, id: "map-svg" }, map);
  const defs = el("defs", {}, svg);
  const pat = el("pattern", { id: "alias", patternUnits: "userSpaceOnUse", width: 6, height: 6, patternTransform: "rotate(45)" }, defs);
  el("line", { x1: 0, y1: 0, x2: 0, y2: 6, stroke: "#000", "stroke-opacity": 0.2, "stroke-width": 2 }, pat);
  const grid = el("g", { stroke: "#e4e4e4" }, svg);
  const marks = el("g", { "text-anchor": "end" }, svg);
  layout.bounds.forEach((b, i) => {
    const y = top + layout.ys[i];
    el("line", { x1: GUTTER - 6, y1: y, x2: width, y2: y }, grid);
    text(marks, GUTTER - 8, y + 3.5, hex16(b), "addr");
  });
  ticks(marks, grid, top);
  columns.forEach((c, ci) => {
    const x = GUTTER + ci * (COLUMN + GAP);
    c.spaces.forEach((s, l) => text(svg, x, 11 + l * HEAD_LINE, `AS "${s}"`, "head", 40));
    text(svg, x, 11 + c.spaces.length * HEAD_LINE, c.root === null ? "(no rendered view)" : `root: ${c.root}`, "addr", 42);
    c.pieces.forEach((p, pi) => {
      if (p.end <= lo || p.start >= hi) return;
      const s = p.start < lo ? lo : p.start, e = p.end > hi ? hi : p.end;
      drawPiece(svg, x, top + yOf(s), top + yOf(e), p, ci, pi);
    });
  });
  document.getElementById("span").textContent =
    `showing ${hex16(lo)}-${hex16(hi - 1n)} (${sizeText(hi - lo)})`;
}

// Extra address marks inside tall pieces, so that a zoomed-in window still reads.
function ticks(marks, grid, top) {
  const { bounds, ys } = layout;
  for (let i = 0; i + 1 < bounds.length; i++) {
    const px = ys[i + 1] - ys[i];
    if (px < 90) continue;
    const span = bounds[i + 1] - bounds[i];
    let step = 1n;
    while (span / step > BigInt(Math.max(1, Math.floor(px / 45)))) step <<= 1n;
    for (let a = (bounds[i] / step + 1n) * step; a < bounds[i + 1]; a += step) {
      const y = top + ys[i] + (Number(((a - bounds[i]) * 1048576n) / span) / 1048576) * px;
      if (y - (top + ys[i]) < 14 || top + ys[i + 1] - y < 14) continue;
      el("line", { x1: GUTTER - 4, y1: y, x2: GUTTER, y2: y, stroke: "#999" }, grid);
      text(marks, GUTTER - 8, y + 3.5, hex16(a), "tick");
    }
  }
}

function drawPiece(svg, x, y0, y1, p, ci, pi) {
  const h = y1 - y0;
  const g = el("g", {}, svg);
  const fill = p.hole ? "#f3f3f3" : KINDS[p.r.kind][0];
  const rect = el("rect", { x, y: y0, width: COLUMN, height: h, fill, class: "piece", "data-col": ci, "data-piece": pi }, g);
  rect.setAttribute("data-kind", p.hole ? "hole" : p.r.kind);
  rect.setAttribute("data-name", p.hole ? "" : p.r.name);
  if (p.hole) {
    rect.setAttribute("stroke", "#bbb");
    rect.setAttribute("stroke-dasharray", "2 2");
  } else {
    rect.setAttribute("stroke", "#333");
    rect.setAttribute("stroke-width", "0.6");
    if (p.r.via_alias) el("rect", { x, y: y0, width: COLUMN, height: h, fill: "url(#alias)", stroke: "#000", "stroke-dasharray": "4 2", "pointer-events": "none" }, g);
  }
  const size = sizeText(p.end - p.start);
  const one = y0 + h / 2 + 3.5;
  if (p.hole) {
    if (h >= 12) text(g, x + 6, one, `hole ${size}`, "hole", 40);
  } else if (h >= 30) {
    text(g, x + 6, y0 + 12, p.r.name, null, 40);
    text(g, x + 6, y0 + 24, `${size}, ${p.r.type_word}`, "addr", 40);
  } else if (h >= 12) {
    text(g, x + 6, one, `${p.r.name} (${size})`, null, 40);
  }
}

// What `addrspace lookup` answers for address `a` in the hovered piece.
function answer(c, p, a) {
  const lines = [c.spaces.map((s) => `AS "${s}"`).join(", "), `address  ${hex16(a)}`];
  lines.push(`range    ${hex16(p.start)}-${hex16(p.end - 1n)} (${sizeText(p.end - p.start)})`);
  if (p.hole) {
    lines.push("unassigned: no region answers here");
    return lines.join("\n");
  }
  const r = p.r;
  lines.push(`region   ${r.name} ${r.region_id} (${r.type_word}, prio ${r.priority})`);
  lines.push(`offset   0x${(BigInt(r.offset) + (a - p.start)).toString(16)} in the region (0x${BigInt(r.offset).toString(16)} at the range's start)`);
  const attrs = [KINDS[r.kind][1]];
  if (r.readonly) attrs.push("readonly");
  if (r.nonvolatile) attrs.push("nonvolatile");
  if (r.dirty_log.length) attrs.push(`dirty-log ${r.dirty_log.join("+")}`);
  if (r.via_alias) attrs.push("through an alias");
  lines.push(`attrs    ${attrs.join(", ")}`);
  lines.push(r.path.length ? "path     (at the range's first address)" : "path     (not known)");
  for (const s of r.path) lines.push(`  ${s.role} ${s.name} ${s.detail}`);
  return lines.join("\n");
}

function pieceOf(target) {
  if (!target || !target.classList || !target.classList.contains("piece")) return null;
  const c = columns[Number(target.getAttribute("data-col"))];
  return { c, p: c.pieces[Number(target.getAttribute("data-piece"))] };
}
function svgY(ev) {
  return ev.clientY - document.getElementById("map-svg").getBoundingClientRect().top - layout.top;
}

// Zooms the window by `per1024`/1024 (512: in by two) keeping address `a` where it is.
function zoomAround(a, per1024) {
  const span = hi - lo;
  let ns = (span * BigInt(per1024)) / 1024n;
  if (ns < MIN_SPAN) ns = MIN_SPAN;
  if (ns > TOP) ns = TOP;
  let nlo = a - ((a - lo) * ns) / span;
  if (nlo < 0n) nlo = 0n;
  if (nlo + ns > TOP) nlo = TOP - ns;
  lo = nlo;
  hi = nlo + ns;
  render();
}
function zoomTo(start, end) {
  const m = (end - start) / 8n;
  lo = start > m ? start - m : 0n;
  hi = end + m < TOP ? end + m : TOP;
  if (hi - lo < MIN_SPAN) hi = lo + MIN_SPAN > TOP ? TOP : lo + MIN_SPAN;
  render();
}

const tip = document.getElementById("tip");
const mapEl = document.getElementById("map");
mapEl.addEventListener("mousemove", (ev) => {
  const hit = pieceOf(ev.target);
  if (!hit) { tip.hidden = true; return; }
  let a = addrAt(svgY(ev));
  if (a < hit.p.start) a = hit.p.start;
  if (a >= hit.p.end) a = hit.p.end - 1n;
  tip.textContent = answer(hit.c, hit.p, a);
  tip.hidden = false;
  const x = Math.min(ev.clientX + 14, window.innerWidth - tip.offsetWidth - 4);
  const y = Math.min(ev.clientY + 14, window.innerHeight - tip.offsetHeight - 4);
  tip.style.left = `${Math.max(0, x)}px`;
  tip.style.top = `${Math.max(0, y)}px`;
});
mapEl.addEventListener("mouseleave", () => { tip.hidden = true; });
mapEl.addEventListener("click", (ev) => {
  const hit = pieceOf(ev.target);
  if (hit) zoomTo(hit.p.start < lo ? lo : hit.p.start, hit.p.end > hi ? hi : hit.p.end);
});
mapEl.addEventListener("wheel", (ev) => {
  if (!layout || ev.deltaY === 0) return;
  ev.preventDefault();
  // A wheel notch (about 100) zooms by ~1.8; a trackpad's small steps zoom smoothly.
  const steps = Math.max(-3, Math.min(3, ev.deltaY / 120));
  zoomAround(addrAt(svgY(ev)), Math.max(1, Math.round(1024 * Math.pow(2, steps))));
}, { passive: false });
document.getElementById("zoom-in").onclick = () => zoomAround(lo + (hi - lo) / 2n, 512);
document.getElementById("zoom-out").onclick = () => zoomAround(lo + (hi - lo) / 2n, 2048);
document.getElementById("zoom-all").onclick = () => { lo = 0n; hi = TOP; render(); };
window.addEventListener("resize", render);

const legend = document.getElementById("legend");
for (const [, [colour, label]] of Object.entries(KINDS)) {
  const sw = document.createElement("span");
  sw.className = "sw";
  sw.style.background = colour;
  legend.append(sw, label);
}
for (const [cls, label] of [["alias", "through an alias"], ["hole", "hole (unassigned)"]]) {
  const sw = document.createElement("span");
  sw.className = `sw ${cls}`;
  legend.append(sw, label);
}
legend.append("  \u2014 wheel or +/\u2212 to zoom, click a range to zoom to it, hover for its lookup answer");
render();
