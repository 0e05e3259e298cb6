//! # emobridge-report
//!
//! Owns the outputs people read: tables (CSV/JSON/Markdown), plots (plotters) and the HTML report.
