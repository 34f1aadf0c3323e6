//! A pool of reusable frame buffers, for front ends that must copy frames they do not own
//! (the Python module copies each numpy image once, since Python may reuse the array).
//!
//! The pool keeps the [`SharedFrame`]s it hands out. A frame whose every other holder (the
//! camera queue, the encoder) has dropped it is free again, and the next [`FramePool::fill`]
//! of that size writes into it in place: no allocation, no page faults, and the most recently
//! freed buffer (the cache-warm one) is taken first. When every pooled frame is still in use
//! a new one is allocated; the pool keeps at most `capacity` frames, so a burst that outgrows
//! it costs allocations, never memory held forever.

use crate::frame::{monotonic_ns, SharedFrame, VideoFrame};
use std::sync::Arc;

/// Reusable RGB24 frames of any size (see the module doc). Not shared between threads: each
/// producer owns its pool (one per camera is the usual shape).
#[derive(Debug, Default)]
pub struct FramePool {
    frames: Vec<SharedFrame>,
    capacity: usize,
    allocated: u64,
}

impl FramePool {
    /// A pool that keeps at most `capacity` frames (at least 1).
    pub fn new(capacity: usize) -> FramePool {
        FramePool {
            frames: Vec::new(),
            capacity: capacity.max(1),
            allocated: 0,
        }
    }

    /// A frame of `width`x`height` whose pixels `write` fills (it receives the whole
    /// `width*height*3` byte buffer, HWC). The frame is stamped with `captured_ns` and `seq`.
    /// `write` may fail; the buffer then goes back to the pool unused.
    pub fn fill<E>(
        &mut self,
        width: u32,
        height: u32,
        captured_ns: u64,
        seq: u64,
        write: impl FnOnce(&mut [u8]) -> Result<(), E>,
    ) -> Result<SharedFrame, E> {
        self.fill_px(width, height, 3, captured_ns, seq, write)
    }

    /// [`fill`](Self::fill) for a depth camera: the buffer is `width*height*2` bytes, uint16
    /// millimetres little-endian.
    pub fn fill_depth<E>(
        &mut self,
        width: u32,
        height: u32,
        captured_ns: u64,
        seq: u64,
        write: impl FnOnce(&mut [u8]) -> Result<(), E>,
    ) -> Result<SharedFrame, E> {
        self.fill_px(width, height, 2, captured_ns, seq, write)
    }

    fn fill_px<E>(
        &mut self,
        width: u32,
        height: u32,
        bytes_per_pixel: usize,
        captured_ns: u64,
        seq: u64,
        write: impl FnOnce(&mut [u8]) -> Result<(), E>,
    ) -> Result<SharedFrame, E> {
        let len = width as usize * height as usize * bytes_per_pixel;
        // Most recently returned first: the pool is a stack and the newest entries sit last.
        let free = self.frames.iter_mut().rev().position(|f| {
            Arc::get_mut(f)
                .is_some_and(|v| v.width == width && v.height == height && v.data.len() == len)
        });
        let mut frame = match free {
            Some(pos_from_end) => {
                let i = self.frames.len() - 1 - pos_from_end;
                self.frames.remove(i)
            }
            None => {
                self.allocated += 1;
                Arc::new(VideoFrame {
                    width,
                    height,
                    data: vec![0u8; len],
                    captured_ns: monotonic_ns(),
                    seq: 0,
                })
            }
        };
        let Some(v) = Arc::get_mut(&mut frame) else {
            // Unreachable: a frame is taken only when nobody else holds it, and a fresh one is
            // ours alone. Allocate rather than fail.
            return self.fill_fresh(width, height, len, captured_ns, seq, write);
        };
        if let Err(e) = write(&mut v.data) {
            self.put_back(frame);
            return Err(e);
        }
        v.captured_ns = captured_ns;
        v.seq = seq;
        self.put_back(frame.clone());
        Ok(frame)
    }

    fn fill_fresh<E>(
        &mut self,
        width: u32,
        height: u32,
        len: usize,
        captured_ns: u64,
        seq: u64,
        write: impl FnOnce(&mut [u8]) -> Result<(), E>,
    ) -> Result<SharedFrame, E> {
        let mut data = vec![0u8; len];
        write(&mut data)?;
        self.allocated += 1;
        Ok(Arc::new(VideoFrame {
            width,
            height,
            data,
            captured_ns,
            seq,
        }))
    }

    /// Keeps `frame` for reuse (newest last), dropping the oldest free frame, or the oldest
    /// one if none is free, beyond the capacity.
    fn put_back(&mut self, frame: SharedFrame) {
        self.frames.push(frame);
        while self.frames.len() > self.capacity {
            let i = self
                .frames
                .iter()
                .position(|f| Arc::strong_count(f) == 1)
                .unwrap_or(0);
            self.frames.remove(i);
        }
    }

    /// Frames the pool holds (free or in use).
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// True when the pool holds no frame.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Buffers allocated since the pool was made (reuse keeps this flat).
    pub fn allocations(&self) -> u64 {
        self.allocated
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fill(pool: &mut FramePool, w: u32, h: u32, v: u8) -> SharedFrame {
        pool.fill(w, h, 7, 1, |b| {
            b.fill(v);
            Ok::<(), ()>(())
        })
        .unwrap()
    }

    #[test]
    fn a_dropped_frame_is_reused_in_place() {
        let mut pool = FramePool::new(4);
        let a = fill(&mut pool, 4, 2, 1);
        let ptr = a.data.as_ptr();
        assert_eq!(a.data, vec![1; 24]);
        assert_eq!((a.captured_ns, a.seq), (7, 1));
        drop(a);
        let b = fill(&mut pool, 4, 2, 9);
        assert_eq!(b.data.as_ptr(), ptr, "the freed buffer is written in place");
        assert_eq!(b.data, vec![9; 24]);
        assert_eq!(pool.allocations(), 1);
    }

    #[test]
    fn frames_in_use_are_never_overwritten() {
        let mut pool = FramePool::new(8);
        let held: Vec<SharedFrame> = (0..5).map(|i| fill(&mut pool, 2, 2, i)).collect();
        for (i, f) in held.iter().enumerate() {
            assert_eq!(f.data, vec![i as u8; 12]);
        }
        assert_eq!(pool.allocations(), 5);
        // Another size never takes a buffer of the wrong size.
        let other = fill(&mut pool, 4, 4, 3);
        assert_eq!(other.data.len(), 48);
        assert_eq!(pool.allocations(), 6);
    }

    #[test]
    fn the_pool_stays_within_its_capacity() {
        let mut pool = FramePool::new(3);
        let held: Vec<SharedFrame> = (0..6).map(|i| fill(&mut pool, 2, 2, i)).collect();
        assert_eq!(pool.len(), 3);
        // Frames the pool let go of are still valid for their holders.
        assert_eq!(held[0].data, vec![0; 12]);
        drop(held);
        let _ = fill(&mut pool, 2, 2, 1);
        assert_eq!(pool.allocations(), 6, "a freed pooled frame was reused");
    }

    #[test]
    fn a_failed_write_returns_the_buffer() {
        let mut pool = FramePool::new(2);
        let e = pool.fill(2, 2, 0, 0, |_| Err::<(), &str>("bad"));
        assert_eq!(e.unwrap_err(), "bad");
        let _ = fill(&mut pool, 2, 2, 5);
        assert_eq!(pool.allocations(), 1);
    }
}
