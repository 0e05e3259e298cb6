//! A small typed table written as CSV, JSON (an array of row objects) or Markdown.

use std::path::Path;

use serde_json::{Map, Number, Value};

use crate::{write_atomic, ReportError, Result};

/// One table cell.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Text(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    /// Missing value: empty in CSV/Markdown, `null` in JSON.
    Empty,
}

impl From<&str> for Cell {
    fn from(s: &str) -> Cell {
        Cell::Text(s.to_string())
    }
}
impl From<String> for Cell {
    fn from(s: String) -> Cell {
        Cell::Text(s)
    }
}
impl From<f64> for Cell {
    fn from(v: f64) -> Cell {
        if v.is_finite() {
            Cell::Float(v)
        } else {
            Cell::Empty
        }
    }
}
impl From<usize> for Cell {
    fn from(v: usize) -> Cell {
        Cell::Int(v as i64)
    }
}
impl From<u64> for Cell {
    fn from(v: u64) -> Cell {
        Cell::Int(v as i64)
    }
}
impl From<i64> for Cell {
    fn from(v: i64) -> Cell {
        Cell::Int(v)
    }
}
impl From<bool> for Cell {
    fn from(v: bool) -> Cell {
        Cell::Bool(v)
    }
}
impl<T: Into<Cell>> From<Option<T>> for Cell {
    fn from(v: Option<T>) -> Cell {
        v.map_or(Cell::Empty, Into::into)
    }
}

impl Cell {
    /// Full precision text (CSV): floats use Rust's shortest round-trip form.
    fn full_text(&self) -> String {
        match self {
            Cell::Text(s) => s.clone(),
            Cell::Int(v) => v.to_string(),
            Cell::Float(v) => format!("{v}"),
            Cell::Bool(v) => v.to_string(),
            Cell::Empty => String::new(),
        }
    }

    fn json(&self) -> Value {
        match self {
            Cell::Text(s) => Value::String(s.clone()),
            Cell::Int(v) => Value::Number((*v).into()),
            Cell::Float(v) => Number::from_f64(*v).map_or(Value::Null, Value::Number),
            Cell::Bool(v) => Value::Bool(*v),
            Cell::Empty => Value::Null,
        }
    }

    /// Short text (Markdown): floats with `digits` significant digits.
    fn short_text(&self, digits: usize) -> String {
        match self {
            Cell::Float(v) => format_significant(*v, digits),
            other => other.full_text().replace('|', "\\|"),
        }
    }
}

/// `v` with `digits` significant digits, plain notation for moderate magnitudes.
pub fn format_significant(v: f64, digits: usize) -> String {
    if v == 0.0 || !v.is_finite() {
        return format!("{v}");
    }
    let magnitude = v.abs().log10().floor() as i32;
    if !(-4..=6).contains(&magnitude) {
        return format!("{v:.*e}", digits.saturating_sub(1));
    }
    let decimals = (digits as i32 - 1 - magnitude).max(0) as usize;
    format!("{v:.decimals$}")
}

/// Named columns and rows of cells.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Table {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Cell>>,
}

impl Table {
    pub fn new<S: Into<String>>(columns: impl IntoIterator<Item = S>) -> Table {
        Table {
            columns: columns.into_iter().map(Into::into).collect(),
            rows: Vec::new(),
        }
    }

    /// A table from any rows that serialise as flat structs (or maps): one column per field in
    /// declaration order, one row per item. Numbers, strings, booleans and `None` become cells;
    /// enums with `#[serde(rename_all)]` give their serialised names. A nested field is refused;
    /// no rows give an empty table without columns.
    pub fn from_rows<T: serde::Serialize>(rows: &[T]) -> Result<Table> {
        let mut table: Option<Table> = None;
        for (i, row) in rows.iter().enumerate() {
            let text = serde_json::to_string(row)
                .map_err(|e| ReportError::Table(format!("row {i}: {e}")))?;
            let fields: OrderedFields = serde_json::from_str(&text)
                .map_err(|e| ReportError::Table(format!("row {i}: {e}")))?;
            let t =
                table.get_or_insert_with(|| Table::new(fields.0.iter().map(|(k, _)| k.clone())));
            if fields.0.iter().map(|(k, _)| k).ne(t.columns.iter()) {
                return Err(ReportError::Table(format!(
                    "row {i} has fields that differ from the first row's"
                )));
            }
            let cells = fields
                .0
                .into_iter()
                .map(|(k, v)| match v {
                    Value::Null => Ok(Cell::Empty),
                    Value::Bool(b) => Ok(Cell::Bool(b)),
                    Value::String(s) => Ok(Cell::Text(s)),
                    Value::Number(n) => Ok(match n.as_i64() {
                        Some(i) => Cell::Int(i),
                        None => Cell::from(n.as_f64().unwrap_or(f64::NAN)),
                    }),
                    _ => Err(ReportError::Table(format!(
                        "row {i}: field `{k}` is not a scalar"
                    ))),
                })
                .collect::<Result<Vec<_>>>()?;
            t.push(cells)?;
        }
        // No rows: no columns to take either.
        Ok(table.unwrap_or_else(|| Table::new(Vec::<String>::new())))
    }

    /// Appends a row; it must have one cell per column.
    pub fn push(&mut self, row: Vec<Cell>) -> Result<()> {
        if row.len() != self.columns.len() {
            return Err(ReportError::Table(format!(
                "row has {} cells for {} columns",
                row.len(),
                self.columns.len()
            )));
        }
        self.rows.push(row);
        Ok(())
    }

    pub fn to_csv(&self) -> String {
        let mut w = csv::Writer::from_writer(Vec::new());
        w.write_record(&self.columns).expect("in-memory write");
        for row in &self.rows {
            w.write_record(row.iter().map(Cell::full_text))
                .expect("in-memory write");
        }
        String::from_utf8(w.into_inner().expect("in-memory flush")).expect("UTF-8 cells")
    }

    /// An array with one object per row, keys in column order.
    pub fn to_json(&self) -> Value {
        Value::Array(
            self.rows
                .iter()
                .map(|row| {
                    Value::Object(
                        self.columns
                            .iter()
                            .cloned()
                            .zip(row.iter().map(Cell::json))
                            .collect::<Map<String, Value>>(),
                    )
                })
                .collect(),
        )
    }

    /// A GitHub-flavoured Markdown table, floats with `digits` significant digits.
    pub fn to_markdown(&self, digits: usize) -> String {
        let mut out = format!(
            "| {} |\n|{}\n",
            self.columns.join(" | "),
            "---|".repeat(self.columns.len())
        );
        for row in &self.rows {
            let cells: Vec<String> = row.iter().map(|c| c.short_text(digits)).collect();
            out.push_str(&format!("| {} |\n", cells.join(" | ")));
        }
        out
    }

    pub fn write_csv(&self, path: &Path) -> Result<()> {
        write_atomic(path, self.to_csv().as_bytes())
    }

    pub fn write_json(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(&self.to_json()).expect("JSON values serialise");
        write_atomic(path, format!("{text}\n").as_bytes())
    }

    pub fn write_markdown(&self, path: &Path, digits: usize) -> Result<()> {
        write_atomic(path, self.to_markdown(digits).as_bytes())
    }
}

/// A JSON object's fields in the order they appear in the text.
struct OrderedFields(Vec<(String, Value)>);

impl<'de> serde::Deserialize<'de> for OrderedFields {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct Fields;
        impl<'de> serde::de::Visitor<'de> for Fields {
            type Value = OrderedFields;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a struct or map")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<OrderedFields, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, Value>()? {
                    out.push((k, v));
                }
                Ok(OrderedFields(out))
            }
        }
        d.deserialize_map(Fields)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Table {
        let mut t = Table::new(["layer", "emotion", "fad", "ok"]);
        t.push(vec![
            3usize.into(),
            "happy".into(),
            12.345678.into(),
            true.into(),
        ])
        .unwrap();
        t.push(vec![
            4usize.into(),
            "a, \"b\"".into(),
            f64::NAN.into(),
            false.into(),
        ])
        .unwrap();
        t
    }

    #[test]
    fn csv_quotes_and_keeps_full_precision() {
        let csv = sample().to_csv();
        assert_eq!(
            csv,
            "layer,emotion,fad,ok\n3,happy,12.345678,true\n4,\"a, \"\"b\"\"\",,false\n"
        );
    }

    #[test]
    fn json_is_an_array_of_objects_with_nulls_for_missing() {
        let v = sample().to_json();
        assert_eq!(v[0]["fad"], serde_json::json!(12.345678));
        assert_eq!(v[1]["fad"], Value::Null);
        assert_eq!(v[1]["emotion"], serde_json::json!("a, \"b\""));
    }

    #[test]
    fn markdown_rounds_floats() {
        let md = sample().to_markdown(3);
        assert!(
            md.starts_with(
                "| layer | emotion | fad | ok |\n|---|---|---|---|\n| 3 | happy | 12.3 | true |"
            ),
            "{md}"
        );
        assert_eq!(format_significant(0.000123456, 3), "0.000123");
        assert_eq!(format_significant(1.5e9, 3), "1.50e9");
    }

    #[test]
    fn a_row_of_the_wrong_width_is_refused() {
        let mut t = Table::new(["a", "b"]);
        assert!(t.push(vec![Cell::Empty]).is_err());
    }

    #[test]
    fn writes_atomically_into_new_folders() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/t.csv");
        sample().write_csv(&path).unwrap();
        assert!(std::fs::read_to_string(&path)
            .unwrap()
            .starts_with("layer,"));
        assert_eq!(
            std::fs::read_dir(dir.path().join("sub")).unwrap().count(),
            1,
            "no temporary file left behind"
        );
    }

    #[test]
    fn from_rows_takes_fields_in_declaration_order() {
        #[derive(serde::Serialize)]
        #[serde(rename_all = "lowercase")]
        enum Kind {
            Cross,
        }
        #[derive(serde::Serialize)]
        struct Row {
            zeta: usize,
            alpha: &'static str,
            fad: f64,
            ci: Option<f64>,
            kind: Kind,
            ok: bool,
        }
        let rows = [
            Row {
                zeta: 3,
                alpha: "happy",
                fad: 0.0,
                ci: None,
                kind: Kind::Cross,
                ok: true,
            },
            Row {
                zeta: 4,
                alpha: "sad",
                fad: 1.5,
                ci: Some(2.0),
                kind: Kind::Cross,
                ok: false,
            },
        ];
        let t = Table::from_rows(&rows).unwrap();
        assert_eq!(t.columns, ["zeta", "alpha", "fad", "ci", "kind", "ok"]);
        assert_eq!(
            t.rows[0],
            vec![
                Cell::Int(3),
                Cell::Text("happy".into()),
                Cell::Float(0.0),
                Cell::Empty,
                Cell::Text("cross".into()),
                Cell::Bool(true)
            ]
        );
        assert_eq!(t.rows[1][3], Cell::Float(2.0));
        assert!(Table::from_rows::<Row>(&[]).unwrap().columns.is_empty());
        #[derive(serde::Serialize)]
        struct Nested {
            v: Vec<u8>,
        }
        assert!(Table::from_rows(&[Nested { v: vec![1] }]).is_err());
    }
}
