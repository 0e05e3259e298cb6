use emobridge_store::{
    ClipEntry, EmbeddingCache, EntryMetadata, FailureLog, Shard, StoreError, StoredDtype,
};

fn meta() -> EntryMetadata {
    EntryMetadata {
        model: "tiny".into(),
        sample_rate: 16000,
        frame_rate_hz: 50.0,
        hidden_state_convention: "transformers4".into(),
        source_file: "a.wav".into(),
        audio_sha256: "00".repeat(32),
        extra: [("layers".to_string(), "all".to_string())].into(),
    }
}

fn entry(dtype: StoredDtype) -> ClipEntry {
    // 2 states, 3 frames, 2 dims.
    let values = vec![
        1.0, -1.0, 2.0, -2.0, 3.0, -3.0, 0.5, 0.25, 0.5, 0.25, 0.5, 0.25,
    ];
    ClipEntry::from_frames(values, [2, 3, 2], dtype, meta()).unwrap()
}

#[test]
fn entries_round_trip_with_pooled_stats_and_metadata() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = EmbeddingCache::open(tmp.path(), "tiny-model").unwrap();
    for dtype in [StoredDtype::F16, StoredDtype::F32] {
        let e = entry(dtype);
        assert_eq!(e.mean, vec![2.0, -2.0, 0.5, 0.25]);
        let sd = (2.0f32 / 3.0).sqrt();
        assert!((e.std[0] - sd).abs() < 1e-6 && e.std[2] == 0.0);
        let path = cache.write("clip-1", &e).unwrap();
        assert_eq!(
            path,
            tmp.path().join("tiny-model").join("clip-1.safetensors")
        );
        let back = cache.read("clip-1").unwrap();
        assert_eq!(back, e, "values here are exact in f16 too");
    }
    assert!(cache.contains("clip-1"));
    assert!(!cache.contains("clip-2"));
    assert_eq!(cache.ids().unwrap(), vec!["clip-1".to_string()]);
    // No temporary file is left behind.
    let names: Vec<_> = std::fs::read_dir(cache.dir())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");
}

#[test]
fn stored_layout_is_what_other_tools_read() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = EmbeddingCache::open(tmp.path(), "m").unwrap();
    let path = cache.write("x", &entry(StoredDtype::F16)).unwrap();
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let h = st.tensor("hidden_states").unwrap();
    assert_eq!(
        (h.dtype(), h.shape()),
        (safetensors::Dtype::F16, &[2usize, 3, 2][..])
    );
    assert_eq!(st.tensor("mean").unwrap().dtype(), safetensors::Dtype::F32);
    assert_eq!(st.tensor("std").unwrap().shape(), &[2, 2]);
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let md = header.metadata().clone().unwrap();
    for key in [
        "model",
        "sample_rate",
        "frame_rate_hz",
        "hidden_state_convention",
        "source_file",
        "audio_sha256",
        "layers",
    ] {
        assert!(md.contains_key(key), "{key}");
    }
}

#[test]
fn bad_ids_and_bad_files_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = EmbeddingCache::open(tmp.path(), "m").unwrap();
    for id in ["", "..", "../x", "a/../b"] {
        assert!(
            matches!(
                cache.write(id, &entry(StoredDtype::F16)),
                Err(StoreError::BadId { .. })
            ),
            "{id}"
        );
    }
    let e = EmbeddingCache::open(tmp.path(), "../x")
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("invalid cache tag `../x`"), "{e}");
    std::fs::write(cache.dir().join("junk.safetensors"), b"not safetensors").unwrap();
    let err = cache.read("junk").unwrap_err().to_string();
    assert!(err.contains("junk.safetensors"), "{err}");
    assert!(ClipEntry::from_frames(vec![1.0; 5], [1, 2, 3], StoredDtype::F16, meta()).is_err());
}

#[test]
fn shards_partition_ids_exactly_once() {
    let ids: Vec<String> = (0..500).map(|i| format!("clip{i:04}")).collect();
    let shards: Vec<Shard> = (0..4)
        .map(|i| Shard::parse(&format!("{i}/4")).unwrap())
        .collect();
    let mut sizes = [0usize; 4];
    for id in &ids {
        let owners: Vec<usize> = (0..4).filter(|&s| shards[s].owns(id)).collect();
        assert_eq!(owners.len(), 1, "{id}");
        sizes[owners[0]] += 1;
    }
    assert!(sizes.iter().all(|&n| n > 90), "balanced enough: {sizes:?}");
    assert!(
        Shard::parse("4/4").is_err() && Shard::parse("1/0").is_err() && Shard::parse("x").is_err()
    );
    assert!(Shard::ALL.owns("anything"));
}

#[test]
fn failure_log_round_trips_and_shards_use_their_own_file() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = EmbeddingCache::open(tmp.path(), "m").unwrap();
    let mut log = FailureLog::default();
    log.push("c1", "c1.wav", "c1.wav: file not found");
    let path = cache.failures_path(None);
    log.save(&path).unwrap();
    assert_eq!(FailureLog::load(&path).unwrap(), log);
    assert!(path.ends_with("failures.json"));
    assert!(cache
        .failures_path(Some(Shard { index: 1, count: 3 }))
        .ends_with("failures.shard-1-of-3.json"));
}

#[test]
fn ids_with_separators_are_stored_under_reversible_keys() {
    // The ids folder-per-label and other importers write (issue 17 item 1: `extract` used to
    // reject them with "invalid clip id ... contains '/'").
    let tmp = tempfile::tempdir().unwrap();
    let cache = EmbeddingCache::open(tmp.path(), "m").unwrap();
    let ids = [
        "happy/actor01/take1",
        "sad\\win\\path",
        "c:colon",
        ".hidden",
        "50% louder",
        "plain-id",
    ];
    for id in ids {
        let path = cache.write(id, &entry(StoredDtype::F16)).unwrap();
        assert_eq!(path.parent().unwrap(), cache.dir(), "{id}: one flat folder");
        assert!(cache.contains(id), "{id}");
        assert_eq!(cache.read(id).unwrap().shape, [2, 3, 2]);
    }
    let mut want: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
    want.sort();
    // A stray file that is no key is not listed.
    std::fs::write(cache.dir().join("%zz.safetensors"), b"x").unwrap();
    assert_eq!(cache.ids().unwrap(), want);
    assert!(cache
        .dir()
        .join("happy%2Factor01%2Ftake1.safetensors")
        .is_file());
}
