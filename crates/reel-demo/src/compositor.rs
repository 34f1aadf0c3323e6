//! Composites one output picture from the cameras' RGB frames with an in-process FFmpeg filter
//! graph (`buffer` per camera → scale/crop → pad/overlay → `format=yuv420p` → `buffersink`).
//! The geometry is computed here from the input sizes, so the graph has no expressions; the
//! graph is rebuilt when a camera's frame size changes.

use ff::format::Pixel;
use ff::frame;
use ffmpeg_next as ff;
use reel_core::{Error, Result, VideoFrame};

use crate::config::{DemoConfig, Layout};

/// Where a camera goes in the output: which camera, and the filter chain that turns its frame
/// into its tile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Plan {
    /// Camera indices fed to the graph, in the order of the graph's inputs `in0`, `in1`, ...
    pub cameras: Vec<usize>,
}

impl Plan {
    /// Which cameras the layout shows, main first.
    pub fn new(cfg: &DemoConfig, n_cameras: usize) -> Plan {
        let cameras = match cfg.layout {
            Layout::Pip => {
                let mut v = vec![cfg.main_camera];
                if let Some(i) = cfg.inset_camera {
                    if i != cfg.main_camera {
                        v.push(i);
                    }
                }
                v
            }
            Layout::SideBySide | Layout::Grid => {
                let mut v = vec![cfg.main_camera];
                v.extend((0..n_cameras).filter(|&i| i != cfg.main_camera));
                v
            }
        };
        Plan { cameras }
    }
}

/// `scale` + `crop` that makes an `iw`×`ih` image fill `w`×`h` exactly, center-cropped.
fn fill_chain(iw: u32, ih: u32, w: u32, h: u32) -> String {
    let (iw, ih, w64, h64) = (iw.max(1) as u64, ih.max(1) as u64, w as u64, h as u64);
    // Scale so that both sides cover the target, keeping the aspect ratio.
    let (sw, sh) = if iw * h64 >= ih * w64 {
        (((iw * h64 + ih / 2) / ih).max(w64), h64)
    } else {
        (w64, ((ih * w64 + iw / 2) / iw).max(h64))
    };
    let (cx, cy) = ((sw - w64) / 2, (sh - h64) / 2);
    format!("scale={sw}:{sh}:flags=bilinear,setsar=1,crop={w}:{h}:{cx}:{cy}")
}

/// `crop` to the centered square, then scale to `s`×`s`.
fn square_chain(iw: u32, ih: u32, s: u32) -> String {
    let side = iw.min(ih).max(1);
    let (cx, cy) = ((iw.saturating_sub(side)) / 2, (ih.saturating_sub(side)) / 2);
    format!("crop={side}:{side}:{cx}:{cy},scale={s}:{s}:flags=bilinear,setsar=1")
}

/// The filter graph description for the given input sizes (one per `plan.cameras` entry).
pub(crate) fn graph_spec(cfg: &DemoConfig, sizes: &[(u32, u32)]) -> String {
    let (w, h) = (cfg.width, cfg.height);
    let n = sizes.len();
    if n == 0 {
        return String::new();
    }
    match cfg.layout {
        Layout::Pip if n >= 2 => {
            let s = cfg.inset_size;
            let b = cfg.border_px;
            let outer = s + 2 * b;
            let x = w - outer - cfg.inset_margin;
            let y = h - outer - cfg.inset_margin;
            format!(
                "[in0]{main}[m];[in1]{sq},pad={outer}:{outer}:{b}:{b}:color=white[i];\
                 [m][i]overlay=x={x}:y={y}:format=rgb:eof_action=repeat,format=yuv420p[out]",
                main = fill_chain(sizes[0].0, sizes[0].1, w, h),
                sq = square_chain(sizes[1].0, sizes[1].1, s),
            )
        }
        Layout::Pip => format!(
            "[in0]{},format=yuv420p[out]",
            fill_chain(sizes[0].0, sizes[0].1, w, h)
        ),
        Layout::SideBySide | Layout::Grid => {
            let (cols, rows) = if cfg.layout == Layout::SideBySide {
                (n as u32, 1)
            } else {
                let cols = (n as f64).sqrt().ceil() as u32;
                (cols, (n as u32).div_ceil(cols))
            };
            // Even cell sizes so that chroma planes line up; leftover pixels (right, bottom) stay black.
            let cw = (w / cols) & !1;
            let ch = (h / rows) & !1;
            let mut spec = String::new();
            for (i, &(iw, ih)) in sizes.iter().enumerate() {
                let tile = fill_chain(iw, ih, cw, ch);
                if i == 0 {
                    spec.push_str(&format!("[in0]{tile},pad={w}:{h}:0:0:color=black[b0];"));
                } else {
                    spec.push_str(&format!("[in{i}]{tile}[t{i}];"));
                }
            }
            let mut last = "b0".to_string();
            for i in 1..n {
                let (x, y) = ((i as u32 % cols) * cw, (i as u32 / cols) * ch);
                let next = format!("b{i}");
                spec.push_str(&format!(
                    "[{last}][t{i}]overlay=x={x}:y={y}:format=rgb:eof_action=repeat[{next}];"
                ));
                last = next;
            }
            spec.push_str(&format!("[{last}]format=yuv420p[out]"));
            spec
        }
    }
}

/// A configured filter graph for one set of input sizes.
pub(crate) struct Compositor {
    graph: ff::filter::Graph,
    sizes: Vec<(u32, u32)>,
    n_inputs: usize,
}

impl Compositor {
    pub fn new(cfg: &DemoConfig, sizes: &[(u32, u32)]) -> Result<Compositor> {
        let err = |e: ff::Error| Error::media("demo compositor filter graph", e);
        let spec = graph_spec(cfg, sizes);
        let mut graph = ff::filter::Graph::new();
        let buffer = ff::filter::find("buffer")
            .ok_or_else(|| Error::media("demo compositor", "no `buffer` filter"))?;
        let sink = ff::filter::find("buffersink")
            .ok_or_else(|| Error::media("demo compositor", "no `buffersink` filter"))?;
        for (i, &(iw, ih)) in sizes.iter().enumerate() {
            let args = format!(
                "video_size={iw}x{ih}:pix_fmt=rgb24:time_base=1/{}:pixel_aspect=1/1",
                cfg.fps
            );
            graph.add(&buffer, &format!("in{i}"), &args).map_err(err)?;
        }
        graph.add(&sink, "out", "").map_err(err)?;
        {
            let mut parser = graph.input("out", 0).map_err(err)?;
            for i in 0..sizes.len() {
                parser = parser.output(&format!("in{i}"), 0).map_err(err)?;
            }
            parser
                .parse(&spec)
                .map_err(|e| Error::media(format!("demo compositor graph {spec:?}"), e))?;
        }
        graph.validate().map_err(err)?;
        Ok(Compositor {
            graph,
            sizes: sizes.to_vec(),
            n_inputs: sizes.len(),
        })
    }

    pub fn sizes(&self) -> &[(u32, u32)] {
        &self.sizes
    }

    /// Feeds one frame per input (in plan order), all stamped `pts`, and returns the composited
    /// YUV frames the graph has ready (normally exactly one).
    pub fn push(&mut self, frames: &[&VideoFrame], pts: i64) -> Result<Vec<frame::Video>> {
        if frames.len() != self.n_inputs {
            return Err(Error::media(
                "demo compositor",
                format!("{} frames for {} inputs", frames.len(), self.n_inputs),
            ));
        }
        for (i, f) in frames.iter().enumerate() {
            let mut av = rgb_to_frame(f)?;
            av.set_pts(Some(pts));
            let mut ctx = self.graph.get(&format!("in{i}")).ok_or_else(|| {
                Error::media("demo compositor", format!("graph lost input in{i}"))
            })?;
            ctx.source()
                .add(&av)
                .map_err(|e| Error::media("demo compositor: feeding frame", e))?;
        }
        self.drain()
    }

    /// Signals end of input and returns the frames still inside the graph.
    pub fn finish(&mut self) -> Result<Vec<frame::Video>> {
        for i in 0..self.n_inputs {
            if let Some(mut ctx) = self.graph.get(&format!("in{i}")) {
                ctx.source()
                    .flush()
                    .map_err(|e| Error::media("demo compositor: flushing", e))?;
            }
        }
        self.drain()
    }

    fn drain(&mut self) -> Result<Vec<frame::Video>> {
        let mut out = Vec::new();
        let mut sink = self
            .graph
            .get("out")
            .ok_or_else(|| Error::media("demo compositor", "graph lost its sink"))?;
        loop {
            let mut f = frame::Video::empty();
            match sink.sink().frame(&mut f) {
                Ok(()) => out.push(f),
                Err(ff::Error::Other { errno }) if errno == libc::EAGAIN => break,
                Err(ff::Error::Eof) => break,
                Err(e) => return Err(Error::media("demo compositor: pulling frame", e)),
            }
        }
        Ok(out)
    }
}

/// Copies a packed RGB24 frame into an FFmpeg frame, row by row (its stride may be wider).
fn rgb_to_frame(f: &VideoFrame) -> Result<frame::Video> {
    let row = f.width as usize * 3;
    if f.data.len() != row * f.height as usize || f.width == 0 || f.height == 0 {
        return Err(Error::invalid(format!(
            "camera frame {}x{} has {} bytes, expected {}",
            f.width,
            f.height,
            f.data.len(),
            row * f.height as usize
        )));
    }
    let mut av = frame::Video::new(Pixel::RGB24, f.width, f.height);
    let stride = av.stride(0);
    let dst = av.data_mut(0);
    for (y, src) in f.data.chunks_exact(row).enumerate() {
        dst[y * stride..y * stride + row].copy_from_slice(src);
    }
    Ok(av)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_chain_crops_center() {
        // 4:3 into 16:9: scale to width, crop height.
        assert_eq!(
            fill_chain(640, 480, 960, 540),
            "scale=960:720:flags=bilinear,setsar=1,crop=960:540:0:90"
        );
        // Wider than target: scale to height, crop width.
        assert_eq!(
            fill_chain(1920, 800, 960, 540),
            "scale=1296:540:flags=bilinear,setsar=1,crop=960:540:168:0"
        );
    }

    #[test]
    fn square_chain_centers() {
        assert_eq!(
            square_chain(640, 480, 240),
            "crop=480:480:80:0,scale=240:240:flags=bilinear,setsar=1"
        );
    }

    #[test]
    fn composites_one_frame_per_push() {
        ff::init().unwrap();
        let cfg = DemoConfig::new("/tmp/x.mp4");
        let mut c = Compositor::new(&cfg, &[(320, 240), (160, 120)]).unwrap();
        let a = VideoFrame::solid(320, 240, [255, 0, 0]);
        let b = VideoFrame::solid(160, 120, [0, 0, 255]);
        let mut got = 0;
        for pts in 0..5 {
            got += c.push(&[&a, &b], pts).unwrap().len();
        }
        got += c.finish().unwrap().len();
        assert_eq!(got, 5);
    }

    #[test]
    fn grid_and_side_by_side_graphs_build() {
        ff::init().unwrap();
        for layout in [Layout::Grid, Layout::SideBySide] {
            let mut cfg = DemoConfig::new("/tmp/x.mp4");
            cfg.layout = layout;
            let mut c = Compositor::new(&cfg, &[(320, 240), (160, 120), (64, 64)]).unwrap();
            let f = VideoFrame::solid(320, 240, [1, 2, 3]);
            let g = VideoFrame::solid(160, 120, [1, 2, 3]);
            let h = VideoFrame::solid(64, 64, [1, 2, 3]);
            let mut frames = c.push(&[&f, &g, &h], 0).unwrap();
            frames.extend(c.finish().unwrap());
            assert_eq!(frames.len(), 1);
            assert_eq!((frames[0].width(), frames[0].height()), (960, 540));
        }
    }
}
