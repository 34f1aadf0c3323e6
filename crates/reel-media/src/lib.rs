//! reel-media: everything that touches video bytes. It encodes each camera's episode into
//! its own MP4 segment with FFmpeg ([`EpisodeEncoder`], LeRobot's [`EncoderSettings`]),
//! appends finished segments to a dataset's MP4 by box surgery in O(segment + index) under
//! the undo journal ([`mp4`]), and probes ([`probe`]) and decodes ([`decode`]) what was
//! written, re-encodes whole files ([`transcode`]), and finds which encoders really work on
//! this machine ([`encoders`]), and makes small JPEGs of frames for the live page
//! ([`thumbnail`]). Depth cameras are quantised and encoded as LeRobot 0.6.1 does ([`depth`]).
// Unit tests build with the dev-dependencies, which only the integration tests use.
#![cfg_attr(test, allow(unused_crate_dependencies))]

pub mod decode;
pub mod depth;
mod encoder;
pub mod encoders;
mod fault;
pub mod probe;
mod rgb_yuv;
mod settings;
pub mod thumbnail;
pub mod transcode;

pub use encoder::{builtin_svt_description, partial_path, salvage, EncodedSegment, EpisodeEncoder};
pub use fault::Fault;
pub use settings::{encoder_available, ffmpeg_svt_requested, EncoderSettings, KNOWN_ENCODERS};

/// How encoder `name` is shown to people: the built-in SVT-AV1 with its version
/// ("libsvtav1 (SVT-AV1 v2.3.0, built in)"), any other encoder by its FFmpeg name.
pub fn encoder_display_name(name: &str) -> String {
    if name == "libsvtav1" && !ffmpeg_svt_requested() {
        format!("libsvtav1 ({})", builtin_svt_description())
    } else {
        name.to_string()
    }
}

use std::sync::Once;

static INIT: Once = Once::new();

/// Initialises FFmpeg once per process: registers formats and codecs, sets FFmpeg's log level
/// to errors only and `SVT_LOG=1` (SVT-AV1 errors only) unless the environment sets it.
pub fn init() {
    INIT.call_once(|| {
        if std::env::var_os("SVT_LOG").is_none() {
            std::env::set_var("SVT_LOG", "1");
        }
        if let Err(e) = ffmpeg_next::init() {
            tracing::warn!("ffmpeg init: {e}");
        }
        ffmpeg_next::log::set_level(ffmpeg_next::log::Level::Error);
    });
}
