//! The probe's heads and normalisations against scikit-learn 1.9 (fixtures by
//! `tools/fixtures/probe_sklearn.py`): per-group StandardScaler, class-weighted
//! LogisticRegression, Ridge (primal and kernel forms), MLPClassifier / MLPRegressor loss and
//! gradients at given weights, and MLP training accuracy.

use emobridge_learn::mlp::{Dense, Targets};
use emobridge_learn::{
    balanced_weights, GroupStandardizer, LogisticConfig, LogisticRegression, Mlp, MlpConfig,
    MlpTask, Ridge,
};
use serde_json::Value;

fn fixture() -> Value {
    serde_json::from_str(include_str!("fixtures/probe_sklearn.json")).unwrap()
}

fn f64s(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn usizes(v: &Value) -> Vec<usize> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as usize)
        .collect()
}

fn n(v: &Value) -> usize {
    v.as_u64().unwrap() as usize
}

fn close(a: &[f64], b: &[f64], tol: f64, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    let worst = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max);
    eprintln!("{what}: largest difference {worst:.1e}");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(
            (x - y).abs() <= tol * (1.0 + y.abs()),
            "{what}[{i}]: {x} vs {y}"
        );
    }
}

#[test]
fn group_standardisation_matches_standard_scaler_per_group() {
    let f = &fixture()["group_scaler"];
    let groups: Vec<String> = f["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g.as_str().unwrap().to_string())
        .collect();
    let refs: Vec<&str> = groups.iter().map(String::as_str).collect();
    let x = f64s(&f["x"]);
    let (rows, cols) = (n(&f["rows"]), n(&f["cols"]));
    let g = GroupStandardizer::fit(&x, rows, cols, &refs).unwrap();
    close(
        &g.transform(&x, rows, &refs).unwrap(),
        &f64s(&f["z"]),
        1e-12,
        "z",
    );
}

#[test]
fn balanced_class_weights_match_logistic_regression() {
    let f = &fixture()["logistic_balanced"];
    let y = usizes(&f["y"]);
    let w = balanced_weights(&y);
    let cfg = LogisticConfig {
        c: f["c"].as_f64().unwrap(),
        solver: emobridge_learn::lbfgs::LbfgsConfig {
            gtol: 1e-10,
            max_iter: 10_000,
            memory: 10,
        },
        ..LogisticConfig::default()
    };
    let m = LogisticRegression::fit_weighted(
        &f64s(&f["x"]),
        n(&f["rows"]),
        n(&f["cols"]),
        &y,
        n(&f["n_labels"]),
        Some(&w),
        &cfg,
    )
    .unwrap();
    close(&m.coef, &f64s(&f["coef"]), 1e-6, "coef");
    close(&m.intercept, &f64s(&f["intercept"]), 1e-6, "intercept");
}

#[test]
fn ridge_matches_in_primal_and_kernel_form() {
    for f in fixture()["ridge"].as_array().unwrap() {
        let (rows, cols) = (n(&f["rows"]), n(&f["cols"]));
        let x = f64s(&f["x"]);
        let m = Ridge::fit(
            &x,
            rows,
            cols,
            &f64s(&f["y"]),
            2,
            f["alpha"].as_f64().unwrap(),
        )
        .unwrap();
        let name = f["name"].as_str().unwrap();
        close(&m.coef, &f64s(&f["coef"]), 1e-9, name);
        close(&m.intercept, &f64s(&f["intercept"]), 1e-9, name);
        close(&m.predict(&x, rows).unwrap(), &f64s(&f["pred"]), 1e-9, name);
    }
}

#[test]
fn mlp_loss_and_gradients_match_backprop() {
    for f in fixture()["mlp_backprop"].as_array().unwrap() {
        let (rows, dim) = (n(&f["rows"]), n(&f["dim"]));
        let x = f64s(&f["x"]);
        let hidden = usizes(&f["hidden"]);
        let (task, labels, values);
        let targets = if f["task"] == "classify" {
            labels = usizes(&f["y"]);
            task = MlpTask::Classify {
                n_labels: n(&f["n_labels"]),
            };
            Targets::Classes {
                y: &labels,
                n_labels: n(&f["n_labels"]),
            }
        } else {
            values = f64s(&f["y"]);
            task = MlpTask::Regress { outputs: 1 };
            Targets::Values {
                y: &values,
                outputs: 1,
            }
        };
        let mut model = Mlp::init(task, 1, dim, &hidden, 0);
        let widths: Vec<usize> = std::iter::once(dim)
            .chain(hidden.iter().copied())
            .chain([model.dense.last().unwrap().fan_out])
            .collect();
        model.dense = f["coefs"]
            .as_array()
            .unwrap()
            .iter()
            .zip(f["intercepts"].as_array().unwrap())
            .zip(widths.windows(2))
            .map(|((w, b), fan)| Dense {
                w: f64s(w),
                b: f64s(b),
                fan_in: fan[0],
                fan_out: fan[1],
            })
            .collect();
        let (loss, grad) = model
            .loss_and_gradient(&[&x], rows, targets, f["alpha"].as_f64().unwrap())
            .unwrap();
        let what = f["task"].as_str().unwrap();
        close(&[loss], &[f["loss"].as_f64().unwrap()], 1e-12, what);
        close(&grad, &f64s(&f["grad"]), 1e-12, what);
    }
}

#[test]
fn mlp_training_reaches_scikit_learns_accuracy() {
    let f = &fixture()["mlp_training"];
    let (rows, cols, n_train) = (n(&f["rows"]), n(&f["cols"]), n(&f["n_train"]));
    let x = f64s(&f["x"]);
    let y = usizes(&f["y"]);
    let sk = f64s(&f["sklearn_test_accuracy"]);
    let sk_mean = sk.iter().sum::<f64>() / sk.len() as f64;
    let mut ours = Vec::new();
    for seed in 0..5 {
        let cfg = MlpConfig {
            hidden: usizes(&f["hidden"]),
            dropout: 0.0,
            dev_share: 0.0,
            max_epochs: n(&f["epochs"]),
            patience: n(&f["epochs"]),
            seed,
            ..MlpConfig::default()
        };
        let m = Mlp::fit(
            &[&x[..n_train * cols]],
            n_train,
            cols,
            Targets::Classes {
                y: &y[..n_train],
                n_labels: n(&f["n_labels"]),
            },
            None,
            &cfg,
        )
        .unwrap();
        let pred = m.predict(&[&x[n_train * cols..]], rows - n_train).unwrap();
        ours.push(
            pred.iter()
                .zip(&y[n_train..])
                .filter(|(a, b)| a == b)
                .count() as f64
                / (rows - n_train) as f64,
        );
    }
    let mean = ours.iter().sum::<f64>() / ours.len() as f64;
    eprintln!("test accuracy: emobridge {ours:?}, scikit-learn {sk:?}");
    assert!(
        (mean - sk_mean).abs() < 0.04,
        "emobridge {ours:?} vs scikit-learn {sk:?}"
    );
}
