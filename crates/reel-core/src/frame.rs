//! Video frames as captured by sources and handed, without copying, to encoders.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// One RGB24 image, tightly packed (`height * width * 3` bytes, row-major HWC), with the
/// moment it was captured. A depth camera's frame (a feature with one channel,
/// [`Feature::is_depth`](crate::Feature::is_depth)) holds uint16 millimetres instead,
/// little-endian, `height * width * 2` bytes ([`VideoFrame::depth_mm`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoFrame {
    pub width: u32,
    pub height: u32,
    /// RGB24 bytes, `width * 3` bytes per row, no padding.
    pub data: Vec<u8>,
    /// Monotonic capture time ([`monotonic_ns`] clock).
    pub captured_ns: u64,
    /// Sequence number assigned by the source (0, 1, 2, ... per source).
    pub seq: u64,
}

/// Frames travel as `Arc`s: the loop hands the same allocation to the writer and encoder.
pub type SharedFrame = Arc<VideoFrame>;

impl VideoFrame {
    /// A frame of the given size; `data` must hold exactly `w*h*3` bytes.
    pub fn new(width: u32, height: u32, data: Vec<u8>) -> crate::Result<Self> {
        let want = width as usize * height as usize * 3;
        if data.len() != want {
            return Err(crate::Error::invalid(format!(
                "RGB frame {width}x{height} needs {want} bytes, got {}",
                data.len()
            )));
        }
        Ok(VideoFrame {
            width,
            height,
            data,
            captured_ns: monotonic_ns(),
            seq: 0,
        })
    }

    /// A frame filled with one colour (tests, placeholders).
    pub fn solid(width: u32, height: u32, rgb: [u8; 3]) -> Self {
        let mut data = Vec::with_capacity(width as usize * height as usize * 3);
        for _ in 0..(width as usize * height as usize) {
            data.extend_from_slice(&rgb);
        }
        VideoFrame {
            width,
            height,
            data,
            captured_ns: monotonic_ns(),
            seq: 0,
        }
    }

    /// A depth frame of uint16 millimetres (`w*h` readings, row-major).
    pub fn depth_mm(width: u32, height: u32, mm: &[u16]) -> crate::Result<Self> {
        let want = width as usize * height as usize;
        if mm.len() != want {
            return Err(crate::Error::invalid(format!(
                "depth frame {width}x{height} needs {want} readings, got {}",
                mm.len()
            )));
        }
        Ok(VideoFrame {
            width,
            height,
            data: mm.iter().flat_map(|v| v.to_le_bytes()).collect(),
            captured_ns: monotonic_ns(),
            seq: 0,
        })
    }

    /// Size in bytes of the pixel data.
    pub fn byte_len(&self) -> usize {
        self.data.len()
    }
}

/// Nanoseconds on the process-wide monotonic clock (CLOCK_MONOTONIC). Comparable across
/// threads; never jumps.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Nanoseconds since the Unix epoch (wall clock; may jump).
pub fn wall_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}
