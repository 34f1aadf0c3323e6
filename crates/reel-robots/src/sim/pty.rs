//! A pseudo-terminal pair: the simulator reads and writes the master side; clients open the
//! slave path (`/dev/pts/N`) as a serial port. The simulator keeps one slave descriptor open
//! itself, so the master never sees a hang-up between clients and the line stays raw.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;

pub struct Pty {
    pub master: OwnedFd,
    /// Kept open so that the pty persists (and stays raw) while no client has it.
    _slave: OwnedFd,
    pub path: PathBuf,
}

fn check(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

impl Pty {
    pub fn open() -> io::Result<Pty> {
        // SAFETY: plain libc calls on descriptors this function owns; every return code is
        // checked and descriptors are wrapped in OwnedFd as soon as they exist.
        unsafe {
            let m = check(libc::posix_openpt(
                libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
            ))?;
            let master = OwnedFd::from_raw_fd(m);
            check(libc::grantpt(m))?;
            check(libc::unlockpt(m))?;
            let mut name = [0 as libc::c_char; 128];
            let rc = libc::ptsname_r(m, name.as_mut_ptr(), name.len());
            if rc != 0 {
                return Err(io::Error::from_raw_os_error(rc));
            }
            let path = CStr::from_ptr(name.as_ptr()).to_owned();
            let s = check(libc::open(
                path.as_ptr(),
                libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
            ))?;
            let slave = OwnedFd::from_raw_fd(s);
            let mut t: libc::termios = std::mem::zeroed();
            check(libc::tcgetattr(s, &mut t))?;
            libc::cfmakeraw(&mut t);
            check(libc::tcsetattr(s, libc::TCSANOW, &t))?;
            Ok(Pty {
                master,
                _slave: slave,
                path: PathBuf::from(path.to_string_lossy().into_owned()),
            })
        }
    }

    /// The master side as a `File` for reads and writes (a duplicate descriptor).
    pub fn master_file(&self) -> io::Result<std::fs::File> {
        Ok(std::fs::File::from(self.master.try_clone()?))
    }
}

/// Waits up to `timeout_ms` for `fd` to be readable.
pub fn wait_readable(fd: RawFd, timeout_ms: i32) -> io::Result<bool> {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd on the stack.
    let rc = unsafe { libc::poll(&mut p, 1, timeout_ms) };
    if rc < 0 {
        let e = io::Error::last_os_error();
        return if e.kind() == io::ErrorKind::Interrupted {
            Ok(false)
        } else {
            Err(e)
        };
    }
    Ok(rc > 0 && p.revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0)
}

impl AsRawFd for Pty {
    fn as_raw_fd(&self) -> RawFd {
        self.master.as_raw_fd()
    }
}
