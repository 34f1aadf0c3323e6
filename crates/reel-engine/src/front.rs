//! What every front end calls to get a writer: `reel record`, `reel bench`, `reel doctor` and
//! the Python module (`reel.Writer`, `ReelDataset` inside LeRobot) all turn their options into
//! the same two values — a [`WriterConfig`] (root, fps, features, file sizes, queue limits,
//! durability, owner) and an [`EncoderRequest`] (codec, quality, deferral, camera count and
//! size) — and [`open_writer`] makes every decision from them: the encoder plan (probe, auto
//! choice, fallback chain, watchdog), its confirmation under the load running now (a live
//! final codec is kept only if all cameras' encoders together keep up), and the writer. A
//! front end that calls it cannot decide differently from another one.
//!
//! A front end that opens its own cameras (`reel record`, the doctor's trials) splits the same
//! path in two so that bad options fail before any camera opens and the check under load runs
//! with the cameras capturing: [`plan`] first, then [`open_planned`] with that plan.
//! [`EncoderPlan::summary`] is how each of them shows the plan.

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
    open_planned(cfg, req, plan(req)?, mode)
}

/// The first half of [`open_writer`]: every option validated and the probe's choice made,
/// nothing opened. Hand the result to [`open_planned`].
pub fn plan(req: &EncoderRequest) -> Result<EncoderPlan> {
    plan::plan_encoders(req)
}

/// The second half of [`open_writer`]: `planned` (from [`plan`] with the same `req`)
/// confirmed under the load running now, then the writer opened with it.
pub fn open_planned(
    cfg: WriterConfig,
    req: &EncoderRequest,
    planned: EncoderPlan,
    mode: OpenMode,
) -> Result<(DatasetWriter, EncoderPlan)> {
    let plan = plan::confirm_under_load(planned, req)?;
    let writer = DatasetWriter::open(cfg.with_plan(&plan), mode)?;
    Ok((writer, plan))
}
