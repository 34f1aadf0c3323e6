//! What can end a phase early: keys (→ next phase, ← re-record, Esc stop) read from the
//! terminal in raw mode, and SIGINT/SIGTERM (finish cleanly). The loop polls [`Events`]
//! once per tick; nothing here ever blocks it.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

/// Flags shared between the key reader, the signal handler and the loop.
#[derive(Debug, Default)]
pub struct Events {
    pub exit_early: AtomicBool,
    pub rerecord: AtomicBool,
    pub stop: AtomicBool,
}

impl Events {
    pub fn new() -> Arc<Events> {
        Arc::new(Events::default())
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

static SIGNALS: AtomicUsize = AtomicUsize::new(0);

extern "C" fn on_signal(_sig: libc::c_int) {
    let n = SIGNALS.fetch_add(1, Ordering::SeqCst);
    if n >= 2 {
        // Third Ctrl-C: the user insists. Saved episodes are safe on disk already.
        // SAFETY: _exit is async-signal-safe.
        unsafe { libc::_exit(130) };
    }
}

/// Installs SIGINT/SIGTERM handlers that only set a flag, and ignores SIGXFSZ so that a
/// file-size limit surfaces as an EFBIG error with a message instead of killing the process.
pub fn install_signal_handlers() {
    // SAFETY: installing plain handlers that touch only an atomic.
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
}

/// True once SIGINT or SIGTERM arrived.
pub fn interrupted() -> bool {
    SIGNALS.load(Ordering::SeqCst) > 0
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
