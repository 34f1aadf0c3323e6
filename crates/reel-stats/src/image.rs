//! Per-camera image statistics computed while a video is being encoded, as LeRobot's
//! streaming encoder does (spec §3.4): every RGB frame is downsampled to about 150 px
//! (`auto_downsample_height_width`, §4.3), its pixels are fed as (H'·W', 3) rows to a
//! [`RunningQuantileStats`], and the result is scaled to [0, 1].
//!
//! This runs on an encoder worker thread for every frame of every camera, so a frame is
//! reduced to 3 × 256 value counts (one pass over the downsampled pixels) before it touches
//! the statistics; for 8-bit values that is exactly equivalent to feeding every pixel.

use crate::{FeatureStats, RunningQuantileStats};
use reel_core::{Error, Result};

/// LeRobot's `auto_downsample_height_width` stride `f` (the image becomes `img[::f, ::f]`):
/// 1 when `max(height, width) < 300`, else `int(width / 150)` if `width > height`, otherwise
/// `int(height / 150)`. Never 0.
pub fn downsample_stride(height: u32, width: u32) -> u32 {
    const TARGET: u32 = 150;
    const THRESHOLD: u32 = 300;
    if height.max(width) < THRESHOLD {
        return 1;
    }
    let f = if width > height {
        width / TARGET
    } else {
        height / TARGET
    };
    f.max(1)
}

/// Streaming statistics of one RGB camera over an episode. `count` in the result is the
/// number of pixels fed (frames × H' × W'), as in LeRobot's streaming path. A depth camera's
/// ([`ImageStats::new_depth`]) are over its millimetres, one channel, not rescaled
/// (LeRobot's `normalization_factor` 1 for `is_depth_map` features).
#[derive(Debug, Clone)]
pub struct ImageStats {
    stats: RunningQuantileStats,
    frames: u64,
    /// Scratch value counts, reused between frames.
    counts: [[u64; 256]; 3],
    /// A depth camera: millimetres, one channel, no rescaling.
    depth: bool,
    /// Scratch downsampled depth readings, reused between frames.
    rows: Vec<f64>,
}

impl Default for ImageStats {
    fn default() -> Self {
        Self::new()
    }
}

impl ImageStats {
    /// Empty statistics for a 3-channel camera (5000 bins per channel).
    pub fn new() -> Self {
        ImageStats {
            stats: RunningQuantileStats::new(3),
            frames: 0,
            counts: [[0u64; 256]; 3],
            depth: false,
            rows: Vec::new(),
        }
    }

    /// Empty statistics for a depth camera (one channel of millimetres, 5000 bins).
    pub fn new_depth() -> Self {
        ImageStats {
            stats: RunningQuantileStats::new(1),
            frames: 0,
            counts: [[0u64; 256]; 3],
            depth: true,
            rows: Vec::new(),
        }
    }

    /// Feeds one depth frame of uint16 millimetres, little-endian (`width * height * 2`
    /// bytes), downsampled with [`downsample_stride`] as LeRobot's streaming encoder does; each
    /// frame is one update of the running statistics (its histogram re-fitted when the frame
    /// extends the range), exactly as LeRobot feeds its `(H'·W', 1)` float32 rows.
    pub fn push_depth(&mut self, width: u32, height: u32, mm_le: &[u8]) -> Result<()> {
        if !self.depth {
            return Err(Error::invalid(
                "image statistics: a depth frame fed to an RGB camera's statistics",
            ));
        }
        let (w, h) = (width as usize, height as usize);
        if w == 0 || h == 0 || w.checked_mul(h).and_then(|p| p.checked_mul(2)) != Some(mm_le.len())
        {
            return Err(Error::invalid(format!(
                "image statistics: a {width}x{height} depth frame needs {} bytes, got {}",
                w as u128 * h as u128 * 2,
                mm_le.len()
            )));
        }
        let f = downsample_stride(height, width) as usize;
        self.rows.clear();
        for row in mm_le.chunks_exact(w * 2).step_by(f) {
            for px in row.chunks_exact(2).step_by(f) {
                self.rows
                    .push(f64::from(u16::from_le_bytes([px[0], px[1]])));
            }
        }
        self.stats.update_rows(&self.rows, 1)?;
        self.frames += 1;
        Ok(())
    }

    /// Feeds one frame of packed RGB24 bytes (HWC, `width * height * 3` bytes, no row
    /// padding). The frame is downsampled with [`downsample_stride`] first.
    pub fn push_rgb(&mut self, width: u32, height: u32, rgb: &[u8]) -> Result<()> {
        if self.depth {
            return Err(Error::invalid(
                "image statistics: an RGB frame fed to a depth camera's statistics",
            ));
        }
        if width == 0 || height == 0 {
            return Err(Error::invalid(format!(
                "image statistics: empty frame {width}x{height}"
            )));
        }
        let (w, h) = (width as usize, height as usize);
        let expected = w.checked_mul(h).and_then(|p| p.checked_mul(3));
        if expected != Some(rgb.len()) {
            return Err(Error::invalid(format!(
                "image statistics: a {width}x{height} RGB24 frame needs {} bytes, got {}",
                w as u128 * h as u128 * 3,
                rgb.len()
            )));
        }
        let f = downsample_stride(height, width) as usize;
        for c in self.counts.iter_mut() {
            c.fill(0);
        }
        let [c0, c1, c2] = &mut self.counts;
        let row_bytes = w * 3;
        for row in rgb.chunks_exact(row_bytes).step_by(f) {
            for px in row.chunks_exact(3).step_by(f) {
                c0[px[0] as usize] += 1;
                c1[px[1] as usize] += 1;
                c2[px[2] as usize] += 1;
            }
        }
        self.stats.update_value_counts(&self.counts)?;
        self.frames += 1;
        Ok(())
    }

    /// Number of frames fed so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// The episode's statistics: every stat except `count` divided by 255 (values in
    /// [0, 1]; depth: in millimetres, as fed); `count` = total number of pixels fed. Errors with fewer than 2 frames (LeRobot
    /// then reports no stats for the camera).
    pub fn finish(&self) -> Result<FeatureStats> {
        if self.frames < 2 {
            return Err(Error::invalid(format!(
                "Cannot compute image statistics from fewer than 2 frames (got {})",
                self.frames
            )));
        }
        let mut s = self.stats.get_statistics()?;
        if self.depth {
            return Ok(s);
        }
        let scale = |v: &mut Vec<f64>| v.iter_mut().for_each(|x| *x /= 255.0);
        scale(&mut s.min);
        scale(&mut s.max);
        scale(&mut s.mean);
        scale(&mut s.std);
        for (_, q) in s.quantiles.iter_mut() {
            scale(q);
        }
        Ok(s)
    }
}
