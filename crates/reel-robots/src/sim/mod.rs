//! The bus simulator behind `reel sim-bus`: a pseudo-terminal whose other end speaks the real
//! Feetech or Dynamixel 2.0 protocol for a whole arm (six servos with their control tables,
//! moving joints, limits, calibration registers), with injectable corrupted and missing status
//! packets. LeRobot's own bus code (scservo_sdk / dynamixel_sdk over pyserial) and reel's
//! drivers (rustypot over serialport) both talk to it unchanged.
//!
//! One thread per simulated bus: it waits on the pseudo-terminal's master side, parses
//! instruction packets ([`wire`]), advances the joints to the current time, and answers.

pub mod pty;
pub mod servo;
pub mod wire;

use crate::model::RobotType;
use reel_core::{Error, Result};
use servo::{Motion, Servo};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use wire::{Instruction, Parsed, Protocol, BROADCAST};

/// How a simulated bus behaves.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Which arm's servos are on the bus (its models and ids).
    pub robot: RobotType,
    /// Fraction of status packets that go wrong (half corrupted by one flipped byte, half
    /// never sent).
    pub corrupt: f64,
    pub motion: Motion,
    /// Servo ids that do not answer (a servo missing or at another id).
    pub absent: Vec<u8>,
    /// Seed of the fault injector.
    pub seed: u64,
    /// Write every sync read of Present_Position and sync write of Goal_Position here
    /// (testing aid; see [`TraceLine`]).
    pub trace: Option<PathBuf>,
    /// Ask for SCHED_FIFO (the simulator stands in for hardware that has its own CPU).
    pub realtime: bool,
}

impl SimConfig {
    pub fn new(robot: RobotType) -> SimConfig {
        SimConfig {
            robot,
            corrupt: 0.0,
            motion: Motion::Sine,
            absent: Vec::new(),
            seed: 1,
            trace: None,
            realtime: false,
        }
    }

    /// Parses the `--robot` of `reel sim-bus`: `so100`, `so101`, `koch`, `koch_leader`, or any
    /// full type name (`so101_leader`, `koch_follower`, ...).
    pub fn parse_robot(s: &str) -> Result<RobotType> {
        match s.trim() {
            "so100" => Ok(RobotType::So100Follower),
            "so101" => Ok(RobotType::So101Follower),
            "koch" => Ok(RobotType::KochFollower),
            "koch_leader" => Ok(RobotType::KochLeader),
            other => RobotType::parse(other).map_err(|_| {
                Error::invalid(format!(
                    "--robot '{other}': expected so100, so101, koch, koch_leader or a robot type such as so101_leader"
                ))
            }),
        }
    }
}

/// What a simulated bus did so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SimStats {
    pub instructions: u64,
    pub status_sent: u64,
    pub corrupted: u64,
    pub dropped: u64,
    /// Bytes skipped because they framed no valid instruction.
    pub junk_bytes: u64,
}

/// One line of the trace file: `P ok|bad v1 … v6` for a sync read of Present_Position (the
/// raw values every servo answered, decoded as a client reads them; `bad` when at least one
/// status packet of it was corrupted or dropped), `G v1 … v6` for a sync write of
/// Goal_Position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TraceLine {
    Present { ok: bool, values: Vec<i64> },
    Goal { values: Vec<i64> },
}

impl TraceLine {
    pub fn parse(line: &str) -> Option<TraceLine> {
        let mut it = line.split_whitespace();
        let kind = it.next()?;
        match kind {
            "P" => {
                let ok = it.next()? == "ok";
                let values = it.map(|v| v.parse().ok()).collect::<Option<Vec<i64>>>()?;
                Some(TraceLine::Present { ok, values })
            }
            "G" => Some(TraceLine::Goal {
                values: it.map(|v| v.parse().ok()).collect::<Option<Vec<i64>>>()?,
            }),
            _ => None,
        }
    }
}

/// A running simulated bus; stops (and removes nothing but its pseudo-terminal) on drop.
pub struct SimBus {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    stats: Arc<Mutex<SimStats>>,
    motion: Arc<AtomicU8>,
    thread: Option<JoinHandle<()>>,
}

fn motion_code(m: Motion) -> u8 {
    match m {
        Motion::Sine => 0,
        Motion::Still => 1,
    }
}

impl SimBus {
    /// Changes how untorqued joints move from now on.
    pub fn set_motion(&self, m: Motion) {
        self.motion.store(motion_code(m), Ordering::SeqCst);
    }

    /// Opens a pseudo-terminal and starts answering on it.
    pub fn start(cfg: SimConfig) -> Result<SimBus> {
        if !(0.0..=1.0).contains(&cfg.corrupt) || cfg.corrupt.is_nan() {
            return Err(Error::invalid(format!(
                "--corrupt {} must be a fraction between 0 and 1 (0.01 = 1 %)",
                cfg.corrupt
            )));
        }
        let pty = pty::Pty::open().map_err(|e| Error::invalid(format!("pseudo-terminal: {e}")))?;
        let path = pty.path.clone();
        let trace = match &cfg.trace {
            Some(p) => Some(std::io::BufWriter::new(
                std::fs::File::create(p)
                    .map_err(|e| Error::invalid(format!("--trace {}: {e}", p.display())))?,
            )),
            None => None,
        };
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(Mutex::new(SimStats::default()));
        let motion = Arc::new(AtomicU8::new(motion_code(cfg.motion)));
        let mut sim = Simulator::new(&cfg, trace, motion.clone());
        let (stop2, stats2) = (stop.clone(), stats.clone());
        let realtime = cfg.realtime;
        let thread = std::thread::Builder::new()
            .name("sim-bus".into())
            .spawn(move || {
                if realtime {
                    // Refused without CAP_SYS_NICE: the simulator then runs at normal priority.
                    let _ = reel_core::sched::raise_device_thread();
                }
                sim.serve(pty, &stop2, &stats2)
            })
            .map_err(|e| Error::invalid(format!("cannot start the simulator thread: {e}")))?;
        Ok(SimBus {
            path,
            stop,
            stats,
            motion,
            thread: Some(thread),
        })
    }

    /// The serial port path to give a driver (`/dev/pts/N`).
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn stats(&self) -> SimStats {
        self.stats.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Stops the thread and closes the pseudo-terminal.
    pub fn stop(mut self) -> SimStats {
        self.shutdown();
        self.stats()
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for SimBus {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// A servo packet timeout: an incomplete packet older than this is dropped.
const PACKET_TIMEOUT: Duration = Duration::from_millis(20);

struct Simulator {
    protocol: Protocol,
    servos: Vec<Servo>,
    absent: Vec<u8>,
    motion: Arc<AtomicU8>,
    corrupt: f64,
    rng: fastrand::Rng,
    t0: Instant,
    last: Instant,
    trace: Option<std::io::BufWriter<std::fs::File>>,
}

impl Simulator {
    fn new(
        cfg: &SimConfig,
        trace: Option<std::io::BufWriter<std::fs::File>>,
        motion: Arc<AtomicU8>,
    ) -> Simulator {
        let servos = cfg
            .robot
            .motors(true)
            .iter()
            .enumerate()
            .map(|(i, m)| Servo::new(m.model, m.id, i))
            .collect();
        let now = Instant::now();
        Simulator {
            protocol: cfg.robot.protocol(),
            servos,
            absent: cfg.absent.clone(),
            motion,
            corrupt: cfg.corrupt,
            rng: fastrand::Rng::with_seed(cfg.seed),
            t0: now,
            last: now,
            trace,
        }
    }

    fn serve(&mut self, pty: pty::Pty, stop: &AtomicBool, stats: &Mutex<SimStats>) {
        let mut inbuf: Vec<u8> = Vec::new();
        let mut last_rx = Instant::now();
        let mut buf = [0u8; 4096];
        let Ok(mut master) = pty.master_file() else {
            return;
        };
        while !stop.load(Ordering::SeqCst) {
            match pty::wait_readable(pty.master.as_raw_fd(), 50) {
                Ok(true) => {}
                Ok(false) => continue,
                Err(_) => {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                }
            }
            let n = match std::io::Read::read(&mut master, &mut buf) {
                Ok(0) | Err(_) => {
                    // No client has the port open (EIO): wait for one.
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                }
                Ok(n) => n,
            };
            let now = Instant::now();
            if now.duration_since(last_rx) > PACKET_TIMEOUT && !inbuf.is_empty() {
                if let Ok(mut s) = stats.lock() {
                    s.junk_bytes += inbuf.len() as u64;
                }
                inbuf.clear();
            }
            last_rx = now;
            inbuf.extend_from_slice(&buf[..n]);
            let mut out = Vec::new();
            let mut local = SimStats::default();
            loop {
                match wire::parse(self.protocol, &inbuf) {
                    Parsed::Packet(inst, len) => {
                        inbuf.drain(..len);
                        local.instructions += 1;
                        self.handle(&inst, &mut out, &mut local);
                    }
                    Parsed::Skip(k) => {
                        let k = k.min(inbuf.len());
                        local.junk_bytes += k as u64;
                        inbuf.drain(..k);
                    }
                    Parsed::NeedMore => break,
                }
            }
            if !out.is_empty() {
                let _ = master.write_all(&out);
            }
            if let Some(t) = self.trace.as_mut() {
                let _ = t.flush();
            }
            if let Ok(mut s) = stats.lock() {
                s.instructions += local.instructions;
                s.status_sent += local.status_sent;
                s.corrupted += local.corrupted;
                s.dropped += local.dropped;
                s.junk_bytes += local.junk_bytes;
            }
        }
    }

    fn advance(&mut self) {
        let now = Instant::now();
        let dt = now.duration_since(self.last).as_secs_f64();
        self.last = now;
        let t = now.duration_since(self.t0).as_secs_f64();
        let motion = match self.motion.load(Ordering::SeqCst) {
            0 => Motion::Sine,
            _ => Motion::Still,
        };
        for s in &mut self.servos {
            s.step(t, dt, motion);
        }
    }

    fn servo_index(&self, id: u8) -> Option<usize> {
        if self.absent.contains(&id) {
            return None;
        }
        self.servos.iter().position(|s| s.id() == id)
    }

    /// Queues a status packet, perhaps corrupting or dropping it; returns false when it went
    /// wrong.
    fn reply(
        &mut self,
        id: u8,
        error: u8,
        params: &[u8],
        out: &mut Vec<u8>,
        st: &mut SimStats,
    ) -> bool {
        let mut pkt = wire::status(self.protocol, id, error, params);
        if self.corrupt > 0.0 && self.rng.f64() < self.corrupt {
            if self.rng.bool() {
                st.dropped += 1;
                return false;
            }
            let i = self.rng.usize(0..pkt.len());
            pkt[i] ^= self.rng.u8(1..=255);
            st.corrupted += 1;
            out.extend_from_slice(&pkt);
            return false;
        }
        st.status_sent += 1;
        out.extend_from_slice(&pkt);
        true
    }

    fn handle(&mut self, inst: &Instruction, out: &mut Vec<u8>, st: &mut SimStats) {
        self.advance();
        let (addr_len, wide) = match self.protocol {
            Protocol::Feetech => (1usize, false),
            Protocol::Dynamixel => (2usize, true),
        };
        let word = |b: &[u8], i: usize| -> Option<u16> {
            if wide {
                Some(u16::from_le_bytes([*b.get(i)?, *b.get(i + 1)?]))
            } else {
                b.get(i).map(|&v| u16::from(v))
            }
        };
        let bad_instruction = match self.protocol {
            Protocol::Feetech => 0x40,
            Protocol::Dynamixel => 2,
        };
        match inst.inst {
            // Ping
            0x01 => {
                let ids: Vec<u8> = if inst.id == BROADCAST {
                    let mut v: Vec<u8> = self.servos.iter().map(|s| s.id()).collect();
                    v.sort_unstable();
                    v
                } else {
                    vec![inst.id]
                };
                for id in ids {
                    if let Some(i) = self.servo_index(id) {
                        let params = match self.protocol {
                            Protocol::Feetech => Vec::new(),
                            Protocol::Dynamixel => {
                                let s = &self.servos[i];
                                let m = s.model.model_number().to_le_bytes();
                                vec![m[0], m[1], s.mem[6]]
                            }
                        };
                        self.reply(id, 0, &params, out, st);
                    }
                }
            }
            // Read
            0x02 => {
                let (Some(addr), Some(len)) = (word(&inst.params, 0), word(&inst.params, addr_len))
                else {
                    return;
                };
                if inst.id == BROADCAST {
                    return;
                }
                if let Some(i) = self.servo_index(inst.id) {
                    match self.servos[i].read(addr, len) {
                        Some(data) => self.reply(inst.id, 0, &data, out, st),
                        None => self.reply(inst.id, servo::ERR_DATA_RANGE, &[], out, st),
                    };
                }
            }
            // Write
            0x03 => {
                let Some(addr) = word(&inst.params, 0) else {
                    return;
                };
                let data = inst.params[addr_len.min(inst.params.len())..].to_vec();
                let targets: Vec<usize> = if inst.id == BROADCAST {
                    (0..self.servos.len()).collect()
                } else {
                    self.servo_index(inst.id).into_iter().collect()
                };
                for i in targets {
                    let err = self.servos[i].write(addr, &data);
                    if inst.id != BROADCAST {
                        self.reply(inst.id, err, &[], out, st);
                    }
                }
            }
            // Sync read
            0x82 => {
                let (Some(addr), Some(len)) = (word(&inst.params, 0), word(&inst.params, addr_len))
                else {
                    return;
                };
                let ids = inst.params[(2 * addr_len).min(inst.params.len())..].to_vec();
                let mut ok = true;
                let mut values = Vec::new();
                let mut traced = true;
                for id in ids {
                    let Some(i) = self.servo_index(id) else {
                        ok = false;
                        continue;
                    };
                    traced &= self.servos[i].is_present_position(addr, len);
                    values.push(self.servos[i].present());
                    match self.servos[i].read(addr, len) {
                        Some(data) => ok &= self.reply(id, 0, &data, out, st),
                        None => {
                            ok &= self.reply(id, servo::ERR_DATA_RANGE, &[], out, st);
                        }
                    }
                }
                if traced && !values.is_empty() {
                    self.trace_line(&TraceLine::Present { ok, values });
                }
            }
            // Sync write
            0x83 => {
                let (Some(addr), Some(len)) = (word(&inst.params, 0), word(&inst.params, addr_len))
                else {
                    return;
                };
                let len = len as usize;
                let body = &inst.params[(2 * addr_len).min(inst.params.len())..];
                if len == 0 {
                    return;
                }
                let mut values = Vec::new();
                let mut traced = true;
                for chunk in body.chunks(len + 1) {
                    if chunk.len() != len + 1 {
                        break;
                    }
                    if let Some(i) = self.servo_index(chunk[0]) {
                        self.servos[i].write(addr, &chunk[1..]);
                        traced &= self.servos[i].is_goal_position(addr, len as u16);
                        values.push(self.servos[i].goal());
                    }
                }
                if traced && !values.is_empty() {
                    self.trace_line(&TraceLine::Goal { values });
                }
            }
            _ => {
                if inst.id != BROADCAST && self.servo_index(inst.id).is_some() {
                    self.reply(inst.id, bad_instruction, &[], out, st);
                }
            }
        }
    }

    fn trace_line(&mut self, line: &TraceLine) {
        let Some(t) = self.trace.as_mut() else {
            return;
        };
        let (head, values) = match line {
            TraceLine::Present { ok, values } => (if *ok { "P ok" } else { "P bad" }, values),
            TraceLine::Goal { values } => ("G", values),
        };
        let v: Vec<String> = values.iter().map(|x| x.to_string()).collect();
        let _ = writeln!(t, "{head} {}", v.join(" "));
    }
}
