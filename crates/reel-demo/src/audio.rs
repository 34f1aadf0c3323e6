//! The audio thread: reads any FFmpeg audio input, resamples it to 48 kHz stereo planar float
//! (swresample) and stamps every chunk with its place on the recorder's clock, so that audio
//! time equals wall time.
//!
//! * Inputs that are not live (`lavfi`, files) are read as fast as asked, so the thread paces
//!   them: a chunk starting at sample `k` is released when the clock reaches `t0 + k / 48000`.
//! * Live inputs (PulseAudio, ALSA, ...) pace themselves; a chunk of `n` samples arriving at
//!   `t` is placed at `t - n/48000` and then kept contiguous, re-anchored only when it drifts more
//!   than a tolerance from that estimate (buffered audio from before `t0`, device clock drift).
//!
//! A blocking read of a live device cannot be interrupted; the thread is therefore never joined
//! on stop. It notices the stop flag after its next read and exits on its own.

use std::ffi::CString;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use ff::format::Sample;
use ff::software::resampling;
use ff::ChannelLayout;
use ffmpeg_next as ff;
use reel_core::{monotonic_ns, Error, Result};

use crate::config::AudioInput;

/// Sample rate of everything after the resampler (and of the AAC stream).
pub(crate) const OUT_RATE: u32 = 48_000;

/// A piece of audio and where it belongs.
pub(crate) struct AudioChunk {
    /// Index (at [`OUT_RATE`], counted from `t0`) of the chunk's first sample; may be negative
    /// for audio captured before `t0`.
    pub pos: i64,
    /// Left and right channels, same length.
    pub planes: [Vec<f32>; 2],
}

pub(crate) enum AudioMsg {
    Chunk(AudioChunk),
    /// The input ended (a file); the recorder pads with silence from here.
    End,
    /// The input failed; the message names the input and the cause.
    Failed(String),
}

/// How far ahead of the clock a paced input is released.
const PACED_LEAD_NS: i128 = 100_000_000;

/// How long `start()` waits for the audio input to open.
const OPEN_TIMEOUT: Duration = Duration::from_secs(10);

/// Starts the audio thread; returns once the input is open (or failed to open). The thread
/// then waits for `t0` on `t0_rx` before reading.
pub(crate) fn spawn(
    input: AudioInput,
    stop: Arc<AtomicBool>,
    t0_rx: Receiver<u64>,
    tx: Sender<AudioMsg>,
) -> Result<JoinHandle<()>> {
    let (ready_tx, ready_rx) = crossbeam_channel::bounded::<Result<()>>(1);
    let name = input.input.clone();
    let thread_stop = stop.clone();
    let handle = std::thread::Builder::new()
        .name("reel-demo-audio".into())
        .spawn(move || {
            let mut reader = match Reader::open(&input) {
                Ok(r) => {
                    let _ = ready_tx.send(Ok(()));
                    r
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            let Ok(t0) = t0_rx.recv() else { return };
            if let Err(e) = reader.run(t0, &thread_stop, &tx) {
                tracing::error!("demo audio: {e}");
                let _ = tx.send(AudioMsg::Failed(e.to_string()));
            }
        })
        .map_err(|e| Error::media("demo audio", format!("cannot start thread: {e}")))?;
    match ready_rx.recv_timeout(OPEN_TIMEOUT) {
        Ok(Ok(())) => Ok(handle),
        Ok(Err(e)) => Err(e),
        Err(_) => {
            stop.store(true, Ordering::SeqCst);
            Err(Error::media(
                format!("audio input {name:?}"),
                format!("did not open within {} s", OPEN_TIMEOUT.as_secs()),
            ))
        }
    }
}

struct Reader {
    name: String,
    live: bool,
    ictx: ff::format::context::Input,
    stream: usize,
    decoder: ff::decoder::Audio,
    resampler: Option<(resampling::Context, (Sample, u64, u32))>,
    /// Position (at OUT_RATE) where the next chunk goes.
    next_pos: i64,
    anchored: bool,
}

impl Reader {
    fn open(input: &AudioInput) -> Result<Reader> {
        let name = input.input.clone();
        let err = |e: ff::Error| Error::media(format!("audio input {name:?}"), e);
        if name.contains('\0') {
            return Err(Error::invalid(format!(
                "audio input {name:?} contains a NUL byte"
            )));
        }
        let (fmt, url) = input.format_and_url();
        let ictx = match fmt {
            Some(fmt_name) => {
                let cname = CString::new(fmt_name).map_err(|e| Error::invalid(e.to_string()))?;
                // SAFETY: av_find_input_format only reads the NUL-terminated name.
                let ptr = unsafe { ff::ffi::av_find_input_format(cname.as_ptr()) };
                if ptr.is_null() {
                    return Err(Error::media(
                        format!("audio input {name:?}"),
                        format!("this FFmpeg has no `{fmt_name}` input device"),
                    ));
                }
                // SAFETY: ptr is a static AVInputFormat owned by libavformat.
                let format = unsafe { ff::format::format::Input::wrap(ptr as *mut _) };
                match ff::format::open_with(url, &ff::Format::Input(format), ff::Dictionary::new())
                    .map_err(err)?
                {
                    ff::format::context::Context::Input(i) => i,
                    ff::format::context::Context::Output(_) => {
                        return Err(Error::media(
                            format!("audio input {name:?}"),
                            "opened as an output",
                        ))
                    }
                }
            }
            None => ff::format::input(url).map_err(err)?,
        };
        let stream = ictx
            .streams()
            .best(ff::media::Type::Audio)
            .ok_or_else(|| Error::media(format!("audio input {name:?}"), "has no audio stream"))?;
        let index = stream.index();
        let decoder = ff::codec::context::Context::from_parameters(stream.parameters())
            .and_then(|c| c.decoder().audio())
            .map_err(err)?;
        Ok(Reader {
            name: name.clone(),
            live: input.is_live(),
            ictx,
            stream: index,
            decoder,
            resampler: None,
            next_pos: 0,
            anchored: false,
        })
    }

    fn run(&mut self, t0: u64, stop: &AtomicBool, tx: &Sender<AudioMsg>) -> Result<()> {
        let ctx = format!("audio input {:?}", self.name);
        while !stop.load(Ordering::SeqCst) {
            let mut pkt = ff::Packet::empty();
            match pkt.read(&mut self.ictx) {
                Ok(()) => {}
                Err(ff::Error::Eof) => {
                    self.decoder.send_eof().map_err(|e| Error::media(&ctx, e))?;
                    self.drain_decoder(t0, stop, tx)?;
                    let _ = tx.send(AudioMsg::End);
                    return Ok(());
                }
                Err(ff::Error::Other { errno }) if errno == libc::EAGAIN => {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                }
                Err(e) => return Err(Error::media(&ctx, format!("read failed: {e}"))),
            }
            if pkt.stream() != self.stream {
                continue;
            }
            self.decoder
                .send_packet(&pkt)
                .map_err(|e| Error::media(&ctx, format!("decode failed: {e}")))?;
            self.drain_decoder(t0, stop, tx)?;
        }
        Ok(())
    }

    fn drain_decoder(&mut self, t0: u64, stop: &AtomicBool, tx: &Sender<AudioMsg>) -> Result<()> {
        let mut decoded = ff::frame::Audio::empty();
        while self.decoder.receive_frame(&mut decoded).is_ok() {
            let planes = self.resample(&decoded)?;
            if planes[0].is_empty() {
                continue;
            }
            let Some(pos) = self.place(t0, planes[0].len(), stop) else {
                return Ok(());
            };
            if tx
                .send(AudioMsg::Chunk(AudioChunk { pos, planes }))
                .is_err()
            {
                // The recorder is gone; nothing left to do.
                stop.store(true, Ordering::SeqCst);
                return Ok(());
            }
        }
        Ok(())
    }

    /// Chooses the chunk's position; for paced inputs, waits until the clock reaches it.
    /// `None` when stopped while waiting.
    fn place(&mut self, t0: u64, n: usize, stop: &AtomicBool) -> Option<i64> {
        let rate = OUT_RATE as i64;
        if !self.live {
            let pos = self.next_pos;
            // Released slightly ahead of the clock, so that at stop the audio up to the last
            // video frame is already there (the recorder cuts what lies beyond).
            let due = t0 as i128 + pos as i128 * 1_000_000_000 / rate as i128 - PACED_LEAD_NS;
            loop {
                if stop.load(Ordering::SeqCst) {
                    return None;
                }
                let now = monotonic_ns() as i128;
                if now >= due {
                    break;
                }
                std::thread::sleep(Duration::from_nanos(((due - now) as u64).min(20_000_000)));
            }
            self.next_pos += n as i64;
            return Some(pos);
        }
        let now = monotonic_ns() as i128;
        let arrival = ((now - t0 as i128) * rate as i128 / 1_000_000_000) as i64;
        let estimate = arrival - n as i64;
        let tolerance = (rate * 40 / 1000).max(n as i64 * 3 / 2);
        if !self.anchored || (estimate - self.next_pos).abs() > tolerance {
            if self.anchored {
                tracing::debug!(
                    "demo audio {:?}: re-anchored by {} samples",
                    self.name,
                    estimate - self.next_pos
                );
            }
            self.next_pos = estimate;
            self.anchored = true;
        }
        let pos = self.next_pos;
        self.next_pos += n as i64;
        Some(pos)
    }

    fn resample(&mut self, frame: &ff::frame::Audio) -> Result<[Vec<f32>; 2]> {
        let ctx = || format!("audio input {:?}: resampling", self.name);
        let mut layout = frame.channel_layout();
        if layout.is_empty() || layout.channels() != frame.channels() as i32 {
            layout = ChannelLayout::default(frame.channels() as i32);
        }
        let key = (frame.format(), layout.bits(), frame.rate());
        let rebuild = match &self.resampler {
            Some((_, k)) => *k != key,
            None => true,
        };
        if rebuild {
            let r = resampling::Context::get(
                frame.format(),
                layout,
                frame.rate(),
                Sample::F32(ff::format::sample::Type::Planar),
                ChannelLayout::STEREO,
                OUT_RATE,
            )
            .map_err(|e| Error::media(ctx(), e))?;
            self.resampler = Some((r, key));
        }
        let Some((resampler, _)) = self.resampler.as_mut() else {
            return Err(Error::media(ctx(), "no resampler"));
        };
        let in_rate = frame.rate().max(1) as usize;
        let capacity = frame.samples() * OUT_RATE as usize / in_rate + 256;
        let mut out = ff::frame::Audio::new(
            Sample::F32(ff::format::sample::Type::Planar),
            capacity,
            ChannelLayout::STEREO,
        );
        resampler
            .run(frame, &mut out)
            .map_err(|e| Error::media(ctx(), e))?;
        let n = out.samples();
        if n == 0 {
            return Ok([Vec::new(), Vec::new()]);
        }
        let left = out.plane::<f32>(0)[..n].to_vec();
        let right = out.plane::<f32>(1)[..n].to_vec();
        Ok([left, right])
    }
}

/// The audio input as a side stream of a recording (`reel record --audio-stream`): every
/// sample at 48 kHz, stereo float (`width` 2: left, right), each stamped `t0 + k / 48000` on
/// the frames' clock (`t0` = when the stream started; a live input anchored to its arrival
/// as the demo video's audio is). Stops when dropped (the reader thread exits after its next
/// read, as for the demo video).
pub struct AudioStream {
    stop: Arc<AtomicBool>,
}

/// Sample rate of [`AudioStream`]'s samples.
pub const STREAM_RATE: u32 = OUT_RATE;

impl AudioStream {
    /// Opens `input` (as `--demo-audio`: `lavfi:sine=...`, `pulse:default`, `alsa:hw:0`, a
    /// file) and starts sending its samples to `sender`; an error names the input when it
    /// does not open.
    pub fn start(input: &str, sender: reel_record::samples::StreamSender) -> Result<AudioStream> {
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = crossbeam_channel::unbounded::<AudioMsg>();
        let (t0_tx, t0_rx) = crossbeam_channel::bounded::<u64>(1);
        spawn(AudioInput::new(input), stop.clone(), t0_rx, tx)?;
        let t0 = monotonic_ns();
        let name = input.to_string();
        let forward_stop = stop.clone();
        std::thread::Builder::new()
            .name("reel-audio-stream".into())
            .spawn(move || forward(&name, t0, &rx, &sender, &forward_stop))
            .map_err(|e| Error::media("audio stream", format!("cannot start thread: {e}")))?;
        let _ = t0_tx.send(t0);
        Ok(AudioStream { stop })
    }
}

impl Drop for AudioStream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Chunks → stream blocks (interleaved stereo, one time per sample).
fn forward(
    name: &str,
    t0: u64,
    rx: &Receiver<AudioMsg>,
    sender: &reel_record::samples::StreamSender,
    stop: &AtomicBool,
) {
    use reel_record::samples::{SampleBlock, SampleData};
    let rate = OUT_RATE as i128;
    // A live input re-anchored backwards (its clock ran ahead) would overlap what was sent:
    // those samples are dropped (logged), so the stream's times never go back.
    let mut last = -1i64;
    while let Ok(msg) = rx.recv() {
        match msg {
            AudioMsg::Chunk(c) => {
                let n = c.planes[0].len().min(c.planes[1].len());
                let t_ns: Vec<i64> = (0..n as i64)
                    .map(|k| (t0 as i128 + (c.pos + k) as i128 * 1_000_000_000 / rate) as i64)
                    .collect();
                let mut v = Vec::with_capacity(2 * n);
                for k in 0..n {
                    v.push(c.planes[0][k]);
                    v.push(c.planes[1][k]);
                }
                // Audio from before t0 (a live device's buffer) may stamp before 0 at boot.
                let first = t_ns.partition_point(|&t| t <= last.max(-1));
                if first > 0 && last >= 0 {
                    tracing::debug!(
                        "audio stream {name:?}: {first} overlapping sample(s) after a re-anchor dropped"
                    );
                }
                if first == n {
                    continue;
                }
                last = t_ns[n - 1];
                let block = SampleBlock {
                    t_ns: t_ns[first..].to_vec(),
                    data: SampleData::F32(v[2 * first..].to_vec()),
                };
                if !sender.send(block) {
                    stop.store(true, Ordering::SeqCst);
                    return;
                }
            }
            AudioMsg::End => {
                tracing::info!("audio stream {name:?}: the input ended");
                return;
            }
            AudioMsg::Failed(e) => {
                tracing::error!("audio stream {name:?}: {e}");
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_inputs() {
        assert_eq!(
            AudioInput::new("lavfi:sine=frequency=1000").format_and_url(),
            (Some("lavfi"), "sine=frequency=1000")
        );
        assert_eq!(
            AudioInput::new("alsa:hw:0").format_and_url(),
            (Some("alsa"), "hw:0")
        );
        assert_eq!(
            AudioInput::new("pulse:default").format_and_url(),
            (Some("pulse"), "default")
        );
        assert_eq!(
            AudioInput::new("/tmp/a.wav").format_and_url(),
            (None, "/tmp/a.wav")
        );
        assert!(AudioInput::new("pulse:default").is_live());
        assert!(!AudioInput::new("lavfi:sine").is_live());
    }

    #[test]
    fn missing_file_is_a_clear_error() {
        ff::init().unwrap();
        let e = Reader::open(&AudioInput::new("/nonexistent/reel-demo.wav"))
            .err()
            .unwrap();
        assert!(e.to_string().contains("/nonexistent/reel-demo.wav"), "{e}");
    }
}
