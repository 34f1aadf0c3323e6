//! The harness shared by the parser fuzz tests (`fuzz_*.rs`): a counting allocator, a
//! watchdog, byte mutations driven by proptest, seed datasets recorded with `reel record --sim`,
//! and file-tree snapshots.
//!
//! Each fuzz binary declares `#[global_allocator] static A: fuzz_common::Counting = ...;`.
//! Every parser call goes through [`Fuzz::call`], which checks the three properties of issue
//! 12: the call returns (a watchdog aborts the binary, naming the input, when one runs longer
//! than `REEL_FUZZ_HANG_S`, default 120 s), it does not panic (proptest reports the panic and
//! shrinks the input), and its peak heap (bytes allocated on the calling thread during the
//! call, minus those live before) stays below 10 × the input size + 1 MiB.
//!
//! `REEL_FUZZ_CASES=N` sets the generated inputs per property (the defaults keep the whole
//! suite well under a minute on 2 cores); `REEL_FUZZ_SEED=S` changes the generator's seed;
//! `REEL_FUZZ_REPORT=FILE` appends one line of figures per property to FILE.
#![allow(dead_code)]

use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestCaseError, TestRunner};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------
// Counting allocator: live and peak heap bytes of the current thread
// ---------------------------------------------------------------------------------------

thread_local! {
    static LIVE: Cell<i64> = const { Cell::new(0) };
    static PEAK: Cell<i64> = const { Cell::new(0) };
}

fn grow(n: usize) {
    // `try_with`: nothing to count while the thread is being torn down.
    let _ = LIVE.try_with(|l| {
        let v = l.get() + n as i64;
        l.set(v);
        let _ = PEAK.try_with(|p| {
            if v > p.get() {
                p.set(v)
            }
        });
    });
}

fn shrink(n: usize) {
    let _ = LIVE.try_with(|l| l.set(l.get() - n as i64));
}

/// The system allocator, counting every thread's live and peak bytes.
pub struct Counting;

// SAFETY: every method forwards to `System` with the caller's arguments unchanged and only
// adds bookkeeping in thread-locals that never allocate (const-initialised `Cell`s).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, which `System` shares.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grow(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grow(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was returned by this allocator (hence by `System`) with `layout`.
        unsafe { System.dealloc(ptr, layout) };
        shrink(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr`/`layout` come from this allocator; the caller upholds `realloc`'s rules.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            // Counted as a copy (old and new block both live for a moment): an upper bound.
            grow(new_size);
            shrink(layout.size());
        }
        p
    }
}

/// Runs `f` and returns its result with the peak heap bytes it added on this thread.
pub fn measure<T>(f: impl FnOnce() -> T) -> (T, u64) {
    let before = LIVE.with(|l| l.get());
    PEAK.with(|p| p.set(before));
    let out = f();
    let peak = PEAK.with(|p| p.get());
    (out, (peak - before).max(0) as u64)
}

// ---------------------------------------------------------------------------------------
// Watchdog: a call that never returns aborts the binary, naming its input
// ---------------------------------------------------------------------------------------

fn running() -> &'static Mutex<HashMap<ThreadId, (Instant, String)>> {
    static R: OnceLock<Mutex<HashMap<ThreadId, (Instant, String)>>> = OnceLock::new();
    R.get_or_init(|| {
        let limit = Duration::from_secs(env_u64("REEL_FUZZ_HANG_S").unwrap_or(120));
        std::thread::spawn(move || loop {
            std::thread::sleep(Duration::from_millis(250));
            let map = running().lock().unwrap_or_else(|p| p.into_inner());
            for (start, what) in map.values() {
                if start.elapsed() > limit {
                    eprintln!(
                        "HANG: {what} has run for {:?} (limit {limit:?}); aborting",
                        start.elapsed()
                    );
                    std::process::abort();
                }
            }
        });
        Mutex::new(HashMap::new())
    })
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|s| s.trim().parse().ok())
}

/// Generated inputs per property: `REEL_FUZZ_CASES`, else `default`.
pub fn cases(default: u32) -> u32 {
    env_u64("REEL_FUZZ_CASES")
        .map(|n| n.clamp(1, u32::MAX as u64) as u32)
        .unwrap_or(default)
}

// ---------------------------------------------------------------------------------------
// Figures of one property
// ---------------------------------------------------------------------------------------

/// What one property saw: inputs, outcomes, the worst memory ratio and the slowest call.
#[derive(Debug, Default)]
pub struct Figures {
    pub inputs: u64,
    pub ok: u64,
    pub refused: u64,
    pub max_peak: u64,
    /// Largest peak / input size seen (inputs of at least 64 KiB only: below that the 1 MiB
    /// allowance dominates and the ratio says nothing).
    pub max_ratio: f64,
    pub slowest: Duration,
    pub slowest_what: String,
    pub total: Duration,
}

/// One property under test: its name and figures.
pub struct Fuzz {
    pub name: String,
    pub figures: RefCell<Figures>,
    /// Heap the call takes on the unmutated seed when that is not a parser's own doing
    /// (an append encodes a new row group first); added to the limit.
    pub base: Cell<u64>,
    started: Instant,
}

/// Calls slower than this are listed at the end of the run.
const SLOW: Duration = Duration::from_secs(2);

impl Fuzz {
    pub fn new(name: &str) -> Fuzz {
        Fuzz {
            name: name.to_string(),
            figures: RefCell::new(Figures::default()),
            base: Cell::new(0),
            started: Instant::now(),
        }
    }

    /// Calls `f` (a parser on an input of `input_len` bytes) under the watchdog and the
    /// allocation counter; fails the case when its peak heap exceeds 10 × input + 1 MiB.
    /// `ok` tells whether the result counts as accepted (for the figures).
    pub fn call<T>(
        &self,
        what: &str,
        input_len: usize,
        f: impl FnOnce() -> T,
        ok: impl Fn(&T) -> bool,
    ) -> Result<T, TestCaseError> {
        let id = std::thread::current().id();
        running()
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, (Instant::now(), format!("{}: {what}", self.name)));
        let t0 = Instant::now();
        let (out, peak) = measure(f);
        let took = t0.elapsed();
        running()
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
        let mut fig = self.figures.borrow_mut();
        fig.inputs += 1;
        if ok(&out) {
            fig.ok += 1;
        } else {
            fig.refused += 1;
        }
        fig.max_peak = fig.max_peak.max(peak);
        let base = self.base.get();
        if input_len >= 64 << 10 {
            fig.max_ratio = fig
                .max_ratio
                .max(peak.saturating_sub(base) as f64 / input_len as f64);
        }
        if took > fig.slowest {
            fig.slowest = took;
            fig.slowest_what = what.to_string();
        }
        if took > SLOW {
            eprintln!(
                "{}: slow call ({took:?}): {what} on {input_len} bytes",
                self.name
            );
        }
        let limit = base + 10 * input_len as u64 + (1 << 20);
        if peak >= limit {
            return Err(TestCaseError::fail(format!(
                "{what}: peak heap {peak} bytes for a {input_len}-byte input (limit {limit}{})",
                if base > 0 {
                    format!(", {base} of them what the unmutated seed takes")
                } else {
                    String::new()
                }
            )));
        }
        Ok(out)
    }

    /// Prints the figures (and appends them to `REEL_FUZZ_REPORT` when set).
    pub fn report(&self) {
        let mut f = self.figures.borrow_mut();
        f.total = self.started.elapsed();
        let line = format!(
            "{:<28} inputs {:>7}  accepted {:>7}  refused {:>7}  max peak {:>9} B  max peak/input {:>5.2}  slowest {:>8.1} ms ({})  total {:>6.1} s",
            self.name,
            f.inputs,
            f.ok,
            f.refused,
            f.max_peak,
            f.max_ratio,
            f.slowest.as_secs_f64() * 1e3,
            f.slowest_what,
            f.total.as_secs_f64()
        );
        eprintln!("{line}");
        if let Ok(p) = std::env::var("REEL_FUZZ_REPORT") {
            use std::io::Write;
            if let Ok(mut file) = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
            {
                let _ = writeln!(file, "{line}");
            }
        }
    }

    /// Runs `test` on `n` generated values of `strategy` (seeded: `REEL_FUZZ_SEED`), then
    /// reports. A failing case (panic, memory, broken property) is shrunk by proptest and
    /// fails the test with the smallest input found.
    pub fn run<S: Strategy>(
        &self,
        n: u32,
        strategy: S,
        test: impl Fn(S::Value) -> Result<(), TestCaseError>,
    ) where
        S::Value: std::fmt::Debug,
    {
        let seed = env_u64("REEL_FUZZ_SEED").unwrap_or(0x5eed_0012);
        let mut runner = TestRunner::new(Config {
            cases: n,
            failure_persistence: None,
            rng_seed: RngSeed::Fixed(seed ^ fnv(self.name.as_bytes())),
            max_shrink_iters: 2000,
            ..Config::default()
        });
        let result = runner.run(&strategy, test);
        self.report();
        if let Err(e) = result {
            panic!(
                "{}: {e}\n(seed {seed}; replay with REEL_FUZZ_SEED={seed})",
                self.name
            );
        }
    }
}

/// FNV-1a, 64 bit (also the checksum of reel's undo journal records).
pub fn fnv(data: &[u8]) -> u64 {
    let mut h = 0xcbf29ce484222325u64;
    for b in data {
        h ^= *b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

// ---------------------------------------------------------------------------------------
// Mutations
// ---------------------------------------------------------------------------------------

/// A value written over a length or count field.
#[derive(Debug, Clone, Copy)]
pub enum Special {
    Zero,
    One,
    Two,
    P31,
    U32Max,
    P32,
    P63,
    U64Max,
    /// The input's length minus k.
    LenMinus(u8),
    /// The input's length plus k.
    LenPlus(u8),
    /// The field's old value times 2^k (k in 1..=20).
    Scale(u8),
    Any(u64),
}

impl Special {
    fn value(self, len: usize, old: u64) -> u64 {
        match self {
            Special::Zero => 0,
            Special::One => 1,
            Special::Two => 2,
            Special::P31 => 1 << 31,
            Special::U32Max => u32::MAX as u64,
            Special::P32 => 1 << 32,
            Special::P63 => 1 << 63,
            Special::U64Max => u64::MAX,
            Special::LenMinus(k) => (len as u64).wrapping_sub(k as u64),
            Special::LenPlus(k) => len as u64 + k as u64,
            Special::Scale(k) => old.wrapping_shl(k as u32),
            Special::Any(v) => v,
        }
    }
}

fn special() -> impl Strategy<Value = Special> {
    prop_oneof![
        Just(Special::Zero),
        Just(Special::One),
        Just(Special::Two),
        Just(Special::P31),
        Just(Special::U32Max),
        Just(Special::P32),
        Just(Special::P63),
        Just(Special::U64Max),
        (0u8..16).prop_map(Special::LenMinus),
        (0u8..16).prop_map(Special::LenPlus),
        (1u8..=20).prop_map(Special::Scale),
        any::<u64>().prop_map(Special::Any),
    ]
}

/// A length or count field of a seed file (found by walking its structure).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Field {
    pub at: usize,
    /// 4 or 8 bytes.
    pub width: u8,
    pub big_endian: bool,
}

/// One edit of a byte string. Positions are taken modulo the current length.
#[derive(Debug, Clone)]
pub enum Mutation {
    Flip {
        at: u64,
        bit: u8,
    },
    Byte {
        at: u64,
        val: u8,
    },
    Truncate {
        at: u64,
    },
    Insert {
        at: u64,
        bytes: Vec<u8>,
    },
    Delete {
        at: u64,
        len: u16,
    },
    Duplicate {
        from: u64,
        len: u16,
        to: u64,
    },
    /// Sets one of the seed's known length/count fields.
    Field {
        which: u64,
        val: Special,
    },
    /// Sets a 32/64-bit word anywhere.
    Word {
        at: u64,
        wide: bool,
        be: bool,
        val: Special,
    },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        3 => (any::<u64>(), 0u8..8).prop_map(|(at, bit)| Mutation::Flip { at, bit }),
        2 => (any::<u64>(), any::<u8>()).prop_map(|(at, val)| Mutation::Byte { at, val }),
        1 => any::<u64>().prop_map(|at| Mutation::Truncate { at }),
        2 => (any::<u64>(), proptest::collection::vec(any::<u8>(), 1..48))
            .prop_map(|(at, bytes)| Mutation::Insert { at, bytes }),
        2 => (any::<u64>(), 1u16..600).prop_map(|(at, len)| Mutation::Delete { at, len }),
        1 => (any::<u64>(), 1u16..600, any::<u64>())
            .prop_map(|(from, len, to)| Mutation::Duplicate { from, len, to }),
        5 => (any::<u64>(), special()).prop_map(|(which, val)| Mutation::Field { which, val }),
        2 => (any::<u64>(), any::<bool>(), any::<bool>(), special())
            .prop_map(|(at, wide, be, val)| Mutation::Word { at, wide, be, val }),
    ]
}

/// One to four mutations.
pub fn mutations() -> impl Strategy<Value = Vec<Mutation>> {
    proptest::collection::vec(mutation(), 1..=4)
}

fn put_word(b: &mut [u8], at: usize, wide: bool, be: bool, v: u64) {
    let n = if wide { 8 } else { 4 };
    if at + n > b.len() {
        return;
    }
    let v = if wide { v } else { v.min(u32::MAX as u64) };
    let bytes = match (wide, be) {
        (true, true) => v.to_be_bytes().to_vec(),
        (true, false) => v.to_le_bytes().to_vec(),
        (false, true) => (v as u32).to_be_bytes().to_vec(),
        (false, false) => (v as u32).to_le_bytes().to_vec(),
    };
    b[at..at + n].copy_from_slice(&bytes);
}

fn get_word(b: &[u8], at: usize, wide: bool, be: bool) -> u64 {
    let n = if wide { 8 } else { 4 };
    let Some(s) = b.get(at..at + n) else { return 0 };
    let mut a = [0u8; 8];
    if be {
        a[8 - n..].copy_from_slice(s);
        u64::from_be_bytes(a)
    } else {
        a[..n].copy_from_slice(s);
        u64::from_le_bytes(a)
    }
}

/// Applies `muts` to a copy of `seed`; `fields` are the seed's length/count fields.
pub fn apply(seed: &[u8], fields: &[Field], muts: &[Mutation]) -> Vec<u8> {
    let mut b = seed.to_vec();
    for m in muts {
        let pos = |at: u64, len: usize| {
            if len == 0 {
                0
            } else {
                (at % len as u64) as usize
            }
        };
        match m {
            Mutation::Flip { at, bit } => {
                if !b.is_empty() {
                    let i = pos(*at, b.len());
                    b[i] ^= 1 << bit;
                }
            }
            Mutation::Byte { at, val } => {
                if !b.is_empty() {
                    let i = pos(*at, b.len());
                    b[i] = *val;
                }
            }
            Mutation::Truncate { at } => {
                let i = pos(*at, b.len() + 1);
                b.truncate(i);
            }
            Mutation::Insert { at, bytes } => {
                let i = pos(*at, b.len() + 1);
                b.splice(i..i, bytes.iter().copied());
            }
            Mutation::Delete { at, len } => {
                let i = pos(*at, b.len() + 1);
                let e = (i + *len as usize).min(b.len());
                b.drain(i..e);
            }
            Mutation::Duplicate { from, len, to } => {
                let i = pos(*from, b.len() + 1);
                let e = (i + *len as usize).min(b.len());
                let chunk = b[i..e].to_vec();
                let t = pos(*to, b.len() + 1);
                b.splice(t..t, chunk);
            }
            Mutation::Field { which, val } => {
                if fields.is_empty() {
                    continue;
                }
                let f = fields[(*which % fields.len() as u64) as usize];
                let wide = f.width == 8;
                let old = get_word(&b, f.at, wide, f.big_endian);
                let len = b.len();
                put_word(&mut b, f.at, wide, f.big_endian, val.value(len, old));
            }
            Mutation::Word { at, wide, be, val } => {
                if !b.is_empty() {
                    let i = pos(*at, b.len());
                    let old = get_word(&b, i, *wide, *be);
                    let len = b.len();
                    put_word(&mut b, i, *wide, *be, val.value(len, old));
                }
            }
        }
    }
    b
}

/// Truncation points covering every region of a file: every field start ± a few bytes and
/// every `stride`-th byte.
pub fn truncation_points(len: usize, fields: &[Field], stride: usize) -> Vec<usize> {
    let mut pts: Vec<usize> = (0..len).step_by(stride.max(1)).collect();
    for f in fields {
        for d in [0usize, 1, 3, 4, 7, 8] {
            pts.push(f.at.saturating_sub(d));
            pts.push(f.at + d);
        }
    }
    pts.push(len.saturating_sub(1));
    pts.retain(|&p| p < len);
    pts.sort_unstable();
    pts.dedup();
    pts
}

/// `[[[[...]]]]` `depth` levels deep (or `{"a": {"a": ...}}` with `object`).
pub fn nesting_bomb(depth: usize, object: bool) -> String {
    let (open, close) = if object {
        ("{\"a\": ", "}")
    } else {
        ("[", "]")
    };
    let mut s = String::with_capacity(depth * (open.len() + close.len()) + 1);
    for _ in 0..depth {
        s.push_str(open);
    }
    s.push('0');
    for _ in 0..depth {
        s.push_str(close);
    }
    s
}

// ---------------------------------------------------------------------------------------
// File trees
// ---------------------------------------------------------------------------------------

/// One entry of a tree snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    File(Vec<u8>),
    Dir,
    Link(PathBuf),
}

/// Every entry under `root` (relative paths), symbolic links not followed.
pub fn snapshot(root: &Path) -> BTreeMap<PathBuf, Entry> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            let rel = p.strip_prefix(root).unwrap_or(&p).to_path_buf();
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_symlink() {
                out.insert(rel, Entry::Link(std::fs::read_link(&p).unwrap_or_default()));
            } else if ft.is_dir() {
                out.insert(rel, Entry::Dir);
                stack.push(p);
            } else {
                out.insert(rel, Entry::File(std::fs::read(&p).unwrap_or_default()));
            }
        }
    }
    out
}

/// Differences between two snapshots, by path (for failure messages).
pub fn diff(a: &BTreeMap<PathBuf, Entry>, b: &BTreeMap<PathBuf, Entry>) -> Vec<String> {
    let mut out = Vec::new();
    for (p, e) in a {
        match b.get(p) {
            None => out.push(format!("{} removed", p.display())),
            Some(x) if x != e => out.push(format!("{} changed", p.display())),
            _ => {}
        }
    }
    for p in b.keys() {
        if !a.contains_key(p) {
            out.push(format!("{} added", p.display()));
        }
    }
    out
}

/// Writes the tree `snap` under `root` (which must not exist yet).
pub fn materialize(root: &Path, snap: &BTreeMap<PathBuf, Entry>) {
    std::fs::create_dir_all(root).expect("create tree root");
    for (rel, e) in snap {
        let p = root.join(rel);
        match e {
            Entry::Dir => std::fs::create_dir_all(&p).expect("create dir"),
            Entry::File(b) => {
                if let Some(d) = p.parent() {
                    std::fs::create_dir_all(d).expect("create dir");
                }
                std::fs::write(&p, b).expect("write file");
            }
            Entry::Link(t) => {
                if let Some(d) = p.parent() {
                    std::fs::create_dir_all(d).expect("create dir");
                }
                std::os::unix::fs::symlink(t, &p).expect("symlink");
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Seeds: a tiny real dataset and a real crashed transaction
// ---------------------------------------------------------------------------------------

/// The seed files of one fuzz binary.
pub struct Seeds {
    /// A 2-episode, 1-camera 96x64 dataset (`reel record --sim`).
    pub pre: BTreeMap<PathBuf, Entry>,
    /// The same after `reel record --resume` was killed just before its transaction's commit:
    /// `.reel/journal` holds the real undo journal of that episode save.
    pub post: BTreeMap<PathBuf, Entry>,
    /// The episode segment that transaction appended (an MP4 from reel's encoder).
    pub segment: Vec<u8>,
    /// A folder of scratch space of this process (under the target directory's tmp folder).
    pub scratch: PathBuf,
}

pub const VIDEO: &str = "videos/observation.images.front/chunk-000/file-000.mp4";
pub const EPISODES: &str = "meta/episodes/chunk-000/file-000.parquet";
pub const DATA: &str = "data/chunk-000/file-000.parquet";
pub const JOURNAL: &str = ".reel/journal";

impl Seeds {
    pub fn file(&self, rel: &str) -> &[u8] {
        match self.pre.get(Path::new(rel)) {
            Some(Entry::File(b)) => b,
            _ => panic!("seed dataset has no file {rel}"),
        }
    }
}

/// Records the seeds once per process (about 2 s), in a scratch folder of this process's own:
/// cargo-nextest runs every test in its own process, two at a time, so two fuzz tests must
/// never share (and remove) each other's seed folder.
pub fn seeds(binary: &str) -> &'static Seeds {
    static S: OnceLock<Seeds> = OnceLock::new();
    S.get_or_init(|| {
        let scratch = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("fuzz-{binary}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&scratch);
        std::fs::create_dir_all(&scratch).expect("create scratch");
        let pre = scratch.join("pre");
        crate::common::run_ok(&mut crate::common::sim(&pre, 1, 2, 0.3));
        let pre_snap = snapshot(&pre);
        let post = scratch.join("post");
        materialize(&post, &pre_snap);
        let mut resume = crate::common::sim(&post, 1, 1, 0.3);
        resume
            .arg("--resume")
            .env("REEL_FAULT_AT", "journal.commit:kill");
        let out = resume.output().expect("spawn reel");
        assert!(
            !out.status.success() && post.join(JOURNAL).is_file(),
            "the resumed recording should have been killed with its journal on disk:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let seg_dir = post.join(".reel/segments/observation.images.front");
        let seg = std::fs::read_dir(&seg_dir)
            .expect("segments folder")
            .flatten()
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|x| x == "mp4"))
            .expect("an episode segment");
        let segment = std::fs::read(&seg).expect("read segment");
        std::fs::remove_dir_all(post.join(".reel/segments")).expect("remove segments");
        let _ = std::fs::remove_file(post.join(".reel/lock"));
        let mut pre_snap = pre_snap;
        pre_snap.retain(|p, _| !p.starts_with(".reel"));
        let mut post_snap = snapshot(&post);
        post_snap.retain(|p, _| {
            !p.starts_with(".reel") || p.starts_with(JOURNAL) || p == Path::new(".reel")
        });
        Seeds {
            pre: pre_snap,
            post: post_snap,
            segment,
            scratch,
        }
    })
}

/// A fresh folder for one case (removed when dropped).
pub fn case_dir(seeds: &Seeds) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("case-")
        .tempdir_in(&seeds.scratch)
        .expect("case dir")
}
