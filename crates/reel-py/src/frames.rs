//! One frame dict's values into the library's [`Value`]s.
//!
//! Numbers: a numpy array (or a torch CPU tensor, through `.numpy()`) of exactly the
//! feature's dtype and shape, as LeRobot's `validate_frame` requires. Strings: `str`.
//!
//! Images: numpy arrays, torch tensors or anything `numpy.asarray` takes (PIL images), HWC
//! `(h, w, 3)` or CHW `(3, h, w)`, `uint8`, or float in `[0, 1]` (converted as LeRobot does:
//! `(x * 255).astype(uint8)`). Every image is **copied** once into a frame of the camera's
//! [`FramePool`] (a reused buffer: no allocation in steady state), because Python may write
//! into the array again as soon as `add_frame` returns (camera drivers reuse buffers;
//! LeRobot copies for the same reason). Copies of 256 KiB and more run with the GIL released.
//! The exception is an image straight from a reel camera ([`camera_frame`]): a read-only view of
//! a buffer nobody writes again, passed on as it is.

use crate::camera::CapturedFrame;
use crate::errors::value_error;
use numpy::ndarray::{ArrayView3, Axis, Ix3};
use numpy::{PyArrayDyn, PyArrayMethods, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::prelude::*;
use pyo3::types::PyString;
use reel_core::{Dtype, Feature, FramePool, SharedFrame, Value};

/// Copies at least this large release the GIL while they run.
const DETACH_BYTES: usize = 256 * 1024;

/// `obj` as a numpy array: arrays as they are, torch tensors through `.numpy()` (after
/// `.detach().cpu()` when needed), anything else through `numpy.asarray`.
fn to_array<'py>(obj: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyUntypedArray>> {
    if let Ok(a) = obj.cast::<PyUntypedArray>() {
        return Ok(a.clone());
    }
    let py = obj.py();
    let arr = if obj.hasattr("numpy")? && obj.hasattr("cpu")? {
        match obj.call_method0("numpy") {
            Ok(a) => a,
            Err(_) => obj
                .call_method0("detach")?
                .call_method0("cpu")?
                .call_method0("numpy")?,
        }
    } else {
        py.import("numpy")?.getattr("asarray")?.call1((obj,))?
    };
    arr.cast_into::<PyUntypedArray>().map_err(|e| {
        value_error(format!(
            "cannot read {} as an array",
            e.into_inner().get_type()
        ))
    })
}

fn shape_str(s: &[usize]) -> String {
    match s {
        [one] => format!("({one},)"),
        _ => format!(
            "({})",
            s.iter()
                .map(|x| x.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn dtype_str(a: &Bound<'_, PyUntypedArray>) -> String {
    a.dtype().to_string()
}

/// A numeric or string feature's value.
pub(crate) fn value(name: &str, f: &Feature, obj: &Bound<'_, PyAny>) -> PyResult<Value> {
    if f.dtype == Dtype::String {
        return obj
            .cast::<PyString>()
            .map(|s| Value::Str(s.to_string()))
            .map_err(|_| {
                value_error(format!(
                    "The feature '{name}' is expected to be of type 'str', but type '{}' provided instead.",
                    obj.get_type()
                ))
            });
    }
    let arr = to_array(obj)?;
    if arr.shape() != f.shape.as_slice() {
        return Err(value_error(format!(
            "The feature '{name}' of shape '{}' does not have the expected shape '{}'.",
            shape_str(arr.shape()),
            shape_str(&f.shape)
        )));
    }
    let wrong = || {
        value_error(format!(
            "The feature '{name}' of dtype '{}' is not of the expected dtype '{}'.",
            dtype_str(&arr),
            f.dtype.as_str()
        ))
    };
    Ok(match f.dtype {
        Dtype::Float32 => Value::F32(collect::<f32>(&arr).ok_or_else(wrong)?),
        Dtype::Float64 => Value::F64(collect::<f64>(&arr).ok_or_else(wrong)?),
        Dtype::Int64 => Value::I64(collect::<i64>(&arr).ok_or_else(wrong)?),
        Dtype::Bool => Value::Bool(collect::<bool>(&arr).ok_or_else(wrong)?),
        Dtype::String | Dtype::Video => {
            return Err(value_error(format!("feature '{name}' is not a number")))
        }
    })
}

/// The elements of `arr` in logical order when its dtype is exactly `T`.
fn collect<T: numpy::Element + Copy>(arr: &Bound<'_, PyUntypedArray>) -> Option<Vec<T>> {
    let typed = arr.cast::<PyArrayDyn<T>>().ok()?;
    let ro = typed.try_readonly().ok()?;
    Some(ro.as_array().iter().copied().collect())
}

/// The frame itself when `obj` is a whole, untouched array returned by a reel camera
/// (`reel._reel.Camera`): a read-only view whose base is the [`CapturedFrame`] owning the
/// pixels, of the feature's `(h, w, 3)` shape, C-contiguous, starting at the frame's first
/// byte. Such an image is handed on without a copy (the buffer is never written again). Any
/// other array (a slice, a transposed or re-typed view, a user's array) gives `None` and goes
/// through [`image`]'s pooled copy.
pub(crate) fn camera_frame(obj: &Bound<'_, PyAny>, height: u32, width: u32) -> Option<SharedFrame> {
    let arr = obj.cast::<PyUntypedArray>().ok()?;
    let base = arr.getattr("base").ok()?;
    let owner = base.cast::<CapturedFrame>().ok()?;
    let frame = &owner.get().frame;
    let (h, w) = (height as usize, width as usize);
    if frame.height != height || frame.width != width || arr.shape() != [h, w, 3] {
        return None;
    }
    if !arr.is_c_contiguous() {
        return None;
    }
    let typed = arr.cast::<PyArrayDyn<u8>>().ok()?;
    // The data pointer of a live array (compared, never dereferenced here).
    let data = typed.data() as *const u8;
    (data == frame.data.as_ptr()).then(|| std::sync::Arc::clone(frame))
}

/// A camera's image, copied into a frame of `pool` (see the module doc).
pub(crate) fn image(
    name: &str,
    height: u32,
    width: u32,
    obj: &Bound<'_, PyAny>,
    pool: &mut FramePool,
    captured_ns: u64,
    seq: u64,
) -> PyResult<SharedFrame> {
    let py = obj.py();
    let arr = to_array(obj)?;
    let (h, w) = (height as usize, width as usize);
    let shape = arr.shape();
    let chw = if shape == [h, w, 3] {
        false
    } else if shape == [3, h, w] {
        true
    } else {
        return Err(value_error(format!(
            "The feature '{name}' of shape '{}' does not have the expected shape '{}' or '{}'.",
            shape_str(shape),
            shape_str(&[3, h, w]),
            shape_str(&[h, w, 3])
        )));
    };
    let big = h * w * 3 >= DETACH_BYTES;
    if let Ok(a) = arr.cast::<PyArrayDyn<u8>>() {
        let ro = a.try_readonly().map_err(|e| {
            value_error(format!(
                "camera '{name}': the array is being written elsewhere ({e})"
            ))
        })?;
        if !chw {
            if let Ok(src) = ro.as_slice() {
                let fill = |pool: &mut FramePool| {
                    pool.fill(width, height, captured_ns, seq, |buf| {
                        buf.copy_from_slice(src);
                        Ok::<(), String>(())
                    })
                };
                let frame = if big {
                    py.detach(|| fill(pool))
                } else {
                    fill(pool)
                };
                return frame.map_err(value_error);
            }
        }
        let view = hwc_view(ro.as_array(), chw)?;
        let fill = |pool: &mut FramePool| {
            pool.fill(width, height, captured_ns, seq, |buf| {
                copy_u8(&view, buf);
                Ok::<(), String>(())
            })
        };
        let frame = if big {
            py.detach(|| fill(pool))
        } else {
            fill(pool)
        };
        return frame.map_err(value_error);
    }
    macro_rules! float_image {
        ($t:ty) => {
            if let Ok(a) = arr.cast::<PyArrayDyn<$t>>() {
                let ro = a.try_readonly().map_err(|e| {
                    value_error(format!("camera '{name}': the array is being written elsewhere ({e})"))
                })?;
                let view = hwc_view(ro.as_array(), chw)?;
                let fill = |pool: &mut FramePool| {
                    pool.fill(width, height, captured_ns, seq, |buf| {
                        copy_float(&view, buf).map_err(|(lo, hi)| {
                            format!(
                                "The feature '{name}' is a float image with values in [{lo}, {hi}]: float images must be in [0, 1] (or give uint8 in [0, 255])"
                            )
                        })
                    })
                };
                let frame = if big { py.detach(|| fill(pool)) } else { fill(pool) };
                return frame.map_err(value_error);
            }
        };
    }
    float_image!(f32);
    float_image!(f64);
    Err(value_error(format!(
        "The feature '{name}' has dtype '{}': images must be uint8, or float32/float64 in [0, 1]",
        dtype_str(&arr)
    )))
}

/// The array as an (h, w, 3) view (CHW arrays are viewed with their axes moved, no copy).
fn hwc_view<'a, T>(v: numpy::ndarray::ArrayViewD<'a, T>, chw: bool) -> PyResult<ArrayView3<'a, T>> {
    let v = v
        .into_dimensionality::<Ix3>()
        .map_err(|e| value_error(format!("image is not 3-dimensional: {e}")))?;
    Ok(if chw { v.permuted_axes([1, 2, 0]) } else { v })
}

/// Copies a (possibly strided) HWC view row by row into a packed buffer.
fn copy_u8(v: &ArrayView3<'_, u8>, buf: &mut [u8]) {
    let row = v.shape()[1] * 3;
    for (y, plane) in v.axis_iter(Axis(0)).enumerate() {
        let out = &mut buf[y * row..(y + 1) * row];
        match plane.as_slice() {
            Some(s) => out.copy_from_slice(s),
            None => {
                for (d, s) in out.iter_mut().zip(plane.iter()) {
                    *d = *s;
                }
            }
        }
    }
}

/// A float pixel type: converted in its own precision, as numpy does.
trait FloatPixel: Copy {
    fn as_f64(self) -> f64;
    /// `(x * 255).astype(uint8)` (the product in this type's precision, then truncated).
    fn to_u8(self) -> u8;
}

impl FloatPixel for f32 {
    fn as_f64(self) -> f64 {
        f64::from(self)
    }
    fn to_u8(self) -> u8 {
        (self * 255.0) as u8
    }
}

impl FloatPixel for f64 {
    fn as_f64(self) -> f64 {
        self
    }
    fn to_u8(self) -> u8 {
        (self * 255.0) as u8
    }
}

/// Converts a float image in [0, 1] to uint8 as LeRobot does (`(x * 255).astype(uint8)`);
/// Err((min, max)) when a value lies outside [0, 1] (or is NaN).
fn copy_float<T: FloatPixel>(v: &ArrayView3<'_, T>, buf: &mut [u8]) -> Result<(), (f64, f64)> {
    let mut bad = false;
    for (d, s) in buf.iter_mut().zip(v.iter()) {
        let x = s.as_f64();
        if !(0.0..=1.0).contains(&x) {
            bad = true;
        }
        *d = s.to_u8();
    }
    if bad {
        let (lo, hi) = v
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), s| {
                let x = s.as_f64();
                (lo.min(x), hi.max(x))
            });
        return Err((lo, hi));
    }
    Ok(())
}

/// (height, width) of an image given HWC `(h, w, 3)` or CHW `(3, h, w)`.
pub(crate) fn image_hw(obj: &Bound<'_, PyAny>) -> PyResult<(u32, u32)> {
    let arr = to_array(obj)?;
    match *arr.shape() {
        [h, w, 3] => Ok((h as u32, w as u32)),
        [3, h, w] => Ok((h as u32, w as u32)),
        _ => Err(value_error(format!(
            "an image must be (height, width, 3) or (3, height, width), got shape {}",
            shape_str(arr.shape())
        ))),
    }
}

/// A depth camera's frame: uint16 millimetres of shape `(h, w, 1)` (LeRobot's RealSense
/// `read_depth`), `(h, w)` or `(1, h, w)`, copied into a frame of `pool`
/// ([`FramePool::fill_depth`]). Other dtypes are refused: float depth (metres) would need
/// LeRobot's `depth_unit: "m"` and another quantiser input, which reel does not record.
pub(crate) fn depth_image(
    name: &str,
    height: u32,
    width: u32,
    obj: &Bound<'_, PyAny>,
    pool: &mut FramePool,
    captured_ns: u64,
    seq: u64,
) -> PyResult<SharedFrame> {
    let py = obj.py();
    let arr = to_array(obj)?;
    let (h, w) = (height as usize, width as usize);
    let shape = arr.shape();
    if shape != [h, w, 1] && shape != [h, w] && shape != [1, h, w] {
        return Err(value_error(format!(
            "The depth feature '{name}' of shape '{}' does not have the expected shape '{}' (or '{}')",
            shape_str(shape),
            shape_str(&[h, w, 1]),
            shape_str(&[h, w])
        )));
    }
    let Ok(a) = arr.cast::<PyArrayDyn<u16>>() else {
        return Err(value_error(format!(
            "The depth feature '{name}' has dtype '{}': depth maps must be uint16 millimetres (what LeRobot's RealSense camera gives)",
            dtype_str(&arr)
        )));
    };
    let ro = a.try_readonly().map_err(|e| {
        value_error(format!(
            "camera '{name}': the array is being written elsewhere ({e})"
        ))
    })?;
    let view = ro.as_array();
    let fill = |pool: &mut FramePool| {
        pool.fill_depth(width, height, captured_ns, seq, |buf| {
            // Every shape accepted holds the readings in row-major (y, x) order.
            for (dst, v) in buf.chunks_exact_mut(2).zip(view.iter()) {
                dst.copy_from_slice(&v.to_le_bytes());
            }
            Ok::<(), String>(())
        })
    };
    let frame = if h * w * 2 >= DETACH_BYTES {
        py.detach(|| fill(pool))
    } else {
        fill(pool)
    };
    frame.map_err(value_error)
}
