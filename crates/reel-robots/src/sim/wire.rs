//! The servo side of the two wire protocols: finding instruction packets in a byte stream
//! (resynchronising past anything that does not frame one) and building status packets.
//!
//! Client-side framing is rustypot's job; no crate speaks the servo side, so this is the one
//! place reel frames packets by hand. It is fed bytes from a pseudo-terminal that anyone can
//! write to, so every function here takes any input without panicking (fuzzed in the tests).
//!
//! * Feetech SCS/STS ("protocol 0", the Dynamixel 1.0 framing): `FF FF id len inst params… chk`,
//!   `len = params + 2`, `chk = !(id + len + inst + params…)`.
//! * Dynamixel 2.0: `FF FF FD 00 id lenL lenH inst params… crcL crcH`, `len = params + 3`,
//!   CRC-16 (poly 0x8005) over everything before it, with byte stuffing (`FF FF FD` in the
//!   payload is followed by an extra `FD`).

/// Which framing a bus speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// Feetech STS/SCS (SO-100/101): Dynamixel 1.0 framing, little-endian words.
    Feetech,
    /// Dynamixel 2.0 (Koch: XL330, XL430).
    Dynamixel,
}

impl Protocol {
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Feetech => "feetech",
            Protocol::Dynamixel => "dynamixel",
        }
    }
}

/// The broadcast id of both protocols.
pub const BROADCAST: u8 = 0xFE;

/// One instruction packet, as the servos see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instruction {
    pub id: u8,
    pub inst: u8,
    pub params: Vec<u8>,
}

/// Result of looking for a packet at the start of a buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// A whole, valid packet of `len` bytes.
    Packet(Instruction, usize),
    /// The buffer starts like a packet but is not complete yet.
    NeedMore,
    /// The first `n` bytes cannot start a valid packet: drop them.
    Skip(usize),
}

/// Largest instruction accepted (Feetech's length byte caps it at 255; Dynamixel's 16-bit
/// length could announce 64 KiB, which no servo buffers).
const MAX_DXL_LEN: usize = 1024;

/// Looks for one instruction packet at the start of `buf`.
pub fn parse(protocol: Protocol, buf: &[u8]) -> Parsed {
    match protocol {
        Protocol::Feetech => parse_v1(buf),
        Protocol::Dynamixel => parse_v2(buf),
    }
}

fn header_skip(buf: &[u8], header: &[u8]) -> Option<Parsed> {
    // Skip up to the next possible header start.
    let n = buf.len().min(header.len());
    if buf[..n] != header[..n] {
        let next = buf
            .iter()
            .skip(1)
            .position(|&b| b == header[0])
            .map(|p| p + 1)
            .unwrap_or(buf.len());
        return Some(Parsed::Skip(next.max(1)));
    }
    if buf.len() < header.len() {
        return Some(Parsed::NeedMore);
    }
    None
}

fn parse_v1(buf: &[u8]) -> Parsed {
    if buf.is_empty() {
        return Parsed::NeedMore;
    }
    if let Some(p) = header_skip(buf, &[0xFF, 0xFF]) {
        return p;
    }
    if buf.len() < 4 {
        return Parsed::NeedMore;
    }
    let id = buf[2];
    let len = buf[3] as usize;
    if id == 0xFF || len < 2 {
        return Parsed::Skip(1);
    }
    let total = 4 + len;
    if buf.len() < total {
        return Parsed::NeedMore;
    }
    let sum: u32 = buf[2..total - 1].iter().map(|&b| u32::from(b)).sum();
    if (!sum as u8) != buf[total - 1] {
        return Parsed::Skip(1);
    }
    Parsed::Packet(
        Instruction {
            id,
            inst: buf[4],
            params: buf[5..total - 1].to_vec(),
        },
        total,
    )
}

fn parse_v2(buf: &[u8]) -> Parsed {
    if buf.is_empty() {
        return Parsed::NeedMore;
    }
    if let Some(p) = header_skip(buf, &[0xFF, 0xFF, 0xFD, 0x00]) {
        return p;
    }
    if buf.len() < 7 {
        return Parsed::NeedMore;
    }
    let id = buf[4];
    let len = usize::from(u16::from_le_bytes([buf[5], buf[6]]));
    if id == 0xFF || id == 0xFD || !(3..=MAX_DXL_LEN).contains(&len) {
        return Parsed::Skip(1);
    }
    let total = 7 + len;
    if buf.len() < total {
        return Parsed::NeedMore;
    }
    let crc = crc16(&buf[..total - 2]);
    if crc.to_le_bytes() != [buf[total - 2], buf[total - 1]] {
        return Parsed::Skip(1);
    }
    Parsed::Packet(
        Instruction {
            id,
            inst: buf[7],
            params: unstuff(&buf[8..total - 2]),
        },
        total,
    )
}

/// A status packet from servo `id` with error byte `error` and `params`.
pub fn status(protocol: Protocol, id: u8, error: u8, params: &[u8]) -> Vec<u8> {
    match protocol {
        Protocol::Feetech => {
            let len = (params.len() + 2).min(255) as u8;
            let mut p = vec![0xFF, 0xFF, id, len, error];
            p.extend_from_slice(&params[..params.len().min(253)]);
            let sum: u32 = p[2..].iter().map(|&b| u32::from(b)).sum();
            p.push(!sum as u8);
            p
        }
        Protocol::Dynamixel => {
            let mut payload = vec![0x55, error];
            payload.extend_from_slice(params);
            let payload = stuff(&payload);
            let len = (payload.len() + 2) as u16;
            let mut p = vec![0xFF, 0xFF, 0xFD, 0x00, id];
            p.extend_from_slice(&len.to_le_bytes());
            p.extend_from_slice(&payload);
            let crc = crc16(&p);
            p.extend_from_slice(&crc.to_le_bytes());
            p
        }
    }
}

/// An instruction packet (the client side: used by the tests and fuzzers to talk to the
/// simulator without rustypot).
pub fn instruction(protocol: Protocol, id: u8, inst: u8, params: &[u8]) -> Vec<u8> {
    match protocol {
        Protocol::Feetech => {
            let mut p = vec![0xFF, 0xFF, id, (params.len() + 2).min(255) as u8, inst];
            p.extend_from_slice(&params[..params.len().min(253)]);
            let sum: u32 = p[2..].iter().map(|&b| u32::from(b)).sum();
            p.push(!sum as u8);
            p
        }
        Protocol::Dynamixel => {
            let mut payload = vec![inst];
            payload.extend_from_slice(params);
            let payload = stuff(&payload);
            let mut p = vec![0xFF, 0xFF, 0xFD, 0x00, id];
            p.extend_from_slice(&((payload.len() + 2) as u16).to_le_bytes());
            p.extend_from_slice(&payload);
            let crc = crc16(&p);
            p.extend_from_slice(&crc.to_le_bytes());
            p
        }
    }
}

/// Dynamixel 2.0 byte stuffing: `FF FF FD` → `FF FF FD FD`.
fn stuff(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 2);
    for &b in data {
        out.push(b);
        let n = out.len();
        if n >= 3 && out[n - 3..] == [0xFF, 0xFF, 0xFD] {
            out.push(0xFD);
        }
    }
    out
}

/// Undoes [`stuff`].
fn unstuff(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    let mut i = 0;
    while i < data.len() {
        out.push(data[i]);
        let n = out.len();
        if n >= 3 && out[n - 3..] == [0xFF, 0xFF, 0xFD] && data.get(i + 1) == Some(&0xFD) {
            i += 1;
        }
        i += 1;
    }
    out
}

/// CRC-16 of Dynamixel protocol 2.0 (CRC-16/BUYPASS: poly 0x8005, init 0, no reflection).
pub fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &b in data {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x8005
            } else {
                crc << 1
            };
        }
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_matches_the_e_manual_example() {
        // Ping of id 1 from the Dynamixel 2.0 e-manual: CRC 0x4E19 (bytes 19 4E).
        let p = [0xFF, 0xFF, 0xFD, 0x00, 0x01, 0x03, 0x00, 0x01];
        assert_eq!(crc16(&p), 0x4E19);
    }

    #[test]
    fn round_trips_both_protocols_with_stuffing() {
        for proto in [Protocol::Feetech, Protocol::Dynamixel] {
            let params = vec![0xFF, 0xFF, 0xFD, 0x01, 0x02];
            let bytes = instruction(proto, 3, 0x03, &params);
            match parse(proto, &bytes) {
                Parsed::Packet(i, n) => {
                    assert_eq!(n, bytes.len());
                    assert_eq!(i.id, 3);
                    assert_eq!(i.inst, 0x03);
                    assert_eq!(i.params, params);
                }
                other => panic!("{proto:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn resyncs_past_garbage_and_waits_for_more() {
        let mut bytes = vec![0x00, 0x13, 0xFF];
        let pkt = instruction(Protocol::Feetech, 1, 1, &[]);
        bytes.extend_from_slice(&pkt);
        let mut off = 0;
        loop {
            match parse(Protocol::Feetech, &bytes[off..]) {
                Parsed::Skip(n) => off += n,
                Parsed::Packet(i, n) => {
                    assert_eq!(i.id, 1);
                    assert_eq!(off + n, bytes.len());
                    break;
                }
                Parsed::NeedMore => panic!("stuck at {off}"),
            }
        }
        assert_eq!(
            parse(Protocol::Dynamixel, &[0xFF, 0xFF, 0xFD]),
            Parsed::NeedMore
        );
    }

    /// Byte-flip and random-junk fuzzing: never panics, never loops (each step consumes or
    /// asks for more), and a corrupted packet is never accepted as a different valid one with
    /// the same length unless its checksum happens to match.
    #[test]
    fn fuzz_parser_never_panics() {
        let mut rng = fastrand::Rng::with_seed(0x5EED);
        for proto in [Protocol::Feetech, Protocol::Dynamixel] {
            for _ in 0..20_000 {
                let n = rng.usize(0..40);
                let params: Vec<u8> = (0..n).map(|_| rng.u8(..)).collect();
                let mut bytes = instruction(proto, rng.u8(0..0xFE), rng.u8(..), &params);
                match rng.u8(0..4) {
                    0 => {
                        let i = rng.usize(0..bytes.len());
                        bytes[i] ^= rng.u8(1..=255);
                    }
                    1 => bytes.truncate(rng.usize(0..bytes.len())),
                    2 => bytes = (0..rng.usize(0..64)).map(|_| rng.u8(..)).collect(),
                    _ => {
                        let i = rng.usize(0..=bytes.len());
                        bytes.insert(i, rng.u8(..));
                    }
                }
                let mut off = 0;
                let mut steps = 0;
                while off < bytes.len() {
                    steps += 1;
                    assert!(steps <= bytes.len() + 1, "no progress");
                    match parse(proto, &bytes[off..]) {
                        Parsed::Skip(k) => {
                            assert!(k >= 1);
                            off += k
                        }
                        Parsed::Packet(_, k) => {
                            assert!(k >= 1);
                            off += k
                        }
                        Parsed::NeedMore => break,
                    }
                }
            }
        }
    }
}
