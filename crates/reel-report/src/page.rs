//! The one page both `reel report` and the live page (`reel record --display`) show: an HTML
//! shell with its CSS and script inline, and the [`Page`] data it renders. The report embeds
//! the data in the file (no network, nothing to fetch); the live page fetches the same
//! structure from `/api/page` every second and renders it with the same function.

use serde::{Deserialize, Serialize};

/// A figure: an SVG drawn by [`crate::charts`].
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct Figure {
    pub id: String,
    pub title: String,
    pub svg: String,
}

/// A key figure shown as a card.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct Card {
    pub label: String,
    pub value: String,
    /// Drawn in red.
    pub bad: bool,
}

/// One episode's section.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct EpisodeView {
    pub index: u64,
    /// Rows of the episode in the dataset (its length).
    pub rows: u64,
    /// Work time of every stored tick, ms (the page counts them and computes the p99).
    pub work_ms: Vec<f32>,
    /// Indices of the ticks that missed their deadline.
    pub missed: Vec<u32>,
    pub figures: Vec<Figure>,
    /// A table: the first row is the header.
    pub table: Vec<Vec<String>>,
    pub note: Option<String>,
}

/// The doctor's findings, as shown.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct DoctorView {
    pub headline: String,
    /// (cause, evidence) ranked, most important first.
    pub findings: Vec<(String, String)>,
    pub command: String,
    /// A table of the trials: the first row is the header.
    pub trials: Vec<Vec<String>>,
}

/// What the live page adds.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct LiveView {
    /// "Recording episode 3", "Resetting", ...
    pub state: String,
    /// Ticks seen since the page's server started.
    pub ticks: u64,
    /// Of which recorded (their frame added to the dataset).
    pub recorded: u64,
    /// Updates the loop could not hand over because the page's queue was full (the loop
    /// drops them rather than wait).
    pub dropped: u64,
    /// Camera names, in order (thumbnails at `/camera/<i>.jpg`).
    pub cameras: Vec<String>,
    /// Last events ("episode 3 saved: 300 frames").
    pub events: Vec<String>,
}

/// Everything the page shows.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct Page {
    pub title: String,
    pub subtitle: String,
    pub live: Option<LiveView>,
    pub cards: Vec<Card>,
    pub doctor: Option<DoctorView>,
    pub trends: Vec<Figure>,
    pub episodes: Vec<EpisodeView>,
}

const STYLE: &str = r#"
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;background:#f6f7f9;color:#1d2330}
main{max-width:960px;margin:0 auto;padding:20px}
h1{font-size:24px;margin:8px 0 2px} h2{font-size:19px;margin:26px 0 8px;border-bottom:1px solid #d8dce3;padding-bottom:4px}
h3{font-size:16px;margin:18px 0 6px}
.sub{color:#5b6474;margin:0 0 12px}
.cards{display:flex;flex-wrap:wrap;gap:10px;margin:10px 0}
.card{background:#fff;border:1px solid #dde1e8;border-radius:8px;padding:8px 12px;min-width:120px}
.card .v{font-size:20px;font-weight:600}.card .l{font-size:12px;color:#5b6474}
.card.bad .v{color:#c62828}
figure{margin:8px 0;background:#fff;border:1px solid #dde1e8;border-radius:8px;padding:4px;overflow:hidden}
figure svg{width:100%;height:auto;display:block}
table{border-collapse:collapse;background:#fff;margin:6px 0;font-size:13px}
td,th{border:1px solid #dde1e8;padding:3px 8px;text-align:left}th{background:#eef0f4}
.episode{border-top:1px dashed #c9ced8;margin-top:14px}
.bad{color:#c62828}.ok{color:#2e7d32}
.findings li{margin:6px 0}.cmd{background:#1d2330;color:#e8ecf3;padding:10px;border-radius:6px;font-family:ui-monospace,monospace;white-space:pre-wrap;word-break:break-all}
nav a{margin-right:8px;font-size:13px}
#thumbs{display:flex;flex-wrap:wrap;gap:10px}
#thumbs figure{padding:6px}#thumbs img{display:block;max-width:300px;background:#222}
#thumbs figcaption{font-size:12px;color:#5b6474}
.state{display:inline-block;padding:4px 10px;border-radius:12px;background:#1565c0;color:#fff;font-weight:600}
.note{color:#5b6474;font-style:italic}
"#;

const SCRIPT: &str = r#"
function el(tag, attrs, text) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined && text !== null) e.textContent = text;
  return e;
}
function table(rows) {
  const t = el('table');
  rows.forEach((r, i) => {
    const tr = el('tr');
    r.forEach(c => tr.appendChild(el(i === 0 ? 'th' : 'td', {}, c)));
    t.appendChild(tr);
  });
  return t;
}
const THUMBS = document.getElementById('thumbs');
function figure(f) {
  const fig = el('figure', {id: f.id, 'data-figure': f.title});
  fig.innerHTML = f.svg;
  return fig;
}
function p99(values) {
  if (!values.length) return 0;
  const s = Float64Array.from(values).sort();
  return s[Math.min(s.length - 1, Math.ceil(0.99 * s.length) - 1)];
}
function render(page) {
  const app = document.getElementById('app');
  app.textContent = '';
  document.title = page.title;
  app.appendChild(el('h1', {}, page.title));
  app.appendChild(el('p', {class: 'sub'}, page.subtitle));
  if (page.live) {
    const lv = page.live;
    const st = el('p', {id: 'live', 'data-live-ticks': lv.ticks, 'data-live-recorded': lv.recorded});
    st.appendChild(el('span', {class: 'state', id: 'live-state'}, lv.state));
    st.appendChild(document.createTextNode(` · ${lv.ticks} ticks seen, ${lv.recorded} recorded · ${lv.dropped} updates dropped`));
    app.appendChild(st);
    setupThumbs(lv.cameras);
    app.appendChild(THUMBS);
    if (lv.events.length) {
      const ul = el('ul', {id: 'live-events'});
      lv.events.forEach(e => ul.appendChild(el('li', {}, e)));
      app.appendChild(ul);
    }
  }
  if (page.cards.length) {
    const c = el('div', {class: 'cards'});
    page.cards.forEach(k => {
      const d = el('div', {class: 'card' + (k.bad ? ' bad' : '')});
      d.appendChild(el('div', {class: 'v'}, k.value));
      d.appendChild(el('div', {class: 'l'}, k.label));
      c.appendChild(d);
    });
    app.appendChild(c);
  }
  if (page.doctor) {
    const d = page.doctor;
    const s = el('section', {id: 'doctor'});
    s.appendChild(el('h2', {}, 'Doctor'));
    s.appendChild(el('p', {}, d.headline));
    const ol = el('ol', {class: 'findings'});
    d.findings.forEach(([cause, evidence]) => {
      const li = el('li', {'data-cause': cause});
      li.appendChild(el('b', {}, cause + ': '));
      li.appendChild(document.createTextNode(evidence));
      ol.appendChild(li);
    });
    s.appendChild(ol);
    if (d.command) s.appendChild(el('div', {class: 'cmd'}, d.command));
    if (d.trials.length > 1) s.appendChild(table(d.trials));
    app.appendChild(s);
  }
  if (page.trends.length) {
    const s = el('section', {id: 'trends'});
    s.appendChild(el('h2', {}, page.live ? 'Now' : 'Across episodes'));
    page.trends.forEach(f => s.appendChild(figure(f)));
    app.appendChild(s);
  }
  if (page.episodes.length) {
    app.appendChild(el('h2', {}, page.live ? 'Current episode' : 'Episodes'));
    if (page.episodes.length > 1) {
      const nav = el('nav');
      page.episodes.forEach(e => nav.appendChild(el('a', {href: '#episode-' + e.index}, 'episode ' + e.index)));
      app.appendChild(nav);
    }
  }
  page.episodes.forEach(e => {
    const s = el('section', {class: 'episode', id: 'episode-' + e.index, 'data-episode': e.index,
      'data-rows': e.rows, 'data-ticks': e.work_ms.length, 'data-missed': e.missed.length});
    const head = `Episode ${e.index} · ${e.rows} frames · ${e.work_ms.length} ticks stored · ` +
      `${e.missed.length} missed deadlines · tick p99 ${p99(e.work_ms).toFixed(3)} ms`;
    s.appendChild(el('h3', {class: e.missed.length ? 'bad' : ''}, head));
    if (e.note) s.appendChild(el('p', {class: 'note'}, e.note));
    e.figures.forEach(f => s.appendChild(figure(f)));
    if (e.table.length) s.appendChild(table(e.table));
    app.appendChild(s);
  });
  app.setAttribute('data-rendered', 'yes');
}
let thumbsReady = false;
function setupThumbs(names) {
  if (thumbsReady || !names.length) return;
  thumbsReady = true;
  const box = THUMBS;
  names.forEach((name, i) => {
    const fig = el('figure');
    const img = el('img', {id: 'thumb-' + i, alt: name, 'data-loaded': '0'});
    fig.appendChild(img);
    fig.appendChild(el('figcaption', {}, name));
    box.appendChild(fig);
    let n = 0;
    const next = () => { if (pollsLeft > 0) setTimeout(() => { img.src = `/camera/${i}.jpg?n=${++n}`; }, 250); };
    img.onload = () => { img.setAttribute('data-loaded', String(n)); next(); };
    img.onerror = next;
    img.src = `/camera/${i}.jpg?n=0`;
  });
}
// `?polls=N`: stop refreshing after N updates (a snapshot for scripts and headless browsers).
const pollsParam = new URLSearchParams(location.search).get('polls');
let pollsLeft = pollsParam === null ? Infinity : Number(pollsParam);
function poll() {
  if (pollsLeft <= 0) return;
  pollsLeft -= 1;
  fetch('/api/page', {cache: 'no-store'})
    .then(r => r.json())
    .then(p => {
      render(p);
      const app = document.getElementById('app');
      app.setAttribute('data-polls', String((Number(app.getAttribute('data-polls')) || 0) + 1));
      setTimeout(poll, 1000);
    })
    .catch(() => setTimeout(poll, 2000));
}
const data = JSON.parse(document.getElementById('reel-data').textContent);
render(data);
if (data.live) setTimeout(poll, 500);
"#;

/// The HTML page for `page` (everything inline: style, script, data).
pub fn html(page: &Page) -> String {
    // JSON inside <script> must not close the element: escape "</" as "<\/" (same string).
    let json = serde_json::to_string(page)
        .unwrap_or_else(|_| "{}".into())
        .replace("</", "<\\/");
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>{title}</title><style>{STYLE}</style></head>\
<body><main><div id=\"thumbs\"></div><div id=\"app\"></div></main>\
<script type=\"application/json\" id=\"reel-data\">{json}</script>\
<script>{SCRIPT}</script></body></html>\n",
        title = escape(&page.title)
    )
}

/// HTML-escapes text.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_is_inline_and_cannot_close_the_script() {
        let p = Page {
            title: "a </script><b>".into(),
            ..Default::default()
        };
        let h = html(&p);
        assert_eq!(
            h.matches("</script>").count(),
            2,
            "only the two real closers"
        );
        assert!(h.contains("<title>a &lt;/script&gt;&lt;b&gt;</title>"));
        assert!(
            !h.contains("http://") && !h.contains("https://"),
            "no network"
        );
        let start = h.find("id=\"reel-data\">").unwrap() + "id=\"reel-data\">".len();
        let end = start + h[start..].find("</script>").unwrap();
        let back: Page = serde_json::from_str(&h[start..end]).unwrap();
        assert_eq!(back.title, p.title);
    }
}
