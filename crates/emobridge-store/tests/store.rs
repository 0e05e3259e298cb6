use emobridge_store::{
    ClipEntry, EmbeddingCache, EntryMetadata, EntryState, FailureLog, Fingerprint, Frames, Shard,
    StoreError, StoredDtype, CACHE_JSON, FINGERPRINT_KEY,
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

#[test]
fn the_reader_gives_layers_means_and_typed_metadata_with_the_weights_hash() {
    let tmp = tempfile::tempdir().unwrap();
    let writer = EmbeddingCache::open(tmp.path(), "tiny-model").unwrap();
    let mut e = entry(StoredDtype::F32);
    assert_eq!(e.metadata.model_weights_sha256(), None);
    e.metadata.set_model_weights_sha256("ab".repeat(32));
    writer.write("clip-1", &e).unwrap();

    let cache = EmbeddingCache::open_existing(tmp.path(), "tiny-model").unwrap();
    assert_eq!(cache.shape("clip-1").unwrap().frames, 3);
    let layer1 = cache.read_layer("clip-1", 1).unwrap();
    assert_eq!(layer1.values, vec![0.5, 0.25, 0.5, 0.25, 0.5, 0.25]);
    let means = cache.read_means("clip-1").unwrap();
    assert_eq!(means.values, vec![2.0, -2.0, 0.5, 0.25]);
    let meta = cache.metadata("clip-1").unwrap();
    assert_eq!(meta.model_weights_sha256(), Some("ab".repeat(32).as_str()));
    assert_eq!(meta.model, "tiny");
    assert_eq!(meta.to_pairs()["layers"], "all");
}

fn many_keys_meta() -> EntryMetadata {
    let mut m = meta();
    for k in [
        "a",
        "b",
        "c",
        "d",
        "e",
        "f",
        "g",
        "h",
        "layers",
        "precision",
        "window_s",
    ] {
        m.extra.insert(k.to_string(), format!("value-{k}"));
    }
    m
}

#[test]
fn the_same_entry_gives_the_same_bytes() {
    // Metadata used to be written from a HashMap: its key order changed from map to map.
    let tmp = tempfile::tempdir().unwrap();
    let values: Vec<f32> = (0..2 * 3 * 2).map(|i| i as f32 * 0.37 - 1.0).collect();
    let mut files = Vec::new();
    for tag in ["one", "two", "three"] {
        let cache = EmbeddingCache::open(tmp.path(), tag).unwrap();
        let e = ClipEntry::from_frames(
            values.clone(),
            [2, 3, 2],
            StoredDtype::F16,
            many_keys_meta(),
        )
        .unwrap();
        files.push(std::fs::read(cache.write("c", &e).unwrap()).unwrap());
    }
    // The streaming writer gives the same bytes as the whole-entry path.
    let cache = EmbeddingCache::open(tmp.path(), "streamed").unwrap();
    let mut w = cache
        .writer("c", [2, 3, 2], Frames::F16, &many_keys_meta())
        .unwrap();
    // Windows of 2 and 1 frames: [states, n, dim] each.
    let window = |from: usize, n: usize| -> Vec<f32> {
        (0..2)
            .flat_map(|s| values[(s * 3 + from) * 2..(s * 3 + from + n) * 2].to_vec())
            .collect()
    };
    w.push(&window(0, 2), 2).unwrap();
    w.push(&window(2, 1), 1).unwrap();
    files.push(std::fs::read(w.finish().unwrap()).unwrap());
    for f in &files[1..] {
        assert!(f == &files[0], "entries differ");
    }
    // Still a safetensors file other tools read.
    let st = safetensors::SafeTensors::deserialize(&files[0]).unwrap();
    assert_eq!(st.tensor("hidden_states").unwrap().shape(), &[2, 3, 2]);
}

#[test]
fn damaged_entries_are_found_from_header_and_size() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = EmbeddingCache::open(tmp.path(), "t").unwrap();
    let good = std::fs::read(cache.write("good", &entry(StoredDtype::F16)).unwrap()).unwrap();
    assert!(matches!(
        cache.check("good", None).unwrap(),
        EntryState::Valid(_)
    ));
    assert_eq!(cache.check("absent", None).unwrap(), EntryState::Missing);
    let cases: [(&str, Vec<u8>, &str); 4] = [
        ("empty", vec![], "0 bytes"),
        ("truncated", good[..good.len() - 5].to_vec(), "truncated"),
        (
            "garbage",
            b"this is not a safetensors file at all".to_vec(),
            "header length",
        ),
        ("padded", [good.clone(), vec![0u8; 3]].concat(), "padded"),
    ];
    for (id, bytes, why) in cases {
        std::fs::write(cache.path_for(id).unwrap(), bytes).unwrap();
        match cache.check(id, None).unwrap() {
            EntryState::Corrupt(reason) => assert!(reason.contains(why), "{id}: {reason}"),
            other => panic!("{id}: {other:?}"),
        }
        // Readers name the file instead of panicking.
        let err = cache.read_means(id).unwrap_err().to_string();
        assert!(err.contains(&format!("{id}.safetensors")), "{err}");
    }
}

#[test]
fn entries_of_another_extraction_name_the_differing_fields() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = EmbeddingCache::open(tmp.path(), "t").unwrap();
    let mut fp = Fingerprint::default();
    fp.insert("layers", "all");
    fp.insert("frames", "f16");
    let mut m = meta();
    m.extra.insert(FINGERPRINT_KEY.into(), fp.digest());
    m.extra.insert("frames".into(), "f16".into());
    let e = ClipEntry::from_frames(vec![0.5; 12], [2, 3, 2], StoredDtype::F16, m).unwrap();
    cache.write("c", &e).unwrap();
    assert!(matches!(
        cache.check("c", Some(&fp)).unwrap(),
        EntryState::Valid(_)
    ));
    let mut other = fp.clone();
    other.insert("layers", "0,2");
    match cache.check("c", Some(&other)).unwrap() {
        EntryState::Foreign(d) => {
            assert_eq!(d.len(), 1);
            assert_eq!(d[0].to_string(), "layers (cache all, this run 0,2)");
        }
        s => panic!("{s:?}"),
    }
    // cache.json: written, read back, compared field by field.
    cache.save_record(&fp).unwrap();
    assert!(cache.record_diff(&fp).unwrap().is_empty());
    assert_eq!(cache.record_diff(&other).unwrap()[0].field, "layers");
    let again = std::fs::read(cache.dir().join(CACHE_JSON)).unwrap();
    cache.save_record(&fp).unwrap();
    assert_eq!(std::fs::read(cache.dir().join(CACHE_JSON)).unwrap(), again);
}

#[test]
fn pooled_only_entries_keep_means_and_refuse_frame_reads_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = EmbeddingCache::open(tmp.path(), "t").unwrap();
    let mut w = cache.writer("p", [2, 3, 2], Frames::None, &meta()).unwrap();
    let values = vec![
        1.0, -1.0, 2.0, -2.0, 3.0, -3.0, 0.5, 0.25, 0.5, 0.25, 0.5, 0.25,
    ];
    w.push(&values, 3).unwrap();
    w.finish().unwrap();
    let h = match cache.check("p", None).unwrap() {
        EntryState::Valid(h) => h,
        s => panic!("{s:?}"),
    };
    assert_eq!(
        (h.states, h.frames, h.dim, h.frames_mode),
        (2, 3, 2, Frames::None)
    );
    let shape = cache.shape("p").unwrap();
    assert_eq!((shape.states, shape.frames, shape.dim), (2, 3, 2));
    assert_eq!(
        cache.read_means("p").unwrap().values,
        vec![2.0, -2.0, 0.5, 0.25]
    );
    let err = cache.read_layer("p", 0).unwrap_err().to_string();
    assert!(
        err.contains("p.safetensors") && err.contains("--frames none"),
        "{err}"
    );
    let err = cache.read("p").unwrap_err().to_string();
    assert!(err.contains("--frames none"), "{err}");
}
