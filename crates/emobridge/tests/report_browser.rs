//! The demo's `report.html` in a real browser: headless Chromium opens the page, a check script
//! (injected into a copy of the page, ahead of its Content-Security-Policy) records console
//! errors, failed loads, policy violations, broken or empty images and plots, empty sections and
//! a page wider than the viewport, and writes its verdict into the DOM, which `--dump-dom`
//! returns. Chromium's own console log (stderr) must be silent too. A screenshot is taken
//! (copied to `$EMOBRIDGE_REPORT_SCREENSHOT` when set, e.g. to refresh the README's).
//!
//! Without Chromium the tests fail when `CI` is set and are skipped with a printed reason
//! otherwise (install: `apt-get install -y --no-install-recommends chromium`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Runs in the page before anything else; `{{EXPECT}}` lists section ids that must exist.
const CHECK_SCRIPT: &str = r#"<script>
(function () {
  var problems = [];
  var note = function (m) { problems.push(String(m)); };
  ['error', 'warn'].forEach(function (level) {
    var original = console[level];
    console[level] = function () {
      note('console.' + level + ': ' + Array.prototype.join.call(arguments, ' '));
      return original.apply(console, arguments);
    };
  });
  window.addEventListener('error', function (e) {
    var t = e.target;
    if (t && t !== window) {
      note('failed to load: <' + t.tagName.toLowerCase() + '> ' + (t.currentSrc || t.src || t.href || ''));
    } else {
      note('script error: ' + e.message);
    }
  }, true);
  document.addEventListener('securitypolicyviolation', function (e) {
    note('content-security-policy violation: ' + e.violatedDirective + ' ' + e.blockedURI);
  });
  window.addEventListener('load', function () {
    var root = document.documentElement;
    if (root.scrollWidth > window.innerWidth + 1) {
      note('page is ' + root.scrollWidth + ' px wide in a ' + window.innerWidth + ' px viewport');
    }
    Array.prototype.forEach.call(document.querySelectorAll('body *'), function (el) {
      var r = el.getBoundingClientRect();
      if (r.right > window.innerWidth + 1 && !el.closest('.table-wrap') && getComputedStyle(el).position !== 'fixed') {
        note('element wider than the viewport: <' + el.tagName.toLowerCase() + '> ' + (el.id || el.className || '') + ' right edge ' + Math.round(r.right));
      }
    });
    Array.prototype.forEach.call(document.images, function (img) {
      if (!img.complete || img.naturalWidth === 0) {
        note('broken image: ' + (img.alt || img.src.slice(0, 60)));
      }
    });
    Array.prototype.forEach.call(document.querySelectorAll('svg'), function (svg) {
      var r = svg.getBoundingClientRect();
      if (r.width < 80 || r.height < 60 || svg.querySelectorAll('text').length === 0) {
        note('empty or collapsed plot: ' + (svg.getAttribute('aria-label') || '?') + ' (' + Math.round(r.width) + 'x' + Math.round(r.height) + ')');
      }
    });
    Array.prototype.forEach.call(document.querySelectorAll('[src],[href]'), function (el) {
      var v = el.getAttribute('src') || el.getAttribute('href') || '';
      if (/^(https?:)?\/\//i.test(v) && el.tagName.toLowerCase() !== 'a') {
        note('external reference: ' + v);
      }
    });
    Array.prototype.forEach.call(document.querySelectorAll('.missing'), function (el) {
      note('missing artifact: ' + el.textContent.trim());
    });
    Array.prototype.forEach.call(document.querySelectorAll('section, article'), function (s) {
      var heading = s.querySelector('h1, h2, h3');
      var text = s.textContent.replace(heading ? heading.textContent : '', '').trim();
      if (text.length < 20 && !s.querySelector('figure, table, img, svg')) {
        note('empty section: ' + (s.id || (heading && heading.textContent) || s.tagName));
      }
    });
    {{EXPECT}}.forEach(function (id) {
      if (!document.getElementById(id)) { note('no section #' + id); }
    });
    var out = document.createElement('pre');
    out.id = 'emobridge-verdict';
    out.textContent = problems.length ? problems.join('\n') : 'ok';
    document.body.appendChild(out);
  });
})();
</script>"#;

fn chromium() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for name in [
        "chromium",
        "chromium-browser",
        "google-chrome",
        "google-chrome-stable",
    ] {
        for dir in std::env::split_paths(&path).chain([PathBuf::from("/usr/bin")]) {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Some(candidate);
            }
        }
    }
    None
}

/// Chromium, or `None` (after saying why) where the test may be skipped.
fn browser_or_skip() -> Option<PathBuf> {
    match chromium() {
        Some(p) => Some(p),
        None if std::env::var_os("CI").is_some() => panic!(
            "CI is set but Chromium is not installed: the report's browser check needs it \
             (apt-get install -y --no-install-recommends chromium, or set CHROMIUM=/path)"
        ),
        None => {
            eprintln!(
                "SKIPPED: Chromium not found on PATH (install the Debian package `chromium` or \
                 set CHROMIUM=/path); the report's browser check did not run"
            );
            None
        }
    }
}

struct BrowserRun {
    stdout: String,
    stderr: String,
}

/// Runs headless Chromium with `args` (a fresh profile each time), at most `limit`.
fn run_chromium(browser: &Path, args: &[String], limit: Duration) -> BrowserRun {
    let profile = tempfile::tempdir().unwrap();
    let out = tempfile::NamedTempFile::new().unwrap();
    let err = tempfile::NamedTempFile::new().unwrap();
    let mut child = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .stdin(Stdio::null())
        .stdout(out.reopen().unwrap())
        .stderr(err.reopen().unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {}: {e}", browser.display()));
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let stdout = std::fs::read_to_string(out.path()).unwrap_or_default();
            let stderr = std::fs::read_to_string(err.path()).unwrap_or_default();
            assert!(
                status.success() || !stdout.is_empty(),
                "chromium exited with {status}: {stderr}"
            );
            return BrowserRun { stdout, stderr };
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Opens `page` at `width` px with the check script injected; returns the problems found.
fn check_page(browser: &Path, page: &Path, width: u32, expect: &[&str]) -> Vec<String> {
    let html = std::fs::read_to_string(page).unwrap();
    let expect_js = format!(
        "[{}]",
        expect
            .iter()
            .map(|e| format!("'{e}'"))
            .collect::<Vec<_>>()
            .join(",")
    );
    let script = CHECK_SCRIPT.replace("{{EXPECT}}", &expect_js);
    let at = html
        .find("<head>")
        .map(|i| i + "<head>".len())
        .expect("the page has a <head>");
    let checked = format!("{}\n{script}\n{}", &html[..at], &html[at..]);
    // Beside the page, so relative references resolve as they would for the page itself.
    let copy = page.with_file_name(format!("browser-check-{width}.html"));
    std::fs::write(&copy, checked).unwrap();
    let run = run_chromium(
        browser,
        &[
            format!("--window-size={width},900"),
            "--virtual-time-budget=5000".into(),
            "--dump-dom".into(),
            format!("file://{}", copy.display()),
        ],
        Duration::from_secs(120),
    );
    let _ = std::fs::remove_file(&copy);
    let dom = run.stdout;
    let marker = "id=\"emobridge-verdict\">";
    let begin = dom
        .find(marker)
        .unwrap_or_else(|| panic!("the check script left no verdict; stderr: {}", run.stderr))
        + marker.len();
    let end = dom[begin..].find("</pre>").expect("verdict end") + begin;
    let verdict = dom[begin..end]
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&amp;", "&");
    let mut problems: Vec<String> = verdict
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && *l != "ok")
        .map(str::to_string)
        .collect();
    // Chromium logs every console message of the page (and its own load errors) as CONSOLE.
    problems.extend(
        run.stderr
            .lines()
            .filter(|l| l.contains(":CONSOLE"))
            .map(|l| format!("browser console: {l}")),
    );
    problems
}

fn screenshot(browser: &Path, page: &Path, out: &Path) {
    run_chromium(
        browser,
        &[
            "--window-size=1280,2400".into(),
            "--virtual-time-budget=5000".into(),
            format!("--screenshot={}", out.display()),
            format!("file://{}", page.display()),
        ],
        Duration::from_secs(120),
    );
    let bytes = std::fs::read(out).expect("chromium wrote the screenshot");
    assert!(
        bytes.starts_with(b"\x89PNG") && bytes.len() > 20_000,
        "screenshot looks empty"
    );
}

const SECTIONS: [&str; 7] = [
    "findings",
    "descriptors",
    "probe",
    "fad",
    "continuous",
    "finetune",
    "record",
];

#[test]
fn the_demo_report_passes_the_browser_check() {
    let Some(browser) = browser_or_skip() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("demo");
    let model =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../emobridge-ssl/tests/fixtures/mert_like_24k");
    let status = Command::new(env!("CARGO_BIN_EXE_emobridge"))
        .args(["demo", "--quick", "--out"])
        .arg(&out)
        .arg("--model")
        .arg(&model)
        .env("EMOBRIDGE_LOG", "warn")
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "demo failed: {status}");
    let page = out.join("report.html");
    let html = std::fs::read_to_string(&page).unwrap();
    // Every headline of summary.json is stated in the page.
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    // With --model the page does not ask for an encoder.
    assert_eq!(summary["encoder"], true);
    assert!(!html.contains("No self-supervised encoder was run"));
    let runs = summary["runs"].as_array().unwrap();
    assert!(runs.len() >= 5, "{runs:?}");
    let mut headlines = 0;
    for run in runs {
        for h in run["headlines"].as_array().unwrap() {
            let text = emobridge_report::html::esc(h["text"].as_str().unwrap());
            assert!(
                html.contains(&text),
                "headline missing from the page: {text}"
            );
            headlines += 1;
        }
    }
    assert!(headlines >= 10, "{headlines} headlines");
    assert!(std::fs::read_to_string(out.join("summary.md"))
        .unwrap()
        .contains("closest_emotion"));
    for width in [1280, 760] {
        let problems = check_page(&browser, &page, width, &SECTIONS);
        assert!(
            problems.is_empty(),
            "report.html at {width} px:\n{}",
            problems.join("\n")
        );
    }
    let shot = dir.path().join("report.png");
    screenshot(&browser, &page, &shot);
    if let Some(dest) = std::env::var_os("EMOBRIDGE_REPORT_SCREENSHOT") {
        std::fs::copy(&shot, dest).unwrap();
    }
}

#[test]
fn the_browser_check_catches_a_broken_page() {
    let Some(browser) = browser_or_skip() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("bad.html");
    std::fs::write(
        &page,
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>bad</title></head><body>\
         <section id=\"findings\"><h2>Key findings</h2></section>\
         <section id=\"fad\"><h2>FAD</h2><p>Some words long enough to count as content.</p>\
         <img alt=\"truncated plot\" src=\"data:image/png;base64,iVBORw0KGgo=\">\
         <div style=\"width:3000px\">a wide block</div>\
         <p class=\"missing\">Figure x cannot be read.</p></section>\
         <script>console.error('boom')</script></body></html>",
    )
    .unwrap();
    let problems = check_page(&browser, &page, 1000, &["findings", "fad", "record"]).join("\n");
    for expected in [
        "empty section: findings",
        "broken image: truncated plot",
        "wide",
        "missing artifact",
        "console.error: boom",
        "no section #record",
    ] {
        assert!(
            problems.contains(expected),
            "`{expected}` not reported in:\n{problems}"
        );
    }
}
