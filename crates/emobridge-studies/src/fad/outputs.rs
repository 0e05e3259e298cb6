//! Tables, heatmaps, the per-layer chart and the summary in the run folder.

use super::*;

pub(super) fn write_outputs(
    config: &FadStudyConfig,
    run: &mut RunFolder,
    layers: &[usize],
    svm: &[SpeechMusicRow],
    pairs: &[PairRow],
    model_tag: &str,
) -> Result<(), FadStudyError> {
    let t = Table::from_rows(svm)?;
    t.write_csv(&run.path("speech_vs_music.csv"))?;
    t.write_json(&run.path("speech_vs_music.json"))?;
    t.write_markdown(&run.path("speech_vs_music.md"), 4)?;
    run.table(
        "speech_vs_music.csv",
        "FAD between speech and music, per emotion and hidden state",
        "One row per hidden state and emotion: the Fréchet distance between the speech and the \
         music clips of that emotion, with its bootstrap interval and sample sizes.\nLower means \
         the two domains express the emotion more alike in this representation; compare rows \
         with the same n only.",
    );
    run.output("speech_vs_music.json");
    run.output("speech_vs_music.md");
    let p = Table::from_rows(pairs)?;
    p.write_csv(&run.path("pairs.csv"))?;
    p.write_json(&run.path("pairs.json"))?;
    run.table(
        "pairs.csv",
        "Every cell of the emotion and quadrant FAD matrices",
        "One row per hidden state, group family, comparison (within speech, within music, \
         across) and pair of groups.\nSmall distances mark groups the representation puts \
         close together; the heatmaps draw the same numbers.",
    );
    run.output("pairs.json");
    let closest = report_headlines(run, layers, svm, model_tag)?;
    if config.plots {
        write_plots(run, layers, svm, pairs, model_tag, closest)?;
    }
    let summary = summary_markdown(config, layers, &t);
    emobridge_report::write_atomic(&run.path("summary.md"), summary.as_bytes())?;
    run.artifact(
        crate::ArtifactKind::Data,
        "summary.md",
        "Protocol and speech-vs-music table",
        "The study's settings (statistics level, matching, seed, states) and the \
         speech-vs-music table in Markdown.\nRead it first for what was compared and how.",
    );
    Ok(())
}

pub(super) fn write_plots(
    run: &mut RunFolder,
    layers: &[usize],
    svm: &[SpeechMusicRow],
    pairs: &[PairRow],
    model_tag: &str,
    shown_layer: Option<usize>,
) -> Result<(), FadStudyError> {
    for &layer in layers {
        for family in [Family::Emotion, Family::Quadrant] {
            for comparison in Comparison::ALL {
                let cells: Vec<&PairRow> = pairs
                    .iter()
                    .filter(|p| {
                        p.layer == layer && p.family == family && p.comparison == comparison
                    })
                    .collect();
                if cells.is_empty() {
                    continue;
                }
                let mut row_labels: Vec<String> = Vec::new();
                let mut col_labels: Vec<String> = Vec::new();
                for c in &cells {
                    if !row_labels.contains(&c.row) {
                        row_labels.push(c.row.clone());
                    }
                    if !col_labels.contains(&c.col) {
                        col_labels.push(c.col.clone());
                    }
                }
                let values = row_labels
                    .iter()
                    .map(|r| {
                        col_labels
                            .iter()
                            .map(|c| {
                                cells
                                    .iter()
                                    .find(|p| &p.row == r && &p.col == c)
                                    .map_or(f64::NAN, |p| p.fad)
                            })
                            .collect()
                    })
                    .collect();
                let (row_axis, col_axis, what) = comparison.axes();
                let name = state_name(model_tag, layer);
                let title = format!(
                    "FAD by {}, {}: {what}",
                    family.as_str(),
                    name.trim_start_matches("the ")
                );
                let readable = |labels: Vec<String>| -> Vec<String> {
                    labels.iter().map(|l| quadrant_label(l)).collect()
                };
                let (row_labels, col_labels) = match family {
                    Family::Quadrant => (readable(row_labels), readable(col_labels)),
                    Family::Emotion => (row_labels, col_labels),
                };
                let h = Heatmap {
                    title: title.clone(),
                    row_labels,
                    col_labels,
                    values,
                    row_axis: format!("{row_axis} {}", family.as_str()),
                    col_axis: format!("{col_axis} {}", family.as_str()),
                    value_label: "FAD".into(),
                };
                let stem = format!("heatmaps/layer{layer:02}_{}_{comparison}", family.as_str());
                write_heatmap(
                    &h,
                    &run.path(&format!("{stem}.png")),
                    &run.path(&format!("{stem}.svg")),
                )?;
                run.output(format!("{stem}.png"));
                if shown_layer == Some(layer) && comparison == Comparison::Cross {
                    let caption = match family {
                        Family::Emotion => format!(
                            "FAD between the speech clips of each row's emotion and the music clips \
                             of each column's, in {name}; darker is closer.\nThe diagonal pairs the \
                             same emotion across domains: a diagonal darker than the rest of its row \
                             means that emotion sounds alike in speech and music."
                        ),
                        Family::Quadrant => format!(
                            "The same for the arousal/valence quadrants (A+/A−: high or low \
                             arousal, V+/V−: positive or negative valence), in {name}; darker is \
                             closer.\nA dark diagonal means speech and music of the same quadrant \
                             sit together."
                        ),
                    };
                    run.figure(format!("{stem}.svg"), title, caption);
                } else {
                    run.output(format!("{stem}.svg"));
                }
            }
        }
    }
    let mut emotions: Vec<String> = Vec::new();
    for r in svm {
        if !emotions.contains(&r.emotion) {
            emotions.push(r.emotion.clone());
        }
    }
    let series = emotions
        .iter()
        .map(|e| Series {
            label: e.clone(),
            points: svm
                .iter()
                .filter(|r| &r.emotion == e)
                .map(|r| (r.layer as f64, r.fad))
                .collect(),
        })
        .collect();
    let bands: Vec<Band> = emotions
        .iter()
        .map(|e| Band {
            label: e.clone(),
            points: svm
                .iter()
                .filter(|r| &r.emotion == e)
                .filter_map(|r| Some((r.layer as f64, r.ci_lower?, r.ci_upper?)))
                .collect(),
        })
        .filter(|b| !b.points.is_empty())
        .collect();
    let chart = LineChart {
        title: format!("FAD between speech and music per emotion ({model_tag})"),
        x_label: emobridge_report::plot::LAYER_AXIS.into(),
        y_label: "FAD (lower = closer)".into(),
        series,
    };
    // One layer (a descriptor set) has no curve: its numbers are in the table.
    if layers.len() > 1 && !svm.is_empty() {
        let with_bands = !bands.is_empty();
        write_line_chart_with(
            &chart,
            &ChartExtras {
                bands,
                reference: None,
                band_label: "95% bootstrap interval".into(),
            },
            &run.path("fad_by_layer.png"),
            &run.path("fad_by_layer.svg"),
        )?;
        run.figure(
            "fad_by_layer.svg",
            "FAD between speech and music, layer by layer",
            format!(
                "FAD between the speech and the music of each emotion at every layer{}.\nLower \
                 is closer: the dips show the layers at which the encoder represents an emotion \
                 alike in both domains.",
                match (with_bands, emotions.len() > 4) {
                    (true, true) => "; whiskers are 95% bootstrap intervals over clips",
                    (true, false) => "; shaded bands are 95% bootstrap intervals over clips",
                    _ => "",
                }
            ),
        );
        run.output("fad_by_layer.png");
    }
    Ok(())
}

/// "Q2 (A+ V−)": a quadrant with the signs of its arousal (A) and valence (V).
pub(super) fn quadrant_label(label: &str) -> String {
    match Quadrant::parse(label) {
        Some(q) => {
            let sign = |v: f32| if v > 0.0 { '+' } else { '−' };
            let (a, v) = q.signs();
            format!("{} (A{} V{})", q.as_str(), sign(a), sign(v))
        }
        None => label.to_string(),
    }
}

/// A hidden state in the field's terms: the descriptor set for descriptor caches, else the layer.
pub(super) fn state_name(model_tag: &str, layer: usize) -> String {
    let tag = model_tag.to_ascii_lowercase();
    if tag.starts_with("egemaps") {
        "the eGeMAPS descriptors".into()
    } else if tag.starts_with("compare") {
        "the ComParE descriptors".into()
    } else {
        emobridge_report::plot::layer_name(layer)
    }
}

/// The layer × emotion table of speech-vs-music FAD, the closest and farthest emotions as
/// headlines (at the layer where speech and music are closest on average), and that layer.
pub(super) fn report_headlines(
    run: &mut RunFolder,
    layers: &[usize],
    svm: &[SpeechMusicRow],
    model_tag: &str,
) -> Result<Option<usize>, FadStudyError> {
    let mut emotions: Vec<&str> = Vec::new();
    for r in svm {
        if !emotions.contains(&r.emotion.as_str()) {
            emotions.push(&r.emotion);
        }
    }
    let mut t = Table::new(std::iter::once("layer").chain(emotions.iter().copied()));
    let mut best: Option<(usize, f64)> = None;
    for &layer in layers {
        let row: Vec<Option<f64>> = emotions
            .iter()
            .map(|e| {
                svm.iter()
                    .find(|r| r.layer == layer && r.emotion == *e)
                    .map(|r| r.fad)
            })
            .collect();
        let present: Vec<f64> = row.iter().flatten().copied().collect();
        if !present.is_empty() {
            let mean = present.iter().sum::<f64>() / present.len() as f64;
            if best.is_none_or(|(_, m)| mean < m) {
                best = Some((layer, mean));
            }
        }
        t.push(
            std::iter::once(layer.into())
                .chain(row.into_iter().map(Into::into))
                .collect(),
        )?;
    }
    t.write_csv(&run.path("fad_by_layer.csv"))?;
    run.table(
        "fad_by_layer.csv",
        "FAD between speech and music per emotion",
        "One row per layer, one column per emotion: the Fréchet distance between that emotion's \
         speech and its music.\nSmaller is closer; values compare across the table because every \
         group is subsampled to the same size.",
    );
    let Some((layer, mean)) = best else {
        return Ok(None);
    };
    let name = state_name(model_tag, layer);
    let place = if name.starts_with("the ") {
        format!("In {name} ({model_tag})")
    } else {
        format!("At {name} of {model_tag}")
    };
    let at: Vec<&SpeechMusicRow> = svm.iter().filter(|r| r.layer == layer).collect();
    let closest = at.iter().min_by(|a, b| a.fad.total_cmp(&b.fad));
    let farthest = at.iter().max_by(|a, b| a.fad.total_cmp(&b.fad));
    if let (Some(c), Some(f)) = (closest, farthest) {
        let ci = |r: &SpeechMusicRow| match (r.ci_lower, r.ci_upper) {
            (Some(lo), Some(hi)) => format!(", 95% interval {}–{}", fmt3(lo), fmt3(hi)),
            _ => String::new(),
        };
        run.headline(
            "closest_emotion",
            serde_json::json!({ "emotion": c.emotion, "fad": c.fad, "layer": layer }),
            format!(
                "{place}, speech and music are closest for {} (FAD {}{}).",
                c.emotion,
                fmt3(c.fad),
                ci(c)
            ),
        );
        run.headline(
            "farthest_emotion",
            serde_json::json!({ "emotion": f.emotion, "fad": f.fad, "layer": layer }),
            format!(
                "{place}, speech and music are farthest apart for {} (FAD {}{}).",
                f.emotion,
                fmt3(f.fad),
                ci(f)
            ),
        );
    }
    if layers.len() > 1 {
        run.headline(
            "closest_layer",
            serde_json::json!({ "layer": layer, "mean_fad": mean }),
            format!(
                "Averaged over emotions, speech and music of {model_tag} are closest at {name}: \
                 mean FAD {}.",
                fmt3(mean)
            ),
        );
    }
    Ok(Some(layer))
}

pub(super) fn fmt3(v: f64) -> String {
    emobridge_report::table::format_significant(v, 3)
}

pub(super) fn summary_markdown(config: &FadStudyConfig, layers: &[usize], table: &Table) -> String {
    let level = match config.level {
        StatisticsLevel::Frames => "frame-level statistics (every frame a sample, as fadtk)",
        StatisticsLevel::ClipMeans => "clip-level statistics (one mean vector per clip)",
    };
    let matching = match config.matching {
        SampleMatching::Equal => {
            "every group subsampled to its family's smallest group".to_string()
        }
        SampleMatching::Fixed(n) => format!("every group subsampled to {n} samples"),
        SampleMatching::Off => {
            "no matching (FAD is biased by sample size: compare with care)".to_string()
        }
    };
    format!(
        "# FAD between emotional speech and music\n\nProtocol: {level}; {matching}; seed {}; hidden states {:?}; symmetric trace route \
         (never negative, never complex). Bootstrap: {}.\n\n## Speech vs music per emotion\n\n{}",
        config.seed,
        layers,
        if config.bootstrap >= 2 { format!("{} replicates over clips, {:.0}% percentile intervals", config.bootstrap, config.confidence * 100.0) } else { "off".to_string() },
        table.to_markdown(4)
    )
}
