//! Tables, heatmaps, the per-layer chart and the summary in the run folder.

use super::*;

pub(super) fn write_outputs(
    config: &FadStudyConfig,
    run: &mut RunFolder,
    layers: &[usize],
    svm: &[SpeechMusicRow],
    pairs: &[PairRow],
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
    if config.plots {
        write_plots(run, layers, svm, pairs)?;
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
                let h = Heatmap {
                    title: format!("FAD by {}, state {layer}: {what}", family.as_str()),
                    row_labels,
                    col_labels,
                    values,
                    row_axis: row_axis.into(),
                    col_axis: col_axis.into(),
                    value_label: "FAD".into(),
                };
                let stem = format!("heatmaps/layer{layer:02}_{}_{comparison}", family.as_str());
                write_heatmap(
                    &h,
                    &run.path(&format!("{stem}.png")),
                    &run.path(&format!("{stem}.svg")),
                )?;
                run.output(format!("{stem}.png"));
                run.figure(
                    format!("{stem}.svg"),
                    format!("FAD by {}, state {layer}: {what}", family.as_str()),
                    format!(
                        "Fréchet distance between every pair of {} groups ({what}) at hidden \
                         state {layer}.\nDarker cells are closer pairs; the diagonal of a \
                         within-domain matrix is 0 by definition.",
                        family.as_str()
                    ),
                );
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
    let chart = LineChart {
        title: "FAD between speech and music per emotion".into(),
        x_label: "hidden state (layer)".into(),
        y_label: "FAD".into(),
        series,
    };
    if !svm.is_empty() {
        write_line_chart(
            &chart,
            &run.path("fad_by_layer.png"),
            &run.path("fad_by_layer.svg"),
        )?;
        run.output("fad_by_layer.png");
        run.figure(
            "fad_by_layer.svg",
            "FAD between speech and music per emotion, by hidden state",
            "One line per emotion: the speech-vs-music distance at each hidden state.\nWhere \
             a line dips, that layer represents the emotion alike in both domains.",
        );
    }
    Ok(())
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
