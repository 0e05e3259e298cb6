//! Parity with scikit-learn 1.9 / scipy 1.17 on fixtures from `tools/fixtures/learn_sklearn.py`.

use emobridge_learn::{metrics, LogisticConfig, LogisticRegression, Standardizer};
use serde_json::Value;

fn fixture() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/sklearn.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn labels(v: &Value) -> Vec<usize> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as usize)
        .collect()
}

fn max_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

#[test]
fn standardizer_and_logistic_regression_match_scikit_learn() {
    let doc = fixture();
    for case in doc["logistic"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let (rows, cols) = (
            case["rows"].as_u64().unwrap() as usize,
            case["cols"].as_u64().unwrap() as usize,
        );
        let n_train = case["n_train"].as_u64().unwrap() as usize;
        let n_labels = case["n_labels"].as_u64().unwrap() as usize;
        let x = floats(&case["x"]);
        let y = labels(&case["y"]);

        let scaler = Standardizer::fit(&x[..n_train * cols], n_train, cols).unwrap();
        assert!(
            max_diff(&scaler.mean, &floats(&case["scaler_mean"])) < 1e-12,
            "{name}: mean"
        );
        assert!(
            max_diff(&scaler.scale, &floats(&case["scaler_scale"])) < 1e-12,
            "{name}: scale"
        );
        let xs = scaler.transform(&x, rows).unwrap();

        let cfg = LogisticConfig {
            c: case["c"].as_f64().unwrap(),
            solver: emobridge_learn::lbfgs::LbfgsConfig {
                gtol: 1e-10,
                max_iter: 10_000,
                memory: 10,
            },
            ..LogisticConfig::default()
        };
        let model = LogisticRegression::fit(
            &xs[..n_train * cols],
            n_train,
            cols,
            &y[..n_train],
            n_labels,
            &cfg,
        )
        .unwrap();
        assert!(model.converged, "{name}: {} iterations", model.iterations);
        let coef_err = max_diff(&model.coef, &floats(&case["coef"]));
        let icpt_err = max_diff(&model.intercept, &floats(&case["intercept"]));
        assert!(
            coef_err < 1e-6 && icpt_err < 1e-6,
            "{name}: coef {coef_err:.2e}, intercept {icpt_err:.2e}"
        );

        // scikit-learn's probabilities cover its classes_ only; ours the whole label space.
        let n_test = rows - n_train;
        let proba = model.predict_proba(&xs[n_train * cols..], n_test).unwrap();
        let want = floats(&case["test_proba"]);
        let k = model.classes.len();
        let mut ours = Vec::with_capacity(n_test * k);
        for row in proba.chunks_exact(n_labels) {
            ours.extend(model.classes.iter().map(|&c| row[c]));
            let unseen: f64 = (0..n_labels)
                .filter(|l| !model.classes.contains(l))
                .map(|l| row[l])
                .sum();
            assert_eq!(unseen, 0.0);
        }
        let proba_err = max_diff(&ours, &want);
        assert!(proba_err < 1e-6, "{name}: probabilities {proba_err:.2e}");
        assert_eq!(
            model.predict(&xs[n_train * cols..], n_test).unwrap(),
            labels(&case["test_pred"]),
            "{name}"
        );
    }
}

#[test]
fn classification_metrics_match_scikit_learn() {
    let doc = fixture();
    let c = &doc["classification"];
    let s = metrics::classification(&labels(&c["truth"]), &labels(&c["pred"]), 6).unwrap();
    assert!((s.weighted_accuracy - c["accuracy"].as_f64().unwrap()).abs() < 1e-15);
    assert!((s.unweighted_accuracy - c["balanced_accuracy"].as_f64().unwrap()).abs() < 1e-15);
    assert!((s.macro_f1 - c["macro_f1"].as_f64().unwrap()).abs() < 1e-15);
    let want: Vec<Vec<u64>> = c["confusion"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap())
                .collect()
        })
        .collect();
    assert_eq!(s.confusion, want);
}

#[test]
fn regression_metrics_match_scipy_and_the_avec_formula() {
    let doc = fixture();
    let r = &doc["regression"];
    let s = metrics::regression(&floats(&r["truth"]), &floats(&r["pred"])).unwrap();
    assert!(
        (s.pearson - r["pearson"].as_f64().unwrap()).abs() < 1e-13,
        "{s:?}"
    );
    assert!((s.ccc - r["ccc"].as_f64().unwrap()).abs() < 1e-13, "{s:?}");
    assert!(
        (s.rmse - r["rmse"].as_f64().unwrap()).abs() < 1e-13,
        "{s:?}"
    );
}
