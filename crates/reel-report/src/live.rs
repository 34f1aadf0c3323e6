//! The live page (`reel record --display`, and the Python module's equivalent): a small HTTP
//! server on 127.0.0.1 showing the cameras, the tick timing, the encoder backlog and the
//! episode/reset state while a session runs — the same page code as the report.
//!
//! ```text
//!  control loop ──try_send (bounded, never waits; full → dropped and counted)──► server thread
//!                                                                               │ ring of recent ticks
//!  camera latest-frame slots ◄── thumbnail thread (nice 10, a few fps): downscale + JPEG
//!                                                                               │
//!  browser ◄── GET / (the page) · /api/page (JSON, polled each second) · /camera/<i>.jpg
//! ```
//!
//! The loop's only cost is copying a fixed-size [`TickRecord`] into a preallocated bounded
//! channel ([`LiveServer::publish_tick`]); a slow or absent browser slows the server thread,
//! never the loop.

use crate::charts::{self, Extras, Series};
use crate::page::{Card, Figure, LiveView, Page};
use crossbeam_channel::{Receiver, Sender, TrySendError};
use reel_core::tick::{TickRecord, SECTIONS};
use reel_core::{Error, Result, SharedFrame};
use reel_engine::writer::EpisodeSaved;
use reel_record::session::{FrameSource, Observer};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Where a camera's pictures come from.
#[derive(Clone)]
pub enum CameraFeed {
    /// A latest-frame slot the thumbnail thread reads itself (reel's cameras).
    Source(Arc<dyn FrameSource>),
    /// Frames the front end hands over with [`LiveServer::publish_frame`] (the Python module).
    Published(String),
}

impl CameraFeed {
    fn name(&self) -> String {
        match self {
            CameraFeed::Source(s) => s.name().to_string(),
            CameraFeed::Published(n) => n.clone(),
        }
    }
}

/// How the live page runs.
#[derive(Clone)]
pub struct LiveConfig {
    /// Port on 127.0.0.1 (0: any free port; [`LiveServer::url`] says which).
    pub port: u16,
    /// The loop's rate (the tick budget drawn on the chart).
    pub fps: u32,
    pub title: String,
    pub cameras: Vec<CameraFeed>,
    /// Thumbnail width in pixels.
    pub thumb_width: u32,
    /// Thumbnails per second per camera.
    pub thumb_fps: f64,
    /// Seconds of ticks the charts show.
    pub window_s: f64,
}

impl LiveConfig {
    pub fn new(port: u16, fps: u32, cameras: Vec<CameraFeed>) -> LiveConfig {
        LiveConfig {
            port,
            fps,
            title: "reel · live".into(),
            cameras,
            thumb_width: 320,
            thumb_fps: 4.0,
            window_s: 10.0,
        }
    }
}

enum Msg {
    Tick(TickRecord, bool),
    Phase(String),
    Event(String),
}

/// Capacity of the loop → server channel (ticks; preallocated).
const CHANNEL: usize = 4096;

struct Shared {
    stop: AtomicBool,
    dropped: AtomicU64,
    /// Latest JPEG per camera.
    thumbs: Vec<Mutex<Option<Arc<Vec<u8>>>>>,
    /// Frames handed over by a front end without a frame source.
    published: Vec<Mutex<Option<SharedFrame>>>,
    thumbs_made: AtomicU64,
    /// HTTP requests answered (page, data, pictures).
    requests: AtomicU64,
}

/// A running live page. Dropping it (or [`stop`](Self::stop)) ends its threads.
pub struct LiveServer {
    url: String,
    tx: Sender<Msg>,
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

impl LiveServer {
    /// Binds 127.0.0.1:`cfg.port` and starts the server and thumbnail threads.
    pub fn start(cfg: LiveConfig) -> Result<LiveServer> {
        if cfg.fps == 0 || !(cfg.thumb_fps > 0.0 && cfg.thumb_fps <= 30.0) || cfg.thumb_width < 16 {
            return Err(Error::invalid(format!(
                "live page: fps {} must be positive, thumbnails 0 < {} <= 30 per second, at least 16 px wide (got {})",
                cfg.fps, cfg.thumb_fps, cfg.thumb_width
            )));
        }
        let server = tiny_http::Server::http(("127.0.0.1", cfg.port)).map_err(|e| {
            Error::invalid(format!(
                "live page: cannot listen on 127.0.0.1:{}: {e} (choose another --display-port, or 0 for any free port)",
                cfg.port
            ))
        })?;
        let addr = server
            .server_addr()
            .to_ip()
            .ok_or_else(|| Error::invalid("live page: the server has no IP address"))?;
        let url = format!("http://{addr}/");
        let n = cfg.cameras.len();
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            dropped: AtomicU64::new(0),
            thumbs: (0..n).map(|_| Mutex::new(None)).collect(),
            published: (0..n).map(|_| Mutex::new(None)).collect(),
            thumbs_made: AtomicU64::new(0),
            requests: AtomicU64::new(0),
        });
        let (tx, rx) = crossbeam_channel::bounded(CHANNEL);
        let mut threads = Vec::new();
        {
            let shared = shared.clone();
            let cfg = cfg.clone();
            threads.push(
                std::thread::Builder::new()
                    .name("live-thumbs".into())
                    .spawn(move || thumbnail_loop(&cfg, &shared))
                    .map_err(|e| {
                        Error::invalid(format!("live page: cannot start a thread: {e}"))
                    })?,
            );
        }
        {
            let shared = shared.clone();
            threads.push(
                std::thread::Builder::new()
                    .name("live-http".into())
                    .spawn(move || serve(server, rx, cfg, &shared))
                    .map_err(|e| {
                        Error::invalid(format!("live page: cannot start a thread: {e}"))
                    })?,
            );
        }
        Ok(LiveServer {
            url,
            tx,
            shared,
            threads,
        })
    }

    /// `http://127.0.0.1:<port>/`.
    pub fn url(&self) -> &str {
        &self.url
    }

    fn send(&self, m: Msg) {
        match self.tx.try_send(m) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.shared.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Hands one tick over (never waits: when the page's queue is full the tick is dropped
    /// and counted).
    pub fn publish_tick(&self, tick: &TickRecord, recording: bool) {
        self.send(Msg::Tick(*tick, recording));
    }

    /// The session's state ("Recording episode 3", "Resetting", ...).
    pub fn publish_phase(&self, what: &str) {
        self.send(Msg::Phase(what.to_string()));
    }

    /// A line in the page's event list ("episode 3 saved: 300 frames").
    pub fn publish_event(&self, what: &str) {
        self.send(Msg::Event(what.to_string()));
    }

    /// For a front end without frame sources: the latest frame of camera `i`. Never waits
    /// (skipped when the thumbnail thread holds the slot at that instant).
    pub fn publish_frame(&self, i: usize, frame: SharedFrame) {
        if let Some(slot) = self.shared.published.get(i) {
            if let Ok(mut g) = slot.try_lock() {
                *g = Some(frame);
            }
        }
    }

    /// Updates dropped because the page's queue was full.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    /// Thumbnails encoded so far (all cameras).
    pub fn thumbnails_made(&self) -> u64 {
        self.shared.thumbs_made.load(Ordering::Relaxed)
    }

    /// HTTP requests answered so far (a browser polling the page makes them).
    pub fn requests(&self) -> u64 {
        self.shared.requests.load(Ordering::Relaxed)
    }

    /// Stops the threads (the page stops updating).
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            if t.join().is_err() {
                tracing::warn!("a live page thread panicked");
            }
        }
    }
}

impl Drop for LiveServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl Observer for LiveServer {
    fn phase(&mut self, what: &str) {
        self.publish_phase(what);
    }
    fn tick(&mut self, tick: &TickRecord, recording: bool) {
        self.publish_tick(tick, recording);
    }
    fn saved(&mut self, s: &EpisodeSaved) {
        let spilled: u64 = s.spilled.iter().map(|(_, n)| n).sum();
        self.publish_event(&format!(
            "episode {} saved: {} frames, {spilled} spilled, committed {:.0} ms after its save",
            s.episode_index,
            s.frames,
            s.latency_s * 1e3
        ));
    }
}

fn thumbnail_loop(cfg: &LiveConfig, shared: &Shared) {
    reel_core::sched::set_current(reel_core::sched::ENCODER);
    let mut thumbers: Vec<reel_media::thumbnail::Thumbnailer> = cfg
        .cameras
        .iter()
        .map(|_| reel_media::thumbnail::Thumbnailer::new(cfg.thumb_width))
        .collect();
    let mut last: Vec<Option<(u64, u64)>> = vec![None; cfg.cameras.len()];
    let period = Duration::from_secs_f64(1.0 / cfg.thumb_fps);
    let mut failed = vec![false; cfg.cameras.len()];
    while !shared.stop.load(Ordering::SeqCst) {
        let t0 = Instant::now();
        for (i, feed) in cfg.cameras.iter().enumerate() {
            let frame = match feed {
                CameraFeed::Source(s) => s.latest(),
                CameraFeed::Published(_) => shared.published[i]
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone(),
            };
            let Some(f) = frame else { continue };
            let id = (f.seq, f.captured_ns);
            if last[i] == Some(id) {
                continue;
            }
            last[i] = Some(id);
            match thumbers[i].encode(&f) {
                Ok(jpg) => {
                    *shared.thumbs[i].lock().unwrap_or_else(|p| p.into_inner()) =
                        Some(Arc::new(jpg));
                    shared.thumbs_made.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    if !failed[i] {
                        failed[i] = true;
                        tracing::warn!("live page: thumbnail of camera {}: {e}", feed.name());
                    }
                }
            }
        }
        let spent = t0.elapsed();
        let mut left = period.saturating_sub(spent);
        while !left.is_zero() && !shared.stop.load(Ordering::SeqCst) {
            let step = left.min(Duration::from_millis(50));
            std::thread::sleep(step);
            left = left.saturating_sub(step);
        }
    }
}

/// What the server thread knows of the session.
struct LiveState {
    ring: VecDeque<(TickRecord, bool)>,
    cap: usize,
    ticks: u64,
    recorded: u64,
    state: String,
    events: VecDeque<String>,
    t0_ns: Option<u64>,
}

impl LiveState {
    fn apply(&mut self, m: Msg) {
        match m {
            Msg::Tick(t, rec) => {
                self.t0_ns.get_or_insert(t.scheduled_ns);
                self.ticks += 1;
                self.recorded += rec as u64;
                if self.ring.len() == self.cap {
                    self.ring.pop_front();
                }
                self.ring.push_back((t, rec));
            }
            Msg::Phase(s) => self.state = s,
            Msg::Event(e) => {
                if self.events.len() == 8 {
                    self.events.pop_front();
                }
                self.events.push_back(e);
            }
        }
    }
}

fn page(cfg: &LiveConfig, st: &LiveState, dropped: u64) -> Page {
    let period_ms = 1000.0 / cfg.fps as f64;
    let t0 = st.t0_ns.unwrap_or(0);
    let ring: Vec<&(TickRecord, bool)> = st.ring.iter().collect();
    let x: Vec<f64> = ring
        .iter()
        .map(|(t, _)| t.start_ns.saturating_sub(t0) as f64 / 1e9)
        .collect();
    let ms = |ns: u64| ns as f64 / 1e6;
    let layers: Vec<(String, Vec<f64>)> = SECTIONS
        .iter()
        .enumerate()
        .map(|(i, n)| {
            (
                n.to_string(),
                ring.iter()
                    .map(|(t, _)| ms(t.sections_ns[i] as u64))
                    .collect(),
            )
        })
        .collect();
    let missed: Vec<(f64, f64)> = ring
        .iter()
        .zip(&x)
        .filter(|((t, _), _)| t.missed)
        .map(|((t, _), &x)| (x, ms(t.work_ns())))
        .collect();
    let n_missed = missed.len();
    let mut works: Vec<f64> = ring.iter().map(|(t, _)| ms(t.work_ns())).collect();
    works.sort_by(f64::total_cmp);
    let p99 = works
        .get(((works.len() as f64 * 0.99).ceil() as usize).saturating_sub(1))
        .copied()
        .unwrap_or(0.0);
    let names: Vec<String> = cfg.cameras.iter().map(CameraFeed::name).collect();
    let ncam = ring
        .last()
        .map(|(t, _)| t.n_cameras as usize)
        .unwrap_or(0)
        .min(names.len());
    let mut figures = vec![Figure {
        id: "live-ticks".into(),
        title: "tick time by section".into(),
        svg: charts::stacked(
            &format!("Tick time by section (ms), last {:.0} s · budget {period_ms:.1} ms · {n_missed} missed", cfg.window_s),
            "seconds since the page started",
            "ms",
            &x,
            &layers,
            &Extras {
                markers: Some(Series::new("missed deadline", missed)),
                limit: Some((period_ms, format!("budget {period_ms:.1} ms"))),
                dots: false,
            },
        )
        .unwrap_or_default(),
    }];
    if ncam > 0 {
        let per_cam = |f: &dyn Fn(&TickRecord, usize) -> f64| -> Vec<Series> {
            (0..ncam)
                .map(|c| {
                    Series::new(
                        names[c].clone(),
                        ring.iter()
                            .zip(&x)
                            .map(|((t, _), &x)| (x, f(t, c)))
                            .collect(),
                    )
                })
                .collect()
        };
        figures.push(Figure {
            id: "live-queue".into(),
            title: "encoder backlog per camera".into(),
            svg: charts::lines(
                "Encoder backlog per camera (frames handed over, not yet encoded)",
                "seconds since the page started",
                "frames",
                &per_cam(&|t, c| t.cameras[c].queued as f64),
                &Extras::default(),
            )
            .unwrap_or_default(),
        });
        figures.push(Figure {
            id: "live-age".into(),
            title: "frame age per camera".into(),
            svg: charts::lines(
                "Frame age per camera (ms)",
                "seconds since the page started",
                "ms",
                &per_cam(&|t, c| t.cameras[c].age_us as f64 / 1e3),
                &Extras::default(),
            )
            .unwrap_or_default(),
        });
    }
    let queued_now: Vec<String> = ring
        .last()
        .map(|(t, _)| {
            (0..ncam)
                .map(|c| format!("{} {}", names[c], t.cameras[c].queued))
                .collect()
        })
        .unwrap_or_default();
    let rate = if x.len() > 1 {
        (x.len() - 1) as f64 / (x[x.len() - 1] - x[0]).max(1e-9)
    } else {
        0.0
    };
    Page {
        title: cfg.title.clone(),
        subtitle: format!(
            "control loop at {} Hz · cameras: {}",
            cfg.fps,
            names.join(", ")
        ),
        live: Some(LiveView {
            state: if st.state.is_empty() {
                "waiting for the session".into()
            } else {
                st.state.clone()
            },
            ticks: st.ticks,
            recorded: st.recorded,
            dropped,
            cameras: names.clone(),
            events: st.events.iter().cloned().collect(),
        }),
        cards: vec![
            Card {
                label: "rate now".into(),
                value: format!("{rate:.1} Hz"),
                bad: rate > 0.0 && rate < cfg.fps as f64 * 0.97,
            },
            Card {
                label: format!("tick p99, last {:.0} s", cfg.window_s),
                value: format!("{p99:.2} ms"),
                bad: p99 > period_ms,
            },
            Card {
                label: format!("missed, last {:.0} s", cfg.window_s),
                value: n_missed.to_string(),
                bad: n_missed > 0,
            },
            Card {
                label: "encoder backlog (frames)".into(),
                value: if queued_now.is_empty() {
                    "–".into()
                } else {
                    queued_now.join(" · ")
                },
                bad: false,
            },
        ],
        doctor: None,
        trends: figures,
        episodes: Vec::new(),
    }
}

fn header(name: &str, value: &str) -> Option<tiny_http::Header> {
    tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes()).ok()
}

fn respond(req: tiny_http::Request, status: u16, ctype: &str, body: Vec<u8>) {
    let mut r = tiny_http::Response::from_data(body).with_status_code(status);
    for h in [
        header("Content-Type", ctype),
        header("Cache-Control", "no-store"),
    ]
    .into_iter()
    .flatten()
    {
        r.add_header(h);
    }
    // A browser that went away is not an error of the session.
    let _ = req.respond(r);
}

fn serve(server: tiny_http::Server, rx: Receiver<Msg>, cfg: LiveConfig, shared: &Shared) {
    let cap = ((cfg.window_s * cfg.fps as f64).ceil() as usize).clamp(2, 20_000);
    let mut st = LiveState {
        ring: VecDeque::with_capacity(cap),
        cap,
        ticks: 0,
        recorded: 0,
        state: String::new(),
        events: VecDeque::new(),
        t0_ns: None,
    };
    let mut cached: Option<(Instant, Vec<u8>)> = None;
    while !shared.stop.load(Ordering::SeqCst) {
        let req = server.recv_timeout(Duration::from_millis(50));
        while let Ok(m) = rx.try_recv() {
            st.apply(m);
        }
        let req = match req {
            Ok(Some(r)) => r,
            Ok(None) => continue,
            Err(e) => {
                tracing::warn!("live page: {e}");
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        shared.requests.fetch_add(1, Ordering::Relaxed);
        let path = req.url().split('?').next().unwrap_or("").to_string();
        let dropped = shared.dropped.load(Ordering::Relaxed);
        match path.as_str() {
            "/" | "/index.html" => {
                let html = crate::page::html(&page(&cfg, &st, dropped));
                respond(req, 200, "text/html; charset=utf-8", html.into_bytes());
            }
            "/api/page" => {
                // At most a few renders a second, whatever the number of browsers.
                let fresh = cached
                    .as_ref()
                    .is_some_and(|(t, _)| t.elapsed() < Duration::from_millis(250));
                if !fresh {
                    let json = serde_json::to_vec(&page(&cfg, &st, dropped)).unwrap_or_default();
                    cached = Some((Instant::now(), json));
                }
                let body = cached.as_ref().map(|(_, b)| b.clone()).unwrap_or_default();
                respond(req, 200, "application/json", body);
            }
            p if p.starts_with("/camera/") && p.ends_with(".jpg") => {
                let i = p["/camera/".len()..p.len() - 4].parse::<usize>().ok();
                let jpg = i
                    .and_then(|i| shared.thumbs.get(i))
                    .and_then(|s| s.lock().unwrap_or_else(|p| p.into_inner()).clone());
                match jpg {
                    Some(j) => respond(req, 200, "image/jpeg", j.to_vec()),
                    None => respond(req, 404, "text/plain", b"no picture yet".to_vec()),
                }
            }
            _ => respond(req, 404, "text/plain", b"not found".to_vec()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    fn get(url: &str, path: &str) -> (u16, Vec<u8>) {
        let addr = url.trim_start_matches("http://").trim_end_matches('/');
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).unwrap();
        let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
        let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
        (status, buf[head_end + 4..].to_vec())
    }

    #[test]
    fn serves_page_json_and_thumbnails_and_never_blocks_the_publisher() {
        let live = LiveServer::start(LiveConfig {
            thumb_fps: 20.0,
            ..LiveConfig::new(0, 30, vec![CameraFeed::Published("front".into())])
        })
        .unwrap();
        assert!(live.url().starts_with("http://127.0.0.1:"));
        let (s, _) = get(live.url(), "/camera/0.jpg");
        assert_eq!(s, 404, "no picture before the first frame");
        live.publish_frame(
            0,
            Arc::new(reel_core::VideoFrame::solid(64, 48, [10, 200, 10])),
        );
        live.publish_phase("Recording episode 0");
        // Far more ticks than the channel holds, with nobody draining fast: never blocks.
        for i in 0..(CHANNEL as u64 * 3) {
            let mut t = TickRecord::new(i * 1000, i * 1000);
            t.set_section(0, 500);
            live.publish_tick(&t, true);
        }
        assert!(live.dropped() > 0, "a full queue drops instead of waiting");
        let t0 = Instant::now();
        while live.thumbnails_made() == 0 && t0.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(20));
        }
        let (s, jpg) = get(live.url(), "/camera/0.jpg");
        assert_eq!(s, 200);
        assert_eq!(&jpg[..2], &[0xFF, 0xD8]);
        std::thread::sleep(Duration::from_millis(200));
        let (s, body) = get(live.url(), "/api/page");
        assert_eq!(s, 200);
        let p: Page = serde_json::from_slice(&body).unwrap();
        let lv = p.live.unwrap();
        assert_eq!(lv.state, "Recording episode 0");
        assert_eq!(lv.ticks, lv.recorded);
        assert!(lv.ticks > 0);
        assert!(p.trends[0].svg.starts_with("<svg"));
        let (s, html) = get(live.url(), "/");
        assert_eq!(s, 200);
        assert!(String::from_utf8_lossy(&html).contains("id=\"reel-data\""));
        assert_eq!(get(live.url(), "/nope").0, 404);
        assert_eq!(live.requests(), 5, "every request answered is counted");
        live.stop();
    }

    #[test]
    fn refuses_bad_options_and_a_taken_port() {
        let bad = LiveConfig {
            thumb_fps: 0.0,
            ..LiveConfig::new(0, 30, vec![])
        };
        assert!(LiveServer::start(bad).is_err());
        let a = LiveServer::start(LiveConfig::new(0, 30, vec![])).unwrap();
        let port: u16 = a
            .url()
            .trim_end_matches('/')
            .rsplit(':')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let e = LiveServer::start(LiveConfig::new(port, 30, vec![]))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("cannot listen"), "{e}");
    }
}
