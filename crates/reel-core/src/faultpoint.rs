//! Named fault points: places in the code where a test can kill the process (as `kill -9` or
//! a power cut would) or make a thread panic, to prove that every state a crash can leave is
//! repaired.
//!
//! Set `REEL_FAULT_AT` to a comma-separated list of `POINT[@N][:ACTION]`: at the `N`-th time
//! (default 1st) the code passes `POINT`, do `ACTION` — `kill` (default: SIGKILL to the whole
//! process, nothing flushed) or `panic` (the thread that hit it panics). Example:
//! `REEL_FAULT_AT=journal.record@5` kills the process right after the 5th journal record of
//! its life reached the disk, before the change it guards. Unset (always, outside tests), a
//! fault point costs one relaxed atomic load.
//!
//! Every point is listed in [`POINTS`], so tests can enumerate them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Mutex, OnceLock};

/// Every fault point in reel, with where it is.
pub const POINTS: [(&str, &str); 21] = [
    (
        "journal.record",
        "after each undo-journal record is on disk, before its change",
    ),
    (
        "journal.commit",
        "after a transaction's files are synced, before the journal is deleted",
    ),
    (
        "journal.committed",
        "right after a journal is deleted (the commit point)",
    ),
    (
        "create.info",
        "a new dataset: after info.json is written, before the first episode",
    ),
    (
        "commit.begin",
        "the committer has every segment of an episode, before its transaction",
    ),
    (
        "commit.data",
        "inside an episode's transaction, after the data parquet append",
    ),
    (
        "commit.ticks",
        "inside an episode's transaction, after the per-tick timing file append",
    ),
    (
        "commit.videos",
        "inside an episode's transaction, after the video appends",
    ),
    ("commit.done", "after an episode's transaction is committed"),
    (
        "deferred.converted",
        "after the background conversion finished one part",
    ),
    (
        "deferred.lane_placed",
        "a final lane's file became an episode's converted part (live parts deleted)",
    ),
    (
        "swap.built",
        "the final-codec files are built, before the swap transaction",
    ),
    (
        "swap.renamed",
        "inside the swap transaction, after each file's renames",
    ),
    (
        "committer.job",
        "the committer took an episode off its queue",
    ),
    (
        "reencode.manifest",
        "reel reencode: the swap manifest is on disk, before the first rename",
    ),
    (
        "merge.data_copied",
        "reel merge: a source's data files are in DST, before its videos",
    ),
    (
        "merge.video_copied",
        "reel merge: after each video file copied into DST",
    ),
    (
        "merge.episodes_written",
        "reel merge: the episodes table is written, before tasks and stats",
    ),
    (
        "merge.stats_written",
        "reel merge: tasks and stats are written, before info.json",
    ),
    (
        "merge.info_written",
        "reel merge: info.json is written, before the journal commit",
    ),
    (
        "merge.committed",
        "reel merge: the journal is committed, before a new DST is renamed into place",
    ),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Kill,
    Panic,
}

struct Rule {
    at: u64,
    action: Action,
}

struct Plan {
    rules: HashMap<String, Vec<Rule>>,
    hits: Mutex<HashMap<String, u64>>,
}

const UNKNOWN: u8 = 0;
const OFF: u8 = 1;
const ON: u8 = 2;
static STATE: AtomicU8 = AtomicU8::new(UNKNOWN);
static PLAN: OnceLock<Plan> = OnceLock::new();

fn parse(spec: &str) -> HashMap<String, Vec<Rule>> {
    let mut rules: HashMap<String, Vec<Rule>> = HashMap::new();
    for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (point_at, action) = match item.rsplit_once(':') {
            Some((p, "panic")) => (p, Action::Panic),
            Some((p, "kill")) => (p, Action::Kill),
            _ => (item, Action::Kill),
        };
        let (point, at) = match point_at.split_once('@') {
            Some((p, n)) => (p, n.trim().parse::<u64>().unwrap_or(1).max(1)),
            None => (point_at, 1),
        };
        rules
            .entry(point.trim().to_string())
            .or_default()
            .push(Rule { at, action });
    }
    rules
}

fn plan() -> Option<&'static Plan> {
    match STATE.load(Ordering::Relaxed) {
        OFF => None,
        ON => PLAN.get(),
        _ => {
            let spec = std::env::var("REEL_FAULT_AT").unwrap_or_default();
            let rules = parse(&spec);
            if rules.is_empty() {
                STATE.store(OFF, Ordering::Relaxed);
                return None;
            }
            let p = PLAN.get_or_init(|| Plan {
                rules,
                hits: Mutex::new(HashMap::new()),
            });
            STATE.store(ON, Ordering::Relaxed);
            Some(p)
        }
    }
}

/// Passes fault point `name` (one of [`POINTS`]): kills the process or panics when
/// `REEL_FAULT_AT` asks for it at this hit.
pub fn hit(name: &str) {
    let Some(plan) = plan() else { return };
    let Some(rules) = plan.rules.get(name) else {
        return;
    };
    let n = {
        let mut h = plan.hits.lock().unwrap_or_else(|p| p.into_inner());
        let c = h.entry(name.to_string()).or_insert(0);
        *c += 1;
        *c
    };
    for r in rules {
        if r.at == n {
            match r.action {
                Action::Kill => {
                    eprintln!("REEL_FAULT_AT: killing the process at {name}@{n}");
                    // SAFETY: sending SIGKILL to our own process; nothing after it runs.
                    unsafe {
                        libc::kill(libc::getpid(), libc::SIGKILL);
                    }
                }
                Action::Panic => panic!("REEL_FAULT_AT: injected panic at {name}@{n}"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse() {
        let r = parse("journal.record@5, commit.begin:panic,swap.renamed@2:kill,,x@0");
        assert_eq!(r["journal.record"][0].at, 5);
        assert_eq!(r["journal.record"][0].action, Action::Kill);
        assert_eq!(r["commit.begin"][0].at, 1);
        assert_eq!(r["commit.begin"][0].action, Action::Panic);
        assert_eq!(r["swap.renamed"][0].at, 2);
        assert_eq!(r["x"][0].at, 1, "0 means the first hit");
        assert!(parse("").is_empty());
    }

    #[test]
    fn points_are_unique() {
        let mut names: Vec<&str> = POINTS.iter().map(|(n, _)| *n).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), POINTS.len());
    }
}
