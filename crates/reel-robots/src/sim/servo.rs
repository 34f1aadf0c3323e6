//! One simulated servo: its control table (EEPROM and RAM, factory values), the position it
//! reports given its homing offset, drive mode and operating mode, and a joint that moves
//! toward its goal while torque is on, or under a simulated hand (a sine) while it is off.

use crate::model::ServoModel;
use crate::sim::wire::Protocol;

/// Register addresses of one family (the ones the simulator gives meaning to).
#[derive(Debug, Clone, Copy)]
pub struct Table {
    pub model_number: u16,
    pub id: u16,
    pub homing_offset: (u16, u8),
    pub min_limit: (u16, u8),
    pub max_limit: (u16, u8),
    pub operating_mode: u16,
    pub drive_mode: Option<u16>,
    pub torque_enable: u16,
    pub goal_position: (u16, u8),
    pub present_position: (u16, u8),
    pub present_velocity: (u16, u8),
    pub moving: u16,
    /// Writes below this address go to EEPROM (Dynamixel refuses them while torque is on).
    pub eeprom_end: u16,
}

pub const FEETECH: Table = Table {
    model_number: 3,
    id: 5,
    homing_offset: (31, 2),
    min_limit: (9, 2),
    max_limit: (11, 2),
    operating_mode: 33,
    drive_mode: None,
    torque_enable: 40,
    goal_position: (42, 2),
    present_position: (56, 2),
    present_velocity: (58, 2),
    moving: 66,
    eeprom_end: 40,
};

pub const DYNAMIXEL: Table = Table {
    model_number: 0,
    id: 7,
    homing_offset: (20, 4),
    min_limit: (52, 4),
    max_limit: (48, 4),
    operating_mode: 11,
    drive_mode: Some(10),
    torque_enable: 64,
    goal_position: (116, 4),
    present_position: (132, 4),
    present_velocity: (128, 4),
    moving: 122,
    eeprom_end: 64,
};

/// Size of the simulated control table.
pub const MEM: usize = 256;

/// How joints move while their torque is off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Motion {
    /// A simulated hand moves each joint along its own sine (a leader arm being used, or a
    /// calibration sweep).
    Sine,
    /// Nobody touches the arm.
    Still,
}

/// The physical joint: `actual` is the encoder's raw angle in steps, before homing offset
/// and drive mode.
#[derive(Debug, Clone)]
pub struct Servo {
    pub model: ServoModel,
    pub table: Table,
    pub mem: [u8; MEM],
    actual: f64,
    velocity: f64,
    center: f64,
    amplitude: f64,
    freq: f64,
    phase: f64,
}

/// Dynamixel status error numbers.
pub const ERR_DATA_RANGE: u8 = 4;
pub const ERR_ACCESS: u8 = 7;

impl Servo {
    /// A servo at factory settings with id `id`, joint number `index` (0-based) of its arm.
    pub fn new(model: ServoModel, id: u8, index: usize) -> Servo {
        let table = match model.protocol() {
            Protocol::Feetech => FEETECH,
            Protocol::Dynamixel => DYNAMIXEL,
        };
        let mut s = Servo {
            model,
            table,
            mem: [0; MEM],
            actual: 0.0,
            velocity: 0.0,
            center: 2048.0 + 140.0 * index as f64 - 350.0,
            amplitude: if index == 5 {
                450.0
            } else {
                700.0 + 40.0 * index as f64
            },
            freq: 0.6 + 0.1 * index as f64,
            phase: 0.8 * index as f64,
        };
        s.actual = s.center;
        s.factory(id);
        s
    }

    fn factory(&mut self, id: u8) {
        let t = self.table;
        self.put(t.model_number, 2, i64::from(self.model.model_number()));
        self.mem[t.id as usize] = id;
        self.put(t.max_limit.0, t.max_limit.1, 4095);
        match self.model.protocol() {
            Protocol::Feetech => {
                self.mem[0] = 3; // firmware major
                self.mem[1] = 10; // firmware minor
                self.mem[7] = 250; // return delay (500 µs)
                self.mem[8] = 1; // response status level
                self.put(16, 2, 1000); // max torque
                self.mem[18] = 0x1C; // phase: bit 4 set, as shipped (LeRobot clears it)
                self.mem[21] = 32; // P
                self.mem[22] = 32; // D
                self.put(28, 2, 500); // protection current
                self.mem[36] = 80; // overload torque
                self.put(48, 2, 1000); // torque limit
                self.mem[62] = 120; // voltage
                self.mem[63] = 30; // temperature
            }
            Protocol::Dynamixel => {
                self.mem[6] = 46; // firmware version
                self.mem[8] = 3; // 1 Mbps
                self.mem[9] = 250;
                self.mem[11] = 3; // position mode
                self.mem[13] = 2; // protocol 2
                self.mem[68] = 2; // status return level
                self.put(84, 2, 800); // position P gain
                self.put(144, 2, 50); // input voltage
                self.mem[146] = 30;
            }
        }
        self.refresh(0.0);
    }

    pub fn id(&self) -> u8 {
        self.mem[self.table.id as usize]
    }

    /// Little-endian unsigned value of `len` bytes at `addr`.
    pub fn get(&self, addr: u16, len: u8) -> u64 {
        let a = addr as usize;
        let mut v = 0u64;
        for i in (0..len as usize).rev() {
            v = (v << 8) | u64::from(*self.mem.get(a + i).unwrap_or(&0));
        }
        v
    }

    /// Stores the low `len` bytes of `value` at `addr`, little-endian.
    pub fn put(&mut self, addr: u16, len: u8, value: i64) {
        let bytes = (value as u64).to_le_bytes();
        for (i, b) in bytes.iter().take(len as usize).enumerate() {
            if let Some(m) = self.mem.get_mut(addr as usize + i) {
                *m = *b;
            }
        }
    }

    fn homing_offset(&self) -> i64 {
        let (a, l) = self.table.homing_offset;
        let raw = self.get(a, l);
        match self.model.protocol() {
            Protocol::Feetech => sign_magnitude(raw, 11),
            Protocol::Dynamixel => raw as u32 as i32 as i64,
        }
    }

    fn signed(&self, (a, l): (u16, u8)) -> i64 {
        let raw = self.get(a, l);
        match self.model.protocol() {
            Protocol::Feetech => sign_magnitude(raw, 15),
            Protocol::Dynamixel => raw as u32 as i32 as i64,
        }
    }

    fn store_signed(&mut self, (a, l): (u16, u8), v: i64) {
        match self.model.protocol() {
            Protocol::Feetech => {
                let mag = v.unsigned_abs().min(0x7FFF) as i64;
                self.put(a, l, if v < 0 { mag | 0x8000 } else { mag })
            }
            Protocol::Dynamixel => self.put(a, l, v),
        }
    }

    pub fn torque_on(&self) -> bool {
        self.mem[self.table.torque_enable as usize] & 1 == 1
    }

    fn reversed(&self) -> bool {
        self.table
            .drive_mode
            .is_some_and(|a| self.mem[a as usize] & 1 == 1)
    }

    /// Dynamixel position mode (3) and every Feetech mode report one turn, 0..4095; the
    /// extended modes report the multi-turn count.
    fn wraps(&self) -> bool {
        match self.model.protocol() {
            Protocol::Feetech => true,
            Protocol::Dynamixel => self.mem[self.table.operating_mode as usize] == 3,
        }
    }

    /// The position the servo reports for the physical angle `actual`.
    fn present_for(&self, actual: f64) -> i64 {
        let a = actual.round() as i64;
        let p = match self.model.protocol() {
            // Feetech: Present = Actual - Homing_Offset.
            Protocol::Feetech => a - self.homing_offset(),
            // Dynamixel: Present = ±Actual + Homing_Offset.
            Protocol::Dynamixel => {
                let dir = if self.reversed() { -1 } else { 1 };
                dir * a + self.homing_offset()
            }
        };
        if self.wraps() {
            p.rem_euclid(4096)
        } else {
            p
        }
    }

    /// The physical angle a goal position asks for (nearest to where the joint is).
    fn actual_for_goal(&self, goal: i64) -> f64 {
        let (lo, hi) = (
            self.get(self.table.min_limit.0, self.table.min_limit.1) as i64,
            self.get(self.table.max_limit.0, self.table.max_limit.1) as i64,
        );
        let goal = if self.wraps() && lo < hi {
            goal.clamp(lo, hi)
        } else {
            goal
        };
        match self.model.protocol() {
            Protocol::Feetech => {
                let target = goal + self.homing_offset();
                let now = self.actual;
                let diff = (target as f64 - now).rem_euclid(4096.0);
                let diff = if diff > 2048.0 { diff - 4096.0 } else { diff };
                now + diff
            }
            Protocol::Dynamixel => {
                let dir = if self.reversed() { -1.0 } else { 1.0 };
                dir * (goal - self.homing_offset()) as f64
            }
        }
    }

    /// Advances the joint by `dt` seconds (session time `t`) and refreshes the read-only
    /// registers.
    pub fn step(&mut self, t: f64, dt: f64, motion: Motion) {
        let dt = dt.clamp(0.0, 0.5);
        let target = if self.torque_on() {
            let goal = self.signed(self.table.goal_position);
            self.actual_for_goal(goal)
        } else {
            match motion {
                Motion::Sine => {
                    self.center
                        + self.amplitude
                            * (2.0 * std::f64::consts::PI * self.freq * t + self.phase).sin()
                }
                Motion::Still => self.actual,
            }
        };
        if dt > 0.0 {
            // A 25 ms first-order lag, at most 3000 steps/s (about an STS3215's no-load speed).
            let alpha = 1.0 - (-dt / 0.025).exp();
            let vmax = 3000.0 * dt;
            let step = ((target - self.actual) * alpha).clamp(-vmax, vmax);
            self.actual += step;
            self.velocity = step / dt;
        }
        self.refresh(self.velocity);
    }

    fn refresh(&mut self, velocity: f64) {
        let p = self.present_for(self.actual);
        self.store_signed(self.table.present_position, p);
        self.store_signed(self.table.present_velocity, velocity.round() as i64);
        self.mem[self.table.moving as usize] = u8::from(velocity.abs() > 1.0);
    }

    /// Reads `len` bytes at `addr` (None when out of the table).
    pub fn read(&self, addr: u16, len: u16) -> Option<Vec<u8>> {
        let a = addr as usize;
        let e = a.checked_add(len as usize)?;
        (e <= MEM).then(|| self.mem[a..e].to_vec())
    }

    /// Writes `data` at `addr`; returns the protocol's error byte (0 when accepted).
    pub fn write(&mut self, addr: u16, data: &[u8]) -> u8 {
        let a = addr as usize;
        let Some(e) = a.checked_add(data.len()).filter(|&e| e <= MEM) else {
            return match self.model.protocol() {
                Protocol::Dynamixel => ERR_DATA_RANGE,
                Protocol::Feetech => 0x08,
            };
        };
        if self.model.protocol() == Protocol::Dynamixel
            && self.torque_on()
            && addr < self.table.eeprom_end
        {
            return ERR_ACCESS;
        }
        let was_on = self.torque_on();
        let old_present = self.signed(self.table.present_position);
        self.mem[a..e].copy_from_slice(data);
        if !was_on && self.torque_on() {
            // Torque on: the servo holds where it is (goal := present), as real ones do.
            self.store_signed(self.table.goal_position, old_present);
        }
        self.refresh(self.velocity);
        0
    }

    /// The present position register decoded as a client reads it.
    pub fn present(&self) -> i64 {
        self.signed(self.table.present_position)
    }

    /// The goal position register decoded.
    pub fn goal(&self) -> i64 {
        self.signed(self.table.goal_position)
    }

    /// True when the read of `(addr, len)` is the present position.
    pub fn is_present_position(&self, addr: u16, len: u16) -> bool {
        (addr, len as u8) == self.table.present_position
    }

    pub fn is_goal_position(&self, addr: u16, len: u16) -> bool {
        (addr, len as u8) == self.table.goal_position
    }
}

/// LeRobot's `decode_sign_magnitude`.
pub fn sign_magnitude(raw: u64, sign_bit: u32) -> i64 {
    let mag = (raw & ((1 << sign_bit) - 1)) as i64;
    if (raw >> sign_bit) & 1 == 1 {
        -mag
    } else {
        mag
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feetech_homing_offset_shifts_and_wraps() {
        let mut s = Servo::new(ServoModel::Sts3215, 1, 0);
        s.step(0.0, 0.0, Motion::Still);
        let p0 = s.present();
        // Homing offset -100 (sign-magnitude, bit 11): present = actual + 100.
        s.write(31, &[100, 0x08]);
        assert_eq!(s.present(), p0 + 100);
        assert_eq!(s.get(3, 2), 777);
    }

    #[test]
    fn dynamixel_refuses_eeprom_writes_with_torque_on_and_reverses() {
        let mut s = Servo::new(ServoModel::Xl330M077, 3, 2);
        s.write(11, &[4]); // extended position
        let p0 = s.present();
        s.write(10, &[1]); // reversed
        assert_eq!(s.present(), -p0);
        s.write(64, &[1]);
        assert_eq!(s.write(20, &[0, 0, 0, 0]), ERR_ACCESS);
        assert_eq!(s.goal(), -p0, "torque on holds the present position");
    }

    #[test]
    fn torque_on_follows_goal() {
        let mut s = Servo::new(ServoModel::Sts3215, 1, 1);
        s.write(40, &[1]);
        let g = s.present() + 300;
        s.write(42, &(g as u16).to_le_bytes());
        for i in 0..100 {
            s.step(i as f64 * 0.01, 0.01, Motion::Sine);
        }
        assert!((s.present() - g).abs() <= 1, "{} vs {g}", s.present());
    }
}
