//! End-to-end test of the format layer: a 2-episode dataset without video written with only
//! this crate's modules, one journal per episode, read back and (when the LeRobot 0.6.1 venv
//! is installed) accepted by the conformance checker in `--strict` mode.

use std::path::Path;

use reel_core::extra::ExtraValue;
use reel_core::journal::Journal;
use reel_core::{Feature, Features, RowValues, Value};
use reel_dataset::data::{hf_metadata, ColumnBuffers};
use reel_dataset::episodes::{episode_batch, read_all, EpisodeRecord};
use reel_dataset::info::Info;
use reel_dataset::parquet_append::{append_batch, row_group_rows};
use reel_dataset::paths::{self, FileIndex};
use reel_dataset::{stats_json, tasks};
use reel_stats::FeatureStats;

const MOTORS: [&str; 6] = [
    "shoulder_pan.pos",
    "shoulder_lift.pos",
    "elbow_flex.pos",
    "wrist_flex.pos",
    "wrist_roll.pos",
    "gripper.pos",
];
const TASK: &str = "Pick the cube";

fn features() -> Features {
    Features::new()
        .with("action", Feature::vector_f32(&MOTORS))
        .unwrap()
        .with("observation.state", Feature::vector_f32(&MOTORS))
        .unwrap()
}

fn write_dataset(root: &Path, lengths: &[usize], fps: u32) -> Vec<Vec<f32>> {
    let feats = features();
    let mut info = Info::new(fps, feats.clone(), Some("so_follower".into()));
    let jp = paths::reel_dir(root).join("journal");
    let mut j = Journal::begin(&jp, root, true).unwrap();
    info.write(root, &mut j).unwrap();
    j.commit().unwrap();

    let mut buffers = ColumnBuffers::new(&feats);
    let mut dataset_stats: Option<Vec<(String, FeatureStats, bool)>> = None;
    let mut all_actions = Vec::new();
    let mut tasks_list: Vec<String> = Vec::new();
    for (ep, &len) in lengths.iter().enumerate() {
        let first = info.total_frames as i64;
        buffers.clear();
        for k in 0..len {
            let t = (first + k as i64) as f32;
            let action: Vec<f32> = (0..6).map(|d| (t * 0.1 + d as f32).sin() * 50.0).collect();
            let state: Vec<f32> = action.iter().map(|a| a * 0.9 + 1.0).collect();
            all_actions.push(action.clone());
            let row = RowValues::new(TASK)
                .with("action", Value::F32(action))
                .with("observation.state", Value::F32(state));
            buffers.push(&row, 0).unwrap();
        }
        let mut j = Journal::begin(&jp, root, true).unwrap();
        if !tasks_list.iter().any(|t| t == TASK) {
            tasks_list.push(TASK.into());
            tasks::write(root, &tasks_list, &mut j).unwrap();
        }
        let batch = buffers.to_batch(&feats, ep as i64, first, fps).unwrap();
        let data_path = paths::data_file(root, FileIndex::default());
        let a = append_batch(
            &data_path,
            &batch,
            &[("huggingface".into(), hf_metadata(&feats))],
            &mut j,
        )
        .unwrap();
        assert_eq!(a.row_groups, ep + 1);
        let ep_stats = buffers.stats(&feats, ep as i64, first, fps).unwrap();
        let rec = EpisodeRecord {
            episode_index: ep as u64,
            tasks: vec![TASK.into()],
            length: len as u64,
            data_file: FileIndex::default(),
            dataset_from_index: first as u64,
            dataset_to_index: first as u64 + len as u64,
            videos: vec![],
            stats: ep_stats
                .iter()
                .map(|(k, s)| (k.clone(), s.clone(), false))
                .collect(),
            meta_file: FileIndex::default(),
            extra: vec![
                ("save_ms".into(), ExtraValue::F64(1.25)),
                ("dropped_frames".into(), ExtraValue::I64(0)),
            ],
        };
        append_batch(
            &paths::episodes_file(root, FileIndex::default()),
            &episode_batch(&rec).unwrap(),
            &[],
            &mut j,
        )
        .unwrap();
        dataset_stats = Some(match dataset_stats {
            None => rec.stats.clone(),
            Some(prev) => prev
                .iter()
                .map(|(k, s, v)| {
                    let new = &rec.stats.iter().find(|(n, _, _)| n == k).unwrap().1;
                    (k.clone(), reel_stats::aggregate(s, new), *v)
                })
                .collect(),
        });
        stats_json::write(root, dataset_stats.as_ref().unwrap(), &mut j).unwrap();
        info.total_episodes += 1;
        info.total_frames += len as u64;
        info.total_tasks = tasks_list.len() as u64;
        info.write(root, &mut j).unwrap();
        j.commit().unwrap();
    }
    all_actions
}

#[test]
fn two_episode_dataset_reads_back_and_passes_lerobot() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("ds");
    std::fs::create_dir_all(&root).unwrap();
    let actions = write_dataset(&root, &[20, 15], 30);

    // Read back with this crate.
    let info = Info::read(&root).unwrap();
    assert_eq!(
        (info.total_episodes, info.total_frames, info.total_tasks),
        (2, 35, 1)
    );
    assert_eq!(
        row_group_rows(&paths::data_file(&root, FileIndex::default())).unwrap(),
        vec![20, 15]
    );
    assert_eq!(
        row_group_rows(&paths::episodes_file(&root, FileIndex::default())).unwrap(),
        vec![1, 1]
    );
    assert_eq!(tasks::read(&root).unwrap(), vec![TASK.to_string()]);
    let eps = read_all(&root, &info.features).unwrap();
    assert_eq!(eps.len(), 2);
    assert_eq!(
        (
            eps[1].dataset_from_index,
            eps[1].dataset_to_index,
            eps[1].length
        ),
        (20, 35, 15)
    );
    assert_eq!(eps[0].stats.len(), 7);
    // This test writes the legacy `reel/*` columns of older reel versions directly: the
    // reader still returns them, and LeRobot's loader ignores them (checked below).
    assert_eq!(
        eps[1].extra[0],
        ("save_ms".to_string(), ExtraValue::F64(1.25))
    );
    let stats = stats_json::read(&root).unwrap();
    let fi = &stats.iter().find(|(k, _)| k == "frame_index").unwrap().1;
    assert_eq!(fi.min, vec![0.0]);
    assert_eq!(fi.max, vec![19.0]);
    assert_eq!(fi.count, 35);
    assert!(
        (fi.mean[0] - 8.428571428571429).abs() < 1e-12,
        "{:?}",
        fi.mean
    );
    assert!(
        (fi.std[0] - 5.341405455954263).abs() < 1e-12,
        "{:?}",
        fi.std
    );
    let act = &stats.iter().find(|(k, _)| k == "action").unwrap().1;
    for dim in 0..6 {
        let col: Vec<f64> = actions.iter().map(|a| a[dim] as f64).collect();
        let mean = col.iter().sum::<f64>() / col.len() as f64;
        assert!((act.mean[dim] - mean).abs() < 1e-9);
        assert_eq!(
            act.min[dim],
            col.iter().cloned().fold(f64::INFINITY, f64::min)
        );
    }
    assert!(!paths::reel_dir(&root).join("journal").exists());

    // The real LeRobot loader, through the conformance checker.
    reel_testkit::assert_lerobot_loads(&root);
}
