//! What every front end calls to get a writer: `reel record`, `reel bench`, `reel doctor` and
//! the Python module (`reel.Writer`, `ReelDataset` inside LeRobot) all turn their options into
//! the same two values — a [`WriterConfig`] (root, fps, features, file sizes, queue limits,
//! durability, owner) and an [`EncoderRequest`] (codec, quality, deferral, camera count and
//! size) — and [`open_writer`] makes every decision from them: the encoder plan (probe, auto
//! choice, fallback chain, watchdog), its confirmation under the load running now (a live
//! final codec is kept only if all cameras' encoders together keep up), and the writer. A
//! front end that calls it cannot decide differently from another one.

use crate::plan::{self, EncoderPlan, EncoderRequest};
use crate::writer::{DatasetWriter, OpenMode, WriterConfig};
use reel_core::Result;

/// Plans the encoders for `req`, confirms a live final codec under the current load (call it
/// once the cameras capture, where the front end has its own), and opens the writer with
/// that plan. Returns the writer and the plan it records with (its `decisions` say why).
pub fn open_writer(
    cfg: WriterConfig,
    req: &EncoderRequest,
    mode: OpenMode,
) -> Result<(DatasetWriter, EncoderPlan)> {
    let plan = decide(req)?;
    let writer = DatasetWriter::open(cfg.with_plan(&plan), mode)?;
    Ok((writer, plan))
}

/// The plan [`open_writer`] records with, without opening anything: the probe's choice, then
/// the check under load. Front ends use it to report the plan (`reel bench`, the doctor).
pub fn decide(req: &EncoderRequest) -> Result<EncoderPlan> {
    let plan = plan::plan_encoders(req)?;
    plan::confirm_under_load(plan, req)
}
