//! Cameras as users have them: a V4L2 device is asked for MJPG when it offers it (the driver's
//! default is often YUYV, which a USB 2 bus can carry at 640x480@30 for one camera only, and
//! the rate then sags silently: LeRobot issue #4084), and every camera says what it really
//! delivers: the format and size it negotiated and the frame rate measured over its first
//! second, with a warning when that is below the rate asked for.

use std::time::Duration;

/// V4L2 fourcc of Motion-JPEG.
pub const FOURCC_MJPG: u32 = u32::from_le_bytes(*b"MJPG");
/// V4L2 fourcc of plain JPEG (some cameras announce MJPEG this way).
pub const FOURCC_JPEG: u32 = u32::from_le_bytes(*b"JPEG");

/// A fourcc as text (`MJPG`, `YUYV`).
pub fn fourcc_name(f: u32) -> String {
    f.to_le_bytes()
        .iter()
        .map(|&b| if b.is_ascii_graphic() { b as char } else { '?' })
        .collect()
}

/// The `input_format` to ask FFmpeg's v4l2 demuxer for: the user's choice when given, else
/// `mjpeg` when the device offers MJPG/JPEG, else none (the driver's default).
pub fn choose_input_format(offered: &[u32], requested: Option<&str>) -> Option<String> {
    if let Some(r) = requested {
        return Some(r.to_string());
    }
    offered
        .iter()
        .any(|&f| f == FOURCC_MJPG || f == FOURCC_JPEG)
        .then(|| "mjpeg".to_string())
}

/// The pixel formats a V4L2 capture device offers (VIDIOC_ENUM_FMT).
pub fn v4l2_formats(device: &str) -> Result<Vec<u32>, String> {
    use std::os::fd::AsRawFd;
    #[repr(C)]
    struct FmtDesc {
        index: u32,
        kind: u32,
        flags: u32,
        description: [u8; 32],
        pixelformat: u32,
        mbus_code: u32,
        reserved: [u32; 3],
    }
    // _IOWR('V', 2, struct v4l2_fmtdesc): dir 3 << 30 | size 64 << 16 | 'V' << 8 | 2.
    const VIDIOC_ENUM_FMT: libc::c_ulong =
        (3 << 30) | (64 << 16) | ((b'V' as libc::c_ulong) << 8) | 2;
    const _: () = assert!(std::mem::size_of::<FmtDesc>() == 64);
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(device)
        .map_err(|e| format!("cannot open {device}: {e}"))?;
    let mut out = Vec::new();
    for index in 0..64u32 {
        let mut d = FmtDesc {
            index,
            kind: 1, // V4L2_BUF_TYPE_VIDEO_CAPTURE
            flags: 0,
            description: [0; 32],
            pixelformat: 0,
            mbus_code: 0,
            reserved: [0; 3],
        };
        // SAFETY: VIDIOC_ENUM_FMT reads and writes exactly one v4l2_fmtdesc (64 bytes, layout
        // above) through the pointer, which is valid for the call.
        let rc =
            unsafe { libc::ioctl(f.as_raw_fd(), VIDIOC_ENUM_FMT as _, &mut d as *mut FmtDesc) };
        if rc != 0 {
            let e = std::io::Error::last_os_error();
            if index > 0 && e.raw_os_error() == Some(libc::EINVAL) {
                break;
            }
            return Err(format!("{device} is not a V4L2 capture device ({e})"));
        }
        out.push(d.pixelformat);
    }
    Ok(out)
}

/// What a camera really delivers.
#[derive(Debug, Clone, PartialEq)]
pub struct Negotiated {
    /// The stream as decoded: `MJPG`, `YUYV`, or the codec/pixel format of other inputs.
    pub format: String,
    pub width: u32,
    pub height: u32,
    /// Frames per second published over the first second.
    pub measured_fps: f64,
    pub requested_fps: u32,
    /// Measured below 90 % of the requested rate.
    pub below_rate: bool,
}

impl Negotiated {
    pub fn line(&self, camera: &str, input: &str) -> String {
        format!(
            "camera '{camera}': {input} delivers {} {}x{}, {:.1} fps measured over the first second (asked {} fps)",
            self.format, self.width, self.height, self.measured_fps, self.requested_fps
        )
    }
}

/// Counts published frames over the first second after the first one.
#[derive(Debug, Default)]
pub(crate) struct RateMeter {
    first_ns: Option<u64>,
    frames: u64,
    done: bool,
}

/// How long the rate is measured.
pub const MEASURE: Duration = Duration::from_secs(1);

impl RateMeter {
    /// Counts a frame published at `t_ns`; returns the measured rate once, after a second.
    pub(crate) fn frame(&mut self, t_ns: u64) -> Option<f64> {
        if self.done {
            return None;
        }
        let first = *self.first_ns.get_or_insert(t_ns);
        let span = t_ns.saturating_sub(first);
        if span >= MEASURE.as_nanos() as u64 {
            self.done = true;
            return Some(self.frames as f64 / (span as f64 / 1e9));
        }
        self.frames += 1;
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mjpg_is_chosen_when_offered() {
        let yuyv = u32::from_le_bytes(*b"YUYV");
        assert_eq!(
            choose_input_format(&[yuyv, FOURCC_MJPG], None).as_deref(),
            Some("mjpeg")
        );
        assert_eq!(choose_input_format(&[yuyv], None), None);
        assert_eq!(
            choose_input_format(&[FOURCC_MJPG], Some("yuyv422")).as_deref(),
            Some("yuyv422")
        );
        assert_eq!(fourcc_name(yuyv), "YUYV");
    }

    #[test]
    fn a_file_is_not_a_capture_device() {
        let e = v4l2_formats("/dev/null").unwrap_err();
        assert!(e.contains("not a V4L2 capture device"), "{e}");
        assert!(v4l2_formats("/dev/video-none")
            .unwrap_err()
            .contains("cannot open"));
    }

    #[test]
    fn rate_meter_measures_the_first_second() {
        let mut m = RateMeter::default();
        let mut got = None;
        for k in 0..40u64 {
            if let Some(r) = m.frame(k * 50_000_000) {
                got = Some(r);
                break;
            }
        }
        assert_eq!(got, Some(20.0));
        assert_eq!(m.frame(5_000_000_000), None);
    }
}
