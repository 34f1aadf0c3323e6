//! reel-svt: a current SVT-AV1 encoder (built from Debian's source package by
//! `scripts/media.sh`, linked statically) behind a small safe API.
//!
//! [`SvtEncoder`] takes 8-bit yuv420p pictures and hands back AV1 temporal units with SVT's
//! own timestamps, the way FFmpeg 5.1's `libsvtav1` wrapper configures and drives it (its
//! option mapping: preset → `enc_mode`, crf → `qp` with rate control 0, `g` → intra period
//! `g − 1`, closed GOP, frame rate; `svtav1-params` through `svt_av1_enc_parse_parameter`), so
//! that reel-media can mux the packets exactly as it muxes FFmpeg's.
//!
//! Lifetime rule (SVT hangs in `svt_av1_enc_deinit` when a running encoder never got EOS, and
//! never answers EOS when it got no picture): [`Drop`] feeds one blank picture to an encoder
//! that got none, sends EOS when it was not sent, drains to the EOS packet and only then
//! deinitialises. Handle creation and destruction are serialised process-wide: they share
//! global state inside SVT.

use reel_core::{Error, Result};
use std::ffi::{CStr, CString};
use std::sync::Mutex;

#[allow(
    non_upper_case_globals,
    non_camel_case_types,
    non_snake_case,
    dead_code,
    clippy::all,
    clippy::undocumented_unsafe_blocks
)]
mod sys {
    include!(concat!(env!("OUT_DIR"), "/svt_bindings.rs"));
}

use sys::EbErrorType as E;

/// Serialises `svt_av1_enc_init_handle`/`svt_av1_enc_init` and the deinit pair: both touch
/// process-wide state inside SVT (its thread-group table, the component count).
static HANDLE_LOCK: Mutex<()> = Mutex::new(());

/// Smallest picture SVT-AV1 accepts (both dimensions).
pub const MIN_SIZE: u32 = 64;
/// Largest picture SVT-AV1 accepts (width; height is limited to 8704 as well).
pub const MAX_SIZE: u32 = 16384;

/// The version of the SVT-AV1 library linked in, as it reports itself, e.g. "v2.3.0".
pub fn version() -> String {
    // SAFETY: svt_av1_get_version returns a pointer to a static NUL-terminated string.
    unsafe {
        let p = sys::svt_av1_get_version();
        if p.is_null() {
            format!("v{}", env!("REEL_SVTAV1_PC_VERSION"))
        } else {
            CStr::from_ptr(p).to_string_lossy().into_owned()
        }
    }
}

/// The version from the headers the bindings were generated from: (major, minor, patch).
pub fn header_version() -> (u32, u32, u32) {
    (
        sys::SVT_AV1_VERSION_MAJOR,
        sys::SVT_AV1_VERSION_MINOR,
        sys::SVT_AV1_VERSION_PATCHLEVEL,
    )
}

/// How to encode; the fields FFmpeg's libsvtav1 wrapper maps, plus SVT's own parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct SvtParams {
    /// SVT preset (`enc_mode`), -2..=13 (higher is faster); None keeps SVT's default.
    pub preset: Option<i32>,
    /// Constant rate factor 1..=63 (rate control 0, `qp` = crf); None or 0 keeps SVT's default.
    pub crf: Option<u32>,
    /// A keyframe every `keyint` frames (intra period `keyint − 1`, FFmpeg's `g`); None keeps
    /// SVT's default (about 5 s).
    pub keyint: Option<u32>,
    /// SVT's level of parallelism (`lp`); None lets SVT decide from the core count.
    pub level_of_parallelism: Option<u32>,
    /// SVT's own parameters by their command-line name (`fast-decode`, `lp`, `tune`, ...), as
    /// FFmpeg's `svtav1-params` passes them; applied last. An unknown name or a bad value is an
    /// error (FFmpeg 5.1 only warns).
    pub extra: Vec<(String, String)>,
}

impl Default for SvtParams {
    fn default() -> Self {
        SvtParams {
            preset: Some(12),
            crf: Some(30),
            keyint: Some(2),
            level_of_parallelism: None,
            extra: Vec::new(),
        }
    }
}

/// One encoded temporal unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    pub data: Vec<u8>,
    /// Presentation timestamp: the pts of the picture it shows (as sent).
    pub pts: i64,
    /// Decode timestamp as SVT reports it.
    pub dts: i64,
    /// A key frame (a random access point).
    pub key: bool,
    /// A picture no other picture references (FFmpeg's `AV_PKT_FLAG_DISPOSABLE`).
    pub disposable: bool,
}

/// One picture: 8-bit yuv420p planes with their strides (bytes per row).
#[derive(Debug, Clone, Copy)]
pub struct Picture<'a> {
    pub y: &'a [u8],
    pub u: &'a [u8],
    pub v: &'a [u8],
    pub y_stride: usize,
    pub u_stride: usize,
    pub v_stride: usize,
}

fn svt_error(what: &str, e: E) -> Error {
    Error::media(format!("SVT-AV1 {}: {what}", version()), format!("{e:?}"))
}

/// An open SVT-AV1 encoder. `Send`: every call goes through `&mut self`.
pub struct SvtEncoder {
    handle: *mut sys::EbComponentType,
    width: u32,
    height: u32,
    /// `svt_av1_enc_init` succeeded (its threads run: deinit needs EOS first).
    running: bool,
    eos_sent: bool,
    eos_received: bool,
    pictures_sent: u64,
    target_bit_rate: u32,
}

// SAFETY: the handle is owned exclusively by this value; SVT's API may be called from any
// thread, one call at a time, which `&mut self` guarantees.
unsafe impl Send for SvtEncoder {}

impl std::fmt::Debug for SvtEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SvtEncoder")
            .field("width", &self.width)
            .field("height", &self.height)
            .field("pictures_sent", &self.pictures_sent)
            .field("eos_sent", &self.eos_sent)
            .finish()
    }
}

/// Checks what SVT-AV1 (as reel drives it) can encode: 8-bit yuv420p with even dimensions in
/// [`MIN_SIZE`, `MAX_SIZE`] and a positive frame rate.
pub fn check_geometry(width: u32, height: u32, fps: u32) -> Result<()> {
    if fps == 0 {
        return Err(Error::invalid("SVT-AV1: the frame rate must be positive"));
    }
    if width < MIN_SIZE || height < MIN_SIZE {
        return Err(Error::invalid(format!(
            "SVT-AV1 encodes pictures of at least {MIN_SIZE}x{MIN_SIZE}; {width}x{height} is too small"
        )));
    }
    if width > MAX_SIZE || height > 8704 {
        return Err(Error::invalid(format!(
            "SVT-AV1 encodes pictures of at most {MAX_SIZE}x8704; {width}x{height} is too large"
        )));
    }
    if (width | height) & 1 != 0 {
        return Err(Error::invalid(format!(
            "SVT-AV1 (yuv420p) needs even dimensions; {width}x{height} has an odd one"
        )));
    }
    Ok(())
}

impl SvtEncoder {
    /// Opens an encoder for `width`x`height` 8-bit yuv420p pictures at `fps` frames/s.
    pub fn open(width: u32, height: u32, fps: u32, params: &SvtParams) -> Result<SvtEncoder> {
        check_geometry(width, height, fps)?;
        if let Some(p) = params.preset {
            if !(-2..=13).contains(&p) {
                return Err(Error::invalid(format!(
                    "SVT-AV1 preset {p} out of range [-2, 13]"
                )));
            }
        }
        if let Some(c) = params.crf {
            if c > 63 {
                return Err(Error::invalid(format!(
                    "SVT-AV1 crf {c} out of range [0, 63]"
                )));
            }
        }
        if params.keyint == Some(0) {
            return Err(Error::invalid("SVT-AV1 keyint must be at least 1"));
        }
        let extra: Vec<(CString, CString, &str, &str)> = params
            .extra
            .iter()
            .map(|(k, v)| {
                let ck = CString::new(k.as_str())
                    .map_err(|_| Error::invalid(format!("SVT-AV1 parameter name {k:?}")))?;
                let cv = CString::new(v.as_str())
                    .map_err(|_| Error::invalid(format!("SVT-AV1 parameter value {v:?}")))?;
                Ok((ck, cv, k.as_str(), v.as_str()))
            })
            .collect::<Result<_>>()?;

        let mut cfg = sys::EbSvtAv1EncConfiguration::default();
        let mut handle: *mut sys::EbComponentType = std::ptr::null_mut();
        let r = {
            let _guard = HANDLE_LOCK.lock().unwrap_or_else(|p| p.into_inner());
            // SAFETY: `handle` and `cfg` are valid out-pointers; SVT fills the handle and
            // loads its defaults into `cfg`.
            unsafe {
                #[cfg(svt_init_handle_app_data)]
                let r = sys::svt_av1_enc_init_handle(&mut handle, std::ptr::null_mut(), &mut cfg);
                #[cfg(not(svt_init_handle_app_data))]
                let r = sys::svt_av1_enc_init_handle(&mut handle, &mut cfg);
                r
            }
        };
        if r != E::EB_ErrorNone || handle.is_null() {
            return Err(svt_error("create the encoder handle", r));
        }
        let mut enc = SvtEncoder {
            handle,
            width,
            height,
            running: false,
            eos_sent: false,
            eos_received: false,
            pictures_sent: 0,
            target_bit_rate: 0,
        };
        // FFmpeg 5.1's libsvtav1 mapping (config_enc_params), in its order.
        if let Some(p) = params.preset {
            cfg.enc_mode = p as i8;
        }
        cfg.max_bit_rate = 0;
        if let Some(c) = params.crf.filter(|&c| c > 0) {
            cfg.qp = c;
            cfg.rate_control_mode = 0;
        }
        // Colour description left unspecified, limited range (FFmpeg's for yuv420p).
        cfg.color_primaries = 2;
        cfg.matrix_coefficients = 2;
        cfg.transfer_characteristics = 2;
        cfg.color_range = 0;
        if let Some(g) = params.keyint {
            cfg.intra_period_length = g as i32 - 1;
        }
        cfg.frame_rate_numerator = fps;
        cfg.frame_rate_denominator = 1;
        // 2 = key frame refresh (closed GOP), as FFmpeg with AV_CODEC_FLAG_CLOSED_GOP.
        cfg.intra_refresh_type = 2;
        if let Some(lp) = params.level_of_parallelism {
            cfg.level_of_parallelism = lp;
        }
        for (ck, cv, k, v) in &extra {
            // SAFETY: `cfg` is a valid configuration; both strings are NUL-terminated.
            let r = unsafe { sys::svt_av1_enc_parse_parameter(&mut cfg, ck.as_ptr(), cv.as_ptr()) };
            if r != E::EB_ErrorNone {
                return Err(Error::invalid(format!(
                    "SVT-AV1 {} does not accept the parameter {k}={v}",
                    version()
                )));
            }
        }
        cfg.source_width = width;
        cfg.source_height = height;
        cfg.encoder_bit_depth = 8;
        cfg.encoder_color_format = 1; // EB_YUV420
        enc.target_bit_rate = cfg.target_bit_rate;
        // SAFETY: the handle is valid; SVT copies the configuration.
        let r = unsafe { sys::svt_av1_enc_set_parameter(enc.handle, &mut cfg) };
        if r != E::EB_ErrorNone {
            return Err(svt_error(
                &format!("refused the configuration for {width}x{height} @ {fps} fps"),
                r,
            ));
        }
        let r = {
            let _guard = HANDLE_LOCK.lock().unwrap_or_else(|p| p.into_inner());
            // SAFETY: the handle is valid and configured.
            unsafe { sys::svt_av1_enc_init(enc.handle) }
        };
        if r != E::EB_ErrorNone {
            return Err(svt_error("initialise the encoder", r));
        }
        enc.running = true;
        Ok(enc)
    }

    /// Picture width.
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Picture height.
    pub fn height(&self) -> u32 {
        self.height
    }

    /// The sequence header OBU (what an MP4 `av1C` box carries after its 4 bytes).
    pub fn sequence_header(&self) -> Result<Vec<u8>> {
        let mut hdr: *mut sys::EbBufferHeaderType = std::ptr::null_mut();
        // SAFETY: the handle is initialised; SVT allocates the header buffer.
        let r = unsafe { sys::svt_av1_enc_stream_header(self.handle, &mut hdr) };
        if r != E::EB_ErrorNone || hdr.is_null() {
            return Err(svt_error("build the sequence header", r));
        }
        // SAFETY: `hdr` is a valid buffer header whose p_buffer holds n_filled_len bytes; it
        // is released exactly once, right after the copy.
        unsafe {
            let h = &*hdr;
            let out = if h.p_buffer.is_null() {
                Vec::new()
            } else {
                std::slice::from_raw_parts(h.p_buffer, h.n_filled_len as usize).to_vec()
            };
            sys::svt_av1_enc_stream_header_release(hdr);
            if out.is_empty() {
                return Err(Error::media(
                    format!("SVT-AV1 {}", version()),
                    "empty sequence header",
                ));
            }
            Ok(out)
        }
    }

    /// The configuration's target bit rate (bits/s; unused in CRF mode). FFmpeg's wrapper
    /// reports it as the codec's `bit_rate`, which the MP4 muxer writes into `btrt`.
    pub fn target_bit_rate(&self) -> u32 {
        self.target_bit_rate
    }

    /// Pictures sent so far.
    pub fn pictures_sent(&self) -> u64 {
        self.pictures_sent
    }

    fn plane_ok(len: usize, stride: usize, w: usize, h: usize) -> bool {
        stride >= w && len >= stride * (h - 1) + w
    }

    /// Sends one picture with presentation timestamp `pts` (SVT copies it before returning).
    pub fn send(&mut self, pic: &Picture<'_>, pts: i64) -> Result<()> {
        if self.eos_sent {
            return Err(Error::invalid(
                "SVT-AV1: picture sent after the end of the stream",
            ));
        }
        let (w, h) = (self.width as usize, self.height as usize);
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        if !Self::plane_ok(pic.y.len(), pic.y_stride, w, h)
            || !Self::plane_ok(pic.u.len(), pic.u_stride, cw, ch)
            || !Self::plane_ok(pic.v.len(), pic.v_stride, cw, ch)
        {
            return Err(Error::invalid(format!(
                "SVT-AV1: planes of {}/{}/{} bytes with strides {}/{}/{} do not hold a {w}x{h} yuv420p picture",
                pic.y.len(),
                pic.u.len(),
                pic.v.len(),
                pic.y_stride,
                pic.u_stride,
                pic.v_stride
            )));
        }
        let mut io = sys::EbSvtIOFormat {
            luma: pic.y.as_ptr() as *mut u8,
            cb: pic.u.as_ptr() as *mut u8,
            cr: pic.v.as_ptr() as *mut u8,
            y_stride: pic.y_stride as u32,
            cb_stride: pic.u_stride as u32,
            cr_stride: pic.v_stride as u32,
            width: self.width,
            height: self.height,
            ..Default::default()
        };
        let mut hdr = sys::EbBufferHeaderType {
            size: std::mem::size_of::<sys::EbBufferHeaderType>() as u32,
            p_buffer: (&mut io as *mut sys::EbSvtIOFormat).cast(),
            n_filled_len: (pic.y_stride * h + pic.u_stride * ch + pic.v_stride * ch) as u32,
            pts,
            ..Default::default()
        };
        // SAFETY: the handle is running; `hdr` and `io` point at planes validated above that
        // outlive the call (SVT copies the picture into its own buffers before returning; it
        // only reads through the pointers).
        let r = unsafe { sys::svt_av1_enc_send_picture(self.handle, &mut hdr) };
        if r != E::EB_ErrorNone {
            return Err(svt_error("send a picture", r));
        }
        self.pictures_sent += 1;
        Ok(())
    }

    /// Ends the stream: no picture may follow; [`receive`](Self::receive) then blocks until
    /// each remaining packet is ready and returns None after the last one.
    pub fn send_eos(&mut self) -> Result<()> {
        if self.eos_sent {
            return Ok(());
        }
        let mut hdr = sys::EbBufferHeaderType {
            flags: sys::EB_BUFFERFLAG_EOS,
            ..Default::default()
        };
        // SAFETY: the handle is running; an EOS header carries no picture.
        let r = unsafe { sys::svt_av1_enc_send_picture(self.handle, &mut hdr) };
        if r != E::EB_ErrorNone {
            return Err(svt_error("send the end of the stream", r));
        }
        self.eos_sent = true;
        Ok(())
    }

    /// True once the last packet (after EOS) was received.
    pub fn finished(&self) -> bool {
        self.eos_received
    }

    /// The next packet: None when none is ready yet (before EOS: never waits) or, after EOS,
    /// when the stream is complete (after EOS it waits for each packet).
    pub fn receive(&mut self) -> Result<Option<Packet>> {
        loop {
            if self.eos_received || !self.running {
                return Ok(None);
            }
            let mut out: *mut sys::EbBufferHeaderType = std::ptr::null_mut();
            // SAFETY: the handle is running; SVT hands out a buffer we release below.
            let r = unsafe {
                sys::svt_av1_enc_get_packet(self.handle, &mut out, u8::from(self.eos_sent))
            };
            if r == E::EB_NoErrorEmptyQueue {
                return Ok(None);
            }
            if r != E::EB_ErrorNone || out.is_null() {
                return Err(svt_error("receive a packet", r));
            }
            // SAFETY: `out` is a valid output buffer header (p_buffer holds n_filled_len
            // bytes); it is released exactly once after the copy.
            let pkt = unsafe {
                let h = &*out;
                if h.flags & sys::EB_BUFFERFLAG_EOS != 0 {
                    self.eos_received = true;
                }
                let data = if h.p_buffer.is_null() || h.n_filled_len == 0 {
                    Vec::new()
                } else {
                    std::slice::from_raw_parts(h.p_buffer, h.n_filled_len as usize).to_vec()
                };
                let pkt = Packet {
                    data,
                    pts: h.pts,
                    dts: h.dts,
                    key: h.pic_type == 3,        // EB_AV1_KEY_PICTURE
                    disposable: h.pic_type == 4, // EB_AV1_NON_REF_PICTURE
                };
                sys::svt_av1_enc_release_out_buffer(&mut out);
                pkt
            };
            if !pkt.data.is_empty() {
                return Ok(Some(pkt));
            }
            // An empty buffer (the bare EOS marker): nothing to hand out.
        }
    }
}

impl Drop for SvtEncoder {
    fn drop(&mut self) {
        if self.running {
            if !self.eos_sent && self.pictures_sent == 0 {
                // SVT never answers EOS without a picture: give it a blank one.
                let (w, h) = (self.width as usize, self.height as usize);
                let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
                let y = vec![16u8; w * h];
                let c = vec![128u8; cw * ch];
                let pic = Picture {
                    y: &y,
                    u: &c,
                    v: &c,
                    y_stride: w,
                    u_stride: cw,
                    v_stride: cw,
                };
                if self.send(&pic, 0).is_err() {
                    // Refused input: leave it running rather than hang in deinit.
                    self.running = false;
                }
            }
            if self.running && self.send_eos().is_ok() {
                while let Ok(Some(_)) = self.receive() {}
            }
            if self.running && self.eos_received {
                let _guard = HANDLE_LOCK.lock().unwrap_or_else(|p| p.into_inner());
                // SAFETY: the encoder ran, got EOS and was drained; deinit is called once.
                unsafe { sys::svt_av1_enc_deinit(self.handle) };
            } else if self.running {
                // Never drained to EOS (an encode error): deinit could hang; leak the
                // encoder's threads and memory instead of hanging the caller.
                return;
            }
        }
        let _guard = HANDLE_LOCK.lock().unwrap_or_else(|p| p.into_inner());
        // SAFETY: the handle came from svt_av1_enc_init_handle and is freed exactly once.
        unsafe { sys::svt_av1_enc_deinit_handle(self.handle) };
    }
}
