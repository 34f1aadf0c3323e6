//! Camera disconnect detection in the loop: a camera whose latest frame is older than a
//! deadline (or whose reader stopped with an error) is reported once, its frames are counted
//! as stale from the last fresh one on (stored per episode as
//! `reel/camera/<name>/stale_frames`), and by policy the episode either ends cleanly at once
//! or goes on with those frames flagged. A camera that is gone (an error, not a stall) never
//! starts another episode.

use reel_core::extra::ExtraValue;
use reel_core::{monotonic_ns, SharedFrame};
use std::time::Duration;

/// What to do when a camera stops delivering mid-episode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnCameraLoss {
    /// Save the episode up to that point and stop recording (default).
    EndEpisode,
    /// Keep recording; the camera's frames are flagged stale until it delivers again.
    Continue,
}

/// How the loop watches its cameras.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CameraWatchConfig {
    /// A camera whose newest frame is older than this is lost.
    pub deadline: Duration,
    pub on_loss: OnCameraLoss,
}

impl Default for CameraWatchConfig {
    fn default() -> Self {
        CameraWatchConfig {
            deadline: Duration::from_millis(500),
            on_loss: OnCameraLoss::EndEpisode,
        }
    }
}

/// What the loop should do after a camera check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Fresh,
    /// Lost, and the policy says go on (the frame is flagged stale).
    Stale,
    /// Lost, and the policy says end the episode.
    End,
}

#[derive(Debug, Default, Clone)]
struct Cam {
    name: String,
    last_seq: Option<u64>,
    /// Ticks (of this episode) since the camera last delivered a new frame.
    repeats: u64,
    lost_since_ns: Option<u64>,
    stale_frames: u64,
    losses: u64,
    gone: Option<String>,
}

/// Per-camera state across ticks and episodes.
#[derive(Debug, Clone)]
pub struct CameraWatch {
    cfg: CameraWatchConfig,
    cams: Vec<Cam>,
}

impl CameraWatch {
    pub fn new(cfg: CameraWatchConfig, names: &[String]) -> CameraWatch {
        CameraWatch {
            cfg,
            cams: names
                .iter()
                .map(|n| Cam {
                    name: n.clone(),
                    ..Default::default()
                })
                .collect(),
        }
    }

    /// Checks camera `i`'s latest frame (and its reader's terminal error) at this tick.
    pub fn check(&mut self, i: usize, frame: &SharedFrame, error: Option<String>) -> Verdict {
        let deadline = self.cfg.deadline;
        let policy = self.cfg.on_loss;
        let Some(c) = self.cams.get_mut(i) else {
            return Verdict::Fresh;
        };
        if c.last_seq == Some(frame.seq) {
            c.repeats += 1;
        } else {
            c.repeats = 0;
            c.last_seq = Some(frame.seq);
        }
        let now = monotonic_ns();
        let age = now.saturating_sub(frame.captured_ns);
        let lost = error.is_some() || age > deadline.as_nanos() as u64;
        if !lost {
            if let Some(since) = c.lost_since_ns.take() {
                tracing::warn!(
                    "camera '{}': delivering again after {:.2} s without new frames",
                    c.name,
                    now.saturating_sub(since) as f64 / 1e9
                );
            }
            return Verdict::Fresh;
        }
        if c.lost_since_ns.is_none() {
            c.lost_since_ns = Some(now);
            c.losses += 1;
            // Every tick since the last fresh frame (this one included) repeated it: flag them.
            c.stale_frames += c.repeats;
            let why = match &error {
                Some(e) => format!("its reader stopped: {e}"),
                None => format!(
                    "no new frame for {:.0} ms (deadline {} ms)",
                    age as f64 / 1e6,
                    deadline.as_millis()
                ),
            };
            tracing::warn!(
                "camera '{}' lost: {why}; last frame #{}; {}",
                c.name,
                frame.seq,
                match policy {
                    OnCameraLoss::EndEpisode => "ending the episode here (saved up to now)",
                    OnCameraLoss::Continue =>
                        "recording goes on with this camera's frames flagged stale (reel/camera/<name>/stale_frames)",
                }
            );
        } else {
            c.stale_frames += 1;
        }
        if let Some(e) = error {
            c.gone = Some(e);
        }
        match policy {
            OnCameraLoss::EndEpisode => Verdict::End,
            OnCameraLoss::Continue => Verdict::Stale,
        }
    }

    /// Starts an episode's counts.
    pub fn begin_episode(&mut self) {
        for c in &mut self.cams {
            c.stale_frames = 0;
            c.losses = 0;
            c.repeats = 0;
        }
    }

    /// Why no further episode can be recorded: a camera that is gone, or still lost.
    pub fn unusable(&self) -> Option<String> {
        self.cams
            .iter()
            .find_map(|c| match (&c.gone, c.lost_since_ns) {
                (Some(e), _) => Some(format!("camera '{}' is gone ({e})", c.name)),
                (None, Some(t)) => Some(format!(
                    "camera '{}' has delivered no new frame for {:.1} s",
                    c.name,
                    monotonic_ns().saturating_sub(t) as f64 / 1e9
                )),
                _ => None,
            })
    }

    /// `camera/<name>/stale_frames` and `camera/<name>/losses` of the episode.
    pub fn extras(&self) -> Vec<(String, ExtraValue)> {
        let mut v = Vec::new();
        for c in &self.cams {
            v.push((
                format!("camera/{}/stale_frames", c.name),
                ExtraValue::I64(c.stale_frames as i64),
            ));
            v.push((
                format!("camera/{}/losses", c.name),
                ExtraValue::I64(c.losses as i64),
            ));
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reel_core::VideoFrame;
    use std::sync::Arc;

    fn frame(seq: u64, age_ms: u64) -> SharedFrame {
        Arc::new(VideoFrame {
            width: 2,
            height: 2,
            data: vec![0; 12],
            captured_ns: monotonic_ns() - age_ms * 1_000_000,
            seq,
        })
    }

    #[test]
    fn flags_every_repeat_from_the_last_fresh_frame() {
        let cfg = CameraWatchConfig {
            deadline: Duration::from_millis(100),
            on_loss: OnCameraLoss::Continue,
        };
        let mut w = CameraWatch::new(cfg, &["front".to_string()]);
        assert_eq!(w.check(0, &frame(1, 0), None), Verdict::Fresh);
        // Four repeats within the deadline, then it passes.
        for _ in 0..4 {
            assert_eq!(w.check(0, &frame(1, 50), None), Verdict::Fresh);
        }
        assert_eq!(w.check(0, &frame(1, 150), None), Verdict::Stale);
        assert_eq!(w.check(0, &frame(1, 180), None), Verdict::Stale);
        let ex = w.extras();
        assert_eq!(ex[0].1, ExtraValue::I64(4 + 2));
        assert_eq!(ex[1].1, ExtraValue::I64(1));
        assert!(w.unusable().is_some());
        assert_eq!(w.check(0, &frame(2, 0), None), Verdict::Fresh);
        assert!(w.unusable().is_none());
        let mut end = CameraWatch::new(CameraWatchConfig::default(), &["a".to_string()]);
        assert_eq!(
            end.check(0, &frame(1, 0), Some("gone".into())),
            Verdict::End
        );
        assert!(end.unusable().unwrap().contains("gone"));
    }
}
