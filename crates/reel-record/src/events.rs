//! What can end a phase early: keys (→ next phase, ← re-record, Esc stop) read from the
//! terminal in raw mode, and stop requests (signals, installed by the front end on the
//! [`StopToken`]: finish cleanly). The loop polls [`Events`] once per tick; nothing here ever
//! blocks it.

use reel_core::StopToken;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Flags shared between the key reader, the front end's stop token and the loop.
#[derive(Debug, Default)]
pub struct Events {
    pub exit_early: AtomicBool,
    pub rerecord: AtomicBool,
    pub stop: AtomicBool,
    /// Stop requests (signals): the loop discards the unfinished episode and ends.
    pub signals: StopToken,
}

impl Events {
    pub fn new() -> Arc<Events> {
        Arc::new(Events::default())
    }
    /// Events whose stop requests come from `stop` (e.g. the front end's signal handlers).
    pub fn with_stop(stop: StopToken) -> Arc<Events> {
        Arc::new(Events {
            signals: stop,
            ..Events::default()
        })
    }
    /// True once a stop request (a signal) arrived.
    pub fn interrupted(&self) -> bool {
        self.signals.requested()
    }
    /// → / n: end the current phase.
    pub fn next_phase(&self) {
        self.exit_early.store(true, Ordering::SeqCst);
    }
    /// ← / r: discard the episode and record it again.
    pub fn rerecord(&self) {
        self.rerecord.store(true, Ordering::SeqCst);
        self.exit_early.store(true, Ordering::SeqCst);
    }
    /// Esc / q: save the episode in progress and stop.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        self.exit_early.store(true, Ordering::SeqCst);
    }
    /// Takes the exit-early flag (clearing it).
    pub fn take_exit_early(&self) -> bool {
        self.exit_early.swap(false, Ordering::SeqCst)
    }
}

/// Reads keys from the terminal (raw mode) until dropped. Does nothing when stdin is not a TTY.
pub struct KeyListener {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    saved: Option<libc::termios>,
}

impl KeyListener {
    pub fn start(events: Arc<Events>) -> KeyListener {
        // SAFETY: isatty/tcgetattr/tcsetattr on fd 0 with a termios we own.
        let saved = unsafe {
            if libc::isatty(0) != 1 {
                None
            } else {
                let mut t: libc::termios = std::mem::zeroed();
                if libc::tcgetattr(0, &mut t) != 0 {
                    None
                } else {
                    let orig = t;
                    t.c_lflag &= !(libc::ICANON | libc::ECHO);
                    t.c_cc[libc::VMIN] = 1;
                    t.c_cc[libc::VTIME] = 0;
                    (libc::tcsetattr(0, libc::TCSANOW, &t) == 0).then_some(orig)
                }
            }
        };
        let stop = Arc::new(AtomicBool::new(false));
        let thread = saved.is_some().then(|| {
            let stop = stop.clone();
            std::thread::spawn(move || read_keys(events, stop))
        });
        if saved.is_some() {
            tracing::info!("keys: → next phase, ← re-record the episode, Esc stop (saves the episode), Ctrl-C stop (discards it)");
        }
        KeyListener {
            stop,
            thread,
            saved,
        }
    }
}

impl Drop for KeyListener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        if let Some(orig) = self.saved {
            // SAFETY: restores the terminal settings saved at start.
            unsafe { libc::tcsetattr(0, libc::TCSANOW, &orig) };
        }
    }
}

fn read_byte(timeout_ms: i32) -> Option<u8> {
    let mut pfd = libc::pollfd {
        fd: 0,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: poll and read on fd 0 into a local buffer.
    unsafe {
        if libc::poll(&mut pfd, 1, timeout_ms) <= 0 {
            return None;
        }
        let mut b = 0u8;
        (libc::read(0, &mut b as *mut u8 as *mut libc::c_void, 1) == 1).then_some(b)
    }
}

/// A decoded key press.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    Right,
    Left,
    Escape,
}

/// Decodes one key from a byte source (`next(timeout_ms)`), as a terminal sends them.
pub fn decode_key(first: u8, mut next: impl FnMut(i32) -> Option<u8>) -> Option<Key> {
    match first {
        b'n' | b'N' => Some(Key::Right),
        b'r' | b'R' => Some(Key::Left),
        b'q' | b'Q' => Some(Key::Escape),
        0x1b => match next(20) {
            None => Some(Key::Escape),
            Some(b'[') | Some(b'O') => match next(20) {
                Some(b'C') => Some(Key::Right),
                Some(b'D') => Some(Key::Left),
                _ => None,
            },
            Some(_) => None,
        },
        _ => None,
    }
}

fn read_keys(events: Arc<Events>, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::SeqCst) {
        let Some(b) = read_byte(100) else { continue };
        match decode_key(b, read_byte) {
            Some(Key::Right) => {
                tracing::info!("→ ending this phase");
                events.next_phase();
            }
            Some(Key::Left) => {
                tracing::info!("← re-recording this episode");
                events.rerecord();
            }
            Some(Key::Escape) => {
                tracing::info!("Esc: stopping after this episode is saved");
                events.stop();
            }
            None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(bytes: &[u8]) -> Option<Key> {
        let mut it = bytes[1..].iter().copied();
        decode_key(bytes[0], |_| it.next())
    }

    #[test]
    fn decodes_terminal_keys() {
        assert_eq!(feed(b"\x1b[C"), Some(Key::Right));
        assert_eq!(feed(b"\x1bOD"), Some(Key::Left));
        assert_eq!(feed(b"\x1b"), Some(Key::Escape));
        assert_eq!(feed(b"n"), Some(Key::Right));
        assert_eq!(feed(b"r"), Some(Key::Left));
        assert_eq!(feed(b"q"), Some(Key::Escape));
        assert_eq!(feed(b"x"), None);
        assert_eq!(feed(b"\x1b[A"), None);
    }

    #[test]
    fn events_flags() {
        let e = Events::new();
        e.rerecord();
        assert!(e.take_exit_early());
        assert!(!e.take_exit_early());
        assert!(e.rerecord.load(Ordering::SeqCst));
    }
}
