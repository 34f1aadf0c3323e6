//! Full decode of a video's first stream: every frame's pts and keyframe flag, and RGB24
//! copies of selected frames. Used by tests and by dataset checks to prove that what was
//! written plays back frame for frame.

use ff::format::Pixel;
use ffmpeg_next as ff;
use reel_core::{Error, Result, VideoFrame};
use std::path::Path;

/// Everything [`decode_video`] saw.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    /// Presentation timestamps in the stream time base, in decode output order.
    pub pts: Vec<i64>,
    /// Keyframe flag of each decoded frame.
    pub key: Vec<bool>,
    pub time_base: (i32, i32),
    pub width: u32,
    pub height: u32,
    /// RGB24 copies of the requested frame indices, in decode order.
    pub rgb: Vec<(usize, VideoFrame)>,
    /// Indices of frames the decoder output damaged: flagged corrupt, or concealed after
    /// errors in the bitstream (FFmpeg logs "error while decoding MB" and goes on).
    pub damaged: Vec<usize>,
}

struct State<'a> {
    out: Decoded,
    want: &'a [usize],
    scaler: Option<ff::software::scaling::Context>,
}

impl State<'_> {
    fn take(&mut self, dec: &mut ff::decoder::Video, path: &Path) -> Result<()> {
        loop {
            let mut f = ff::frame::Video::empty();
            match dec.receive_frame(&mut f) {
                Ok(()) => {}
                Err(ff::Error::Other { errno }) if errno == ff::util::error::EAGAIN => {
                    return Ok(())
                }
                Err(ff::Error::Eof) => return Ok(()),
                Err(e) => return Err(Error::media(format!("decode {}", path.display()), e)),
            }
            let idx = self.out.pts.len();
            self.out
                .pts
                .push(f.timestamp().or(f.pts()).unwrap_or(i64::MIN));
            self.out.key.push(f.is_key());
            // SAFETY: reading a plain int field of the frame we own.
            let error_flags = unsafe { (*f.as_ptr()).decode_error_flags };
            if f.is_corrupt() || error_flags != 0 {
                self.out.damaged.push(idx);
            }
            if self.want.contains(&idx) {
                let (w, h) = (f.width(), f.height());
                let scaler = match &mut self.scaler {
                    Some(s) => s,
                    None => self.scaler.insert(
                        ff::software::scaling::Context::get(
                            f.format(),
                            w,
                            h,
                            Pixel::RGB24,
                            w,
                            h,
                            ff::software::scaling::Flags::BILINEAR,
                        )
                        .map_err(|e| {
                            Error::media(format!("YUV→RGB scaler for {}", path.display()), e)
                        })?,
                    ),
                };
                let mut rgb = ff::frame::Video::empty();
                scaler.run(&f, &mut rgb).map_err(|e| {
                    Error::media(format!("convert frame {idx} of {}", path.display()), e)
                })?;
                let row = w as usize * 3;
                let stride = rgb.stride(0);
                let src = rgb.data(0);
                let mut data = Vec::with_capacity(row * h as usize);
                for y in 0..h as usize {
                    data.extend_from_slice(&src[y * stride..y * stride + row]);
                }
                let mut vf = VideoFrame::new(w, h, data)?;
                vf.seq = idx as u64;
                self.out.rgb.push((idx, vf));
            }
        }
    }
}

/// Decodes every frame of `path`'s first video stream; returns RGB24 copies of the frames
/// whose indices are in `rgb_frames`.
pub fn decode_video(path: &Path, rgb_frames: &[usize]) -> Result<Decoded> {
    crate::init();
    let ctx = |what: &str| format!("{what} ({})", path.display());
    let mut ictx = ff::format::input(&path).map_err(|e| Error::media(ctx("open video"), e))?;
    let ist = ictx
        .streams()
        .best(ff::media::Type::Video)
        .ok_or_else(|| Error::media(ctx("decode"), "no video stream"))?;
    let index = ist.index();
    let tb = ist.time_base();
    let mut dec = ff::codec::context::Context::from_parameters(ist.parameters())
        .and_then(|c| c.decoder().video())
        .map_err(|e| Error::media(ctx("open decoder"), e))?;
    let mut st = State {
        out: Decoded {
            pts: Vec::new(),
            key: Vec::new(),
            time_base: (tb.numerator(), tb.denominator()),
            width: dec.width(),
            height: dec.height(),
            rgb: Vec::new(),
            damaged: Vec::new(),
        },
        want: rgb_frames,
        scaler: None,
    };
    for (stream, packet) in ictx.packets() {
        if stream.index() != index {
            continue;
        }
        dec.send_packet(&packet)
            .map_err(|e| Error::media(ctx("decode packet"), e))?;
        st.take(&mut dec, path)?;
    }
    dec.send_eof()
        .map_err(|e| Error::media(ctx("flush decoder"), e))?;
    st.take(&mut dec, path)?;
    Ok(st.out)
}
