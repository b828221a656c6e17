/**
 * The page shell that the report and the sweep leaderboard share: one self-contained HTML file,
 * inline CSS, no script, nothing fetched. It opens from disk, from a CI artifact or an e-mail.
 */

export function escapeHtml(text: unknown): string {
  return String(text ?? '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

export const fixed = (x: number | null | undefined, digits = 3) => (x === null || x === undefined || Number.isNaN(x) ? '–' : x.toFixed(digits));
export const pct = (x: number | null | undefined, digits = 1) => (x === null || x === undefined || Number.isNaN(x) ? '–' : `${(100 * x).toFixed(digits)}%`);

/** A signed difference, coloured by whether it is better (`higherIsBetter`) or worse. */
export function delta(value: number, higherIsBetter = true, digits = 3): string {
  if (!Number.isFinite(value) || Math.abs(value) < 0.5 * 10 ** -digits) return `<span class="delta">±0</span>`;
  const better = value > 0 === higherIsBetter;
  return `<span class="delta ${better ? 'up' : 'down'}">${value > 0 ? '+' : '−'}${Math.abs(value).toFixed(digits)}</span>`;
}

export function section(id: string, title: string, body: string, note = ''): string {
  return `<section id="${id}"><h2>${escapeHtml(title)}</h2>${note ? `<p class="note">${note}</p>` : ''}${body}</section>`;
}

export function figure(name: string, svg: string, caption = ''): string {
  return `<figure class="chart" data-chart="${escapeHtml(name)}">${svg}${caption ? `<figcaption>${caption}</figcaption>` : ''}</figure>`;
}

export function page(options: { title: string; subtitle: string; banner?: string; nav: [string, string][]; body: string }): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; style-src 'unsafe-inline'">
<title>${escapeHtml(options.title)}</title>
<style>${CSS}</style>
</head>
<body>
<header>
  <h1>${escapeHtml(options.title)}</h1>
  <p class="subtitle">${options.subtitle}</p>
  ${options.banner ? `<div class="banner" role="alert">${options.banner}</div>` : ''}
</header>
<nav>${options.nav.map(([id, label]) => `<a href="#${id}">${escapeHtml(label)}</a>`).join('')}</nav>
<main>
${options.body}
</main>
</body>
</html>
`;
}

const CSS = `
:root { --ink:#212529; --muted:#6c757d; --line:#e9ecef; --bg:#f8f9fa; --card:#fff; --model:#3b5bdb; --good:#2b8a3e; --bad:#c92a2a; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif; color:var(--ink); background:var(--bg); }
header { background:var(--card); padding:20px 32px 4px; }
h1 { margin:0; font-size:22px; }
.subtitle { margin:4px 0 10px; color:var(--muted); }
/* Only the section links stay in view (one line, about 40 px): the title and the banner scroll away. */
nav { display:flex; gap:18px; flex-wrap:wrap; background:var(--card); border-bottom:1px solid var(--line); padding:0 32px; position:sticky; top:0; z-index:2; }
nav a { color:var(--muted); text-decoration:none; padding:8px 0; border-bottom:2px solid transparent; }
nav a:hover { color:var(--ink); border-color:var(--model); }
main { padding:8px 32px 48px; max-width:1400px; }
section { background:var(--card); border:1px solid var(--line); border-radius:10px; padding:18px 22px; margin:18px 0; overflow-x:auto; scroll-margin-top:64px; }
h2 { margin:0 0 12px; font-size:17px; }
h3 { margin:16px 0 8px; font-size:14px; }
.note { color:var(--muted); margin:-6px 0 12px; }
.banner { background:#fff4e6; border:1px solid #ffd8a8; color:#7c3a00; border-radius:8px; padding:10px 14px; margin:0 0 10px; }
.headline { display:grid; grid-template-columns:repeat(auto-fit,minmax(190px,1fr)); gap:14px; }
.headline + .note { margin-top:12px; }
table.references + .note { margin-top:8px; }
.metric { border:1px solid var(--line); border-radius:10px; padding:14px 16px; }
.metric .label { color:var(--muted); font-size:12px; text-transform:uppercase; letter-spacing:.04em; }
.metric .value { font-size:30px; font-weight:650; font-variant-numeric:tabular-nums; }
.metric .baseline { color:var(--muted); font-size:12px; }
.metric .versus { color:var(--muted); font-size:12px; }
.metric .interval { color:var(--muted); font-size:12px; font-variant-numeric:tabular-nums; }
table.splits .interval, table.leaderboard .interval { color:var(--muted); font-size:11px; white-space:nowrap; }
table.leaderboard .verdict { font-size:11px; white-space:nowrap; }
table.leaderboard td.param { font-family:ui-monospace,monospace; font-size:12px; }
table.leaderboard td.param.base { color:var(--muted); }
table.leaderboard th.param { white-space:nowrap; }
.scroll { overflow-x:auto; }
table.per-class td.never { color:var(--muted); font-style:italic; font-size:12px; }
ol.confusions { margin:4px 0 0 1.2em; padding:0; columns:2 320px; font-size:13px; }
.delta { font-variant-numeric:tabular-nums; color:var(--muted); }
.delta.up { color:var(--good); } .delta.down { color:var(--bad); }
table { border-collapse:collapse; font-variant-numeric:tabular-nums; }
th, td { padding:4px 10px; border-bottom:1px solid var(--line); text-align:right; white-space:nowrap; }
th { font-weight:600; color:var(--muted); font-size:12px; }
td:first-child, th:first-child { text-align:left; }
tr.best td:first-child::after { content:" ▲ best"; color:var(--good); font-size:11px; }
tr.worst td:first-child::after { content:" ▼ worst"; color:var(--bad); font-size:11px; }
tr.average td { font-weight:600; }
td.reference, th.reference { color:var(--muted); border-left:1px solid var(--line); }
tr.self td { font-weight:600; }
.versus { font-size:15px; margin:4px 0 8px; }
tfoot tr:first-child td { border-top:2px solid #dee2e6; }
.bar { display:inline-block; height:8px; background:var(--model); border-radius:2px; vertical-align:middle; }
.charts { display:flex; flex-wrap:wrap; gap:26px; align-items:flex-start; }
figure.chart { margin:0; }
figure.chart svg { max-width:100%; height:auto; }
figcaption { color:var(--muted); font-size:12px; max-width:460px; }
.gallery { display:grid; grid-template-columns:repeat(auto-fill,minmax(300px,1fr)); gap:14px; }
.card { display:flex; gap:12px; border:1px solid var(--line); border-radius:10px; padding:12px; background:var(--card); }
.card.wrong { border-color:#ffc9c9; background:#fff8f8; }
.card .poster { flex:0 0 84px; }
.card .poster img, .card .poster svg { width:84px; height:120px; object-fit:cover; border-radius:6px; display:block; }
.card h4 { margin:0 0 2px; font-size:14px; }
.card .year { color:var(--muted); font-weight:400; }
.card .excerpt { color:#495057; font-size:12px; margin:4px 0 8px; }
.card .verdict { font-size:12px; margin-bottom:6px; }
.card .verdict .ok { color:var(--good); font-weight:600; } .card .verdict .miss { color:var(--bad); font-weight:600; }
.topk { display:grid; grid-template-columns:90px 1fr 44px; gap:2px 6px; font-size:12px; align-items:center; }
.topk .track { background:var(--line); border-radius:2px; height:8px; }
.topk .fill { background:var(--model); height:8px; border-radius:2px; }
.topk .fill.truth { background:var(--good); }
.topk .p { text-align:right; font-variant-numeric:tabular-nums; color:var(--muted); }
pre { background:var(--bg); border:1px solid var(--line); border-radius:8px; padding:10px 12px; overflow:auto; font-size:12px; max-height:420px; }
.kv td { text-align:left; } .kv td:first-child { color:var(--muted); }
@media print {
  nav { display:none; }
  body { background:#fff; }
  section { break-inside:avoid-page; border:none; overflow:visible; }
  pre { max-height:none; overflow:visible; white-space:pre-wrap; word-break:break-word; }
}
code { font-size:12px; }
`;
