//! `--say` announcements ("Resetting", "Starting episode N"): spoken by a TTS program if one is
//! installed, in the background, so that the control loop never waits and never fails on them.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Speaks `text` with `espeak-ng` (or `espeak`, or `spd-say`) if one is on `PATH`. Returns at once:
/// the program runs in the background and is reaped by a small thread. Does nothing (logs at
/// debug level) when no TTS program exists or it cannot be started.
pub fn say(text: &str) {
    let Some(program) = find_tts() else {
        tracing::debug!("no TTS program (espeak-ng, espeak, spd-say) on PATH; not saying {text:?}");
        return;
    };
    let child = Command::new(&program)
        .arg(text)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    match child {
        Ok(mut child) => {
            let spawned = std::thread::Builder::new()
                .name("reel-say".into())
                .spawn(move || {
                    let _ = child.wait();
                });
            if let Err(e) = spawned {
                tracing::debug!("cannot start thread to reap {}: {e}", program.display());
            }
        }
        Err(e) => tracing::debug!("cannot run {}: {e}", program.display()),
    }
}

fn find_tts() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    for name in ["espeak-ng", "espeak", "spd-say"] {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join(name);
            if is_executable(&candidate) {
                return Some(candidate);
            }
        }
    }
    None
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    #[test]
    fn say_returns_immediately() {
        let t = std::time::Instant::now();
        super::say("Starting episode 1");
        assert!(t.elapsed() < std::time::Duration::from_millis(500));
    }
}
