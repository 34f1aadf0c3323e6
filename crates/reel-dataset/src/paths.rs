//! Where every file of a LeRobot v3.0 dataset lives (spec §1.2–1.3): path templates, the
//! chunk/file index arithmetic and the MB convention (bytes / 1024²).

use std::path::{Path, PathBuf};

/// Maximum number of files per chunk directory (`chunks_size`).
pub const DEFAULT_CHUNKS_SIZE: u32 = 1000;
/// Size limit of data and episodes-metadata parquet files, in MB (1024² bytes).
pub const DEFAULT_DATA_FILE_SIZE_MB: f64 = 100.0;
/// Size limit of video files, in MB (1024² bytes).
pub const DEFAULT_VIDEO_FILE_SIZE_MB: f64 = 200.0;
/// The `data_path` template stored in `info.json`.
pub const DATA_PATH: &str = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet";
/// The `video_path` template stored in `info.json`.
pub const VIDEO_PATH: &str = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4";

/// A (chunk, file) pair naming one data, video or episodes-metadata file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct FileIndex {
    pub chunk: u32,
    pub file: u32,
}

impl FileIndex {
    /// The next file: `(chunk + 1, 0)` after the last file of a chunk, else `(chunk, file + 1)`.
    pub fn next(self, chunks_size: u32) -> FileIndex {
        if chunks_size == 0 || self.file + 1 >= chunks_size {
            FileIndex {
                chunk: self.chunk + 1,
                file: 0,
            }
        } else {
            FileIndex {
                chunk: self.chunk,
                file: self.file + 1,
            }
        }
    }

    fn rel(self) -> String {
        format!("chunk-{:03}/file-{:03}", self.chunk, self.file)
    }
}

/// `root/data/chunk-CCC/file-FFF.parquet`.
pub fn data_file(root: &Path, i: FileIndex) -> PathBuf {
    root.join("data").join(format!("{}.parquet", i.rel()))
}

/// `root/videos/<video_key>/chunk-CCC/file-FFF.mp4`.
pub fn video_file(root: &Path, video_key: &str, i: FileIndex) -> PathBuf {
    root.join("videos")
        .join(video_key)
        .join(format!("{}.mp4", i.rel()))
}

/// `root/meta/episodes/chunk-CCC/file-FFF.parquet`.
pub fn episodes_file(root: &Path, i: FileIndex) -> PathBuf {
    root.join("meta")
        .join("episodes")
        .join(format!("{}.parquet", i.rel()))
}

/// `root/meta/info.json`.
pub fn info_file(root: &Path) -> PathBuf {
    root.join("meta").join("info.json")
}

/// `root/meta/stats.json`.
pub fn stats_file(root: &Path) -> PathBuf {
    root.join("meta").join("stats.json")
}

/// `root/meta/tasks.parquet`.
pub fn tasks_file(root: &Path) -> PathBuf {
    root.join("meta").join("tasks.parquet")
}

/// `root/.reel`: reel's private directory (journal, temporary segments, spill files). Its
/// name does not start with `tmp`, which LeRobot's tooling would flag as a leftover.
pub fn reel_dir(root: &Path) -> PathBuf {
    root.join(".reel")
}

/// Bytes to LeRobot's MB (1024² bytes).
pub fn size_mb(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_sequence_and_paths() {
        let mut i = FileIndex::default();
        let mut seen = vec![i];
        for _ in 0..4 {
            i = i.next(2);
            seen.push(i);
        }
        let pairs: Vec<(u32, u32)> = seen.iter().map(|x| (x.chunk, x.file)).collect();
        assert_eq!(pairs, vec![(0, 0), (0, 1), (1, 0), (1, 1), (2, 0)]);
        let r = Path::new("/r");
        assert_eq!(
            data_file(r, FileIndex { chunk: 1, file: 2 }),
            Path::new("/r/data/chunk-001/file-002.parquet")
        );
        assert_eq!(
            video_file(r, "observation.images.front", FileIndex::default()),
            Path::new("/r/videos/observation.images.front/chunk-000/file-000.mp4")
        );
        assert_eq!(
            episodes_file(
                r,
                FileIndex {
                    chunk: 0,
                    file: 1000
                }
            ),
            Path::new("/r/meta/episodes/chunk-000/file-1000.parquet")
        );
        assert_eq!(size_mb(3 * 1024 * 1024), 3.0);
        assert!(!reel_dir(r)
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("tmp"));
    }
}
