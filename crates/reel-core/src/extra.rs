//! A reel-specific per-episode value (`reel/<name>` columns of the episodes table): what
//! the loop, the robots and the writer exchange about an episode.

/// A reel-specific per-episode value, stored in a `reel/<name>` column.
#[derive(Debug, Clone, PartialEq)]
pub enum ExtraValue {
    I64(i64),
    F64(f64),
    Str(String),
}
