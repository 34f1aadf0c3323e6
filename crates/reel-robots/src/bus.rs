//! One servo bus, through rustypot's `Bus` (framing, sync read/write, register names, sign
//! encodings): opening the port with clear errors (missing, busy, not a serial port), the
//! handshake LeRobot does on connect (every motor answers at its id with the right model;
//! Feetech firmware versions agree), registers by LeRobot's names, and retries.

use crate::model::MotorSpec;
use crate::sim::wire::Protocol;
use reel_core::{Error, Result};
use std::collections::BTreeMap;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::Duration;

/// The serial rate of every supported arm (LeRobot's `DEFAULT_BAUDRATE`).
pub const BAUDRATE: u32 = 1_000_000;

/// How long one status packet may take to arrive. Replies take well under a millisecond at
/// 1 Mbps; the margin covers USB adapters' latency timers. A missing reply costs this once.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(10);

/// The timeout while connecting, configuring and calibrating, where nothing is paced: generous,
/// so that a loaded machine does not fail a handshake.
pub const SETUP_TIMEOUT: Duration = Duration::from_millis(100);

/// A servo bus of one arm.
pub struct ServoBus {
    port: String,
    protocol: Protocol,
    motors: Vec<MotorSpec>,
    bus: rustypot::bus::Bus,
}

fn describe(e: Box<dyn std::error::Error>) -> String {
    e.to_string()
}

/// LeRobot's register name (`Present_Position`) as rustypot spells it (`present_position`).
pub fn register(lerobot_name: &str) -> String {
    lerobot_name.to_ascii_lowercase()
}

impl ServoBus {
    /// Opens `port` for `motors` (all of one protocol) and checks nothing else yet.
    pub fn open(port: &str, motors: &[MotorSpec], timeout: Duration) -> Result<ServoBus> {
        let protocol = motors
            .first()
            .map(|m| m.model.protocol())
            .ok_or_else(|| Error::invalid("a bus needs at least one motor"))?;
        let path = Path::new(port);
        if !path.exists() {
            return Err(Error::invalid(format!(
                "port {port} does not exist (is the arm's USB cable plugged in? `ls /dev/ttyACM* /dev/ttyUSB*` lists serial ports; `reel sim-bus` makes a simulated one)"
            )));
        }
        check_not_busy(port)?;
        let tty = serialport::new(port, BAUDRATE)
            .timeout(timeout)
            .open_native()
            .map_err(|e| {
                let busy = matches!(e.kind, serialport::ErrorKind::Io(std::io::ErrorKind::WouldBlock))
                    || e.description.contains("EWOULDBLOCK")
                    || e.description.contains("EAGAIN")
                    || e.description.contains("Resource temporarily unavailable");
                if busy {
                    Error::invalid(format!(
                        "port {port} is busy: another program has it open (another reel, lerobot, a serial monitor?)"
                    ))
                } else {
                    Error::invalid(format!("cannot open port {port} as a serial port: {e}"))
                }
            })?;
        let map: BTreeMap<u8, rustypot::servo::ServoDefinition> = motors
            .iter()
            .map(|m| (m.id, m.model.definition()))
            .collect();
        Ok(ServoBus {
            port: port.to_string(),
            protocol,
            motors: motors.to_vec(),
            bus: rustypot::bus::Bus::new(Box::new(tty), map),
        })
    }

    /// Changes the per-packet timeout.
    pub fn set_timeout(&mut self, timeout: Duration) -> Result<()> {
        self.bus
            .set_timeout(timeout)
            .map_err(|e| Error::invalid(format!("{}: {}", self.port, describe(e))))
    }

    pub fn port(&self) -> &str {
        &self.port
    }

    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    pub fn motors(&self) -> &[MotorSpec] {
        &self.motors
    }

    fn ids(&self) -> Vec<u8> {
        self.motors.iter().map(|m| m.id).collect()
    }

    /// LeRobot's handshake: every motor answers at its id with its model number (and on
    /// Feetech every motor runs the same firmware).
    pub fn handshake(&mut self) -> Result<()> {
        let mut missing = Vec::new();
        let mut wrong = Vec::new();
        for m in self.motors.clone() {
            match self.read_retry(&m, "Model_Number", 2) {
                Ok(n) if n == i64::from(m.model.model_number()) => {}
                Ok(n) => wrong.push(format!(
                    "'{}' (id {}) answers with model number {n}, expected {} ({})",
                    m.name,
                    m.id,
                    m.model.model_number(),
                    m.model.name()
                )),
                Err(e) => missing.push(format!(
                    "'{}' (id {}, {}): {e}",
                    m.name,
                    m.id,
                    m.model.name()
                )),
            }
        }
        if !missing.is_empty() || !wrong.is_empty() {
            let mut msg = format!("motor check failed on port {}:", self.port);
            for s in &missing {
                msg.push_str(&format!("\n  no answer from servo {s}"));
            }
            for s in &wrong {
                msg.push_str(&format!("\n  servo {s}"));
            }
            msg.push_str("\n(check the ids with the vendor tool or LeRobot's lerobot-setup-motors, and that this is the right port)");
            return Err(Error::invalid(msg));
        }
        if self.protocol == Protocol::Feetech {
            let mut versions = BTreeMap::new();
            for m in self.motors.clone() {
                let major = self.read_retry(&m, "Firmware_Major_Version", 2)?;
                let minor = self.read_retry(&m, "Firmware_Minor_Version", 2)?;
                versions.insert(m.name, format!("{major}.{minor}"));
            }
            let mut distinct: Vec<&String> = versions.values().collect();
            distinct.dedup();
            if distinct.len() > 1 {
                return Err(Error::invalid(format!(
                    "motors on {} run different firmware versions {versions:?}: update them with Feetech's software first",
                    self.port
                )));
            }
        }
        Ok(())
    }

    fn motor(&self, name: &str) -> Result<MotorSpec> {
        self.motors
            .iter()
            .find(|m| m.name == name)
            .copied()
            .ok_or_else(|| Error::invalid(format!("no motor named '{name}' on {}", self.port)))
    }

    fn read_retry(&mut self, m: &MotorSpec, reg: &str, retries: u32) -> Result<i64> {
        let r = register(reg);
        let id = m.id;
        self.bus
            .with_retries(retries, |b| b.read_register(id, &r))
            .map_err(|e| Error::invalid(describe(e)))
    }

    /// Reads register `reg` (LeRobot's name) of motor `name`.
    pub fn read(&mut self, name: &str, reg: &str) -> Result<i64> {
        let m = self.motor(name)?;
        self.read_retry(&m, reg, 2).map_err(|e| {
            Error::invalid(format!(
                "cannot read {reg} of '{}' (id {}) on {}: {e}",
                m.name, m.id, self.port
            ))
        })
    }

    /// Writes register `reg` of motor `name`, waiting for the servo's answer (a write the servo
    /// refuses is an error). Retried twice on a bus failure: a write is idempotent.
    pub fn write(&mut self, name: &str, reg: &str, value: i64) -> Result<()> {
        let m = self.motor(name)?;
        let r = register(reg);
        let id = m.id;
        let port = self.port.clone();
        self.bus
            .with_retries(2, |b| {
                let status = b.write_register_with_error(id, &r, value)?;
                let def = b.definition(id)?;
                if def.refuses(status) {
                    return Err(Box::new(rustypot::StatusPacketError { id, status }));
                }
                Ok(())
            })
            .map_err(|e| {
                Error::invalid(format!(
                    "cannot write {reg} = {value} to '{}' (id {id}) on {port}: {}",
                    m.name,
                    describe(e)
                ))
            })
    }

    /// One sync read of `reg` from every motor, in motor order; no retry (the caller counts
    /// and retries failures).
    pub fn sync_read(&mut self, reg: &str) -> Result<Vec<i64>> {
        let ids = self.ids();
        self.bus
            .sync_read_register(&ids, &register(reg))
            .map_err(|e| {
                Error::invalid(format!(
                    "sync read of {reg} on {}: {}",
                    self.port,
                    describe(e)
                ))
            })
    }

    /// One sync write of `reg` to every motor (no answer on the bus).
    pub fn sync_write(&mut self, reg: &str, values: &[i64]) -> Result<()> {
        let ids = self.ids();
        self.bus
            .sync_write_register(&ids, &register(reg), values)
            .map_err(|e| {
                Error::invalid(format!(
                    "sync write of {reg} on {}: {}",
                    self.port,
                    describe(e)
                ))
            })
    }

    /// Torque on or off for `names` (all motors when empty); on Feetech the EEPROM lock
    /// follows the torque, as LeRobot's `enable_torque`/`disable_torque` do.
    pub fn set_torque(&mut self, names: &[&str], on: bool, retries: u32) -> Result<()> {
        let ids: Vec<u8> = if names.is_empty() {
            self.ids()
        } else {
            names
                .iter()
                .map(|n| self.motor(n).map(|m| m.id))
                .collect::<Result<_>>()?
        };
        let failed = self.bus.set_torque(&ids, on, retries);
        if failed.is_empty() {
            return Ok(());
        }
        let list: Vec<String> = failed
            .into_iter()
            .map(|(id, e)| format!("id {id}: {e}"))
            .collect();
        Err(Error::invalid(format!(
            "cannot turn torque {} on {}: {}",
            if on { "on" } else { "off" },
            self.port,
            list.join("; ")
        )))
    }
}

/// Fails when another process holds the port's exclusive lock (serialport and LeRobot's
/// `exclusive=True` take `flock`).
fn check_not_busy(port: &str) -> Result<()> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY | libc::O_NONBLOCK)
        .open(port)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::PermissionDenied => Error::invalid(format!(
                "port {port}: permission denied (add yourself to the 'dialout' group, or run as root)"
            )),
            _ => Error::invalid(format!("cannot open port {port}: {e}")),
        })?;
    // SAFETY: flock on a descriptor owned by `f`, which outlives the call.
    let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
            return Err(Error::invalid(format!(
                "port {port} is busy: another program has it open and locked (another reel, lerobot, a serial monitor?)"
            )));
        }
    }
    // Closing `f` releases the probe lock.
    Ok(())
}

use std::os::unix::fs::OpenOptionsExt;
