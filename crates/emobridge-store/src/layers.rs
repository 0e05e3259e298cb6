//! Which hidden states to keep or analyse: `all`, or indices and inclusive ranges such as
//! `0,6,12` or `4-8` (0 = input to the first transformer layer, L = the last layer). One parser
//! for every front end (the `--layers` option of `extract`, `fad`, …).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A selection of hidden-state indices; serialised as its text form (`"all"`, `"0,6,10-12"`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum LayerSelection {
    /// Every state the model (or cache) has.
    #[default]
    All,
    /// These states, in the order given, without duplicates.
    List(Vec<usize>),
}

/// Why a layer selection could not be parsed or does not fit a model.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayerSelectionError {
    #[error("`{0}` is not an index or a range a-b")]
    NotAnIndex(String),
    #[error("range `{0}` runs backwards")]
    Reversed(String),
    #[error("no layer selected")]
    Empty,
    #[error("index {index} is out of range: there are states 0..={last}")]
    OutOfRange { index: usize, last: usize },
    #[error("there are no hidden states to select from")]
    NoStates,
}

impl LayerSelection {
    /// The listed indices, or `None` for all.
    pub fn indices(&self) -> Option<&[usize]> {
        match self {
            LayerSelection::All => None,
            LayerSelection::List(v) => Some(v),
        }
    }

    /// The indices for a model with `states` hidden states (every listed index must exist).
    pub fn resolve(&self, states: usize) -> Result<Vec<usize>, LayerSelectionError> {
        if states == 0 {
            return Err(LayerSelectionError::NoStates);
        }
        match self {
            LayerSelection::All => Ok((0..states).collect()),
            LayerSelection::List(v) => {
                if let Some(&index) = v.iter().find(|&&i| i >= states) {
                    return Err(LayerSelectionError::OutOfRange {
                        index,
                        last: states - 1,
                    });
                }
                Ok(v.clone())
            }
        }
    }
}

impl FromStr for LayerSelection {
    type Err = LayerSelectionError;

    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        if spec.trim() == "all" {
            return Ok(LayerSelection::All);
        }
        let mut out: Vec<usize> = Vec::new();
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (a, b) = part.split_once('-').unwrap_or((part, part));
            let parse = |x: &str| {
                x.trim()
                    .parse::<usize>()
                    .map_err(|_| LayerSelectionError::NotAnIndex(part.to_string()))
            };
            let (a, b) = (parse(a)?, parse(b)?);
            if a > b {
                return Err(LayerSelectionError::Reversed(part.to_string()));
            }
            for i in a..=b {
                if !out.contains(&i) {
                    out.push(i);
                }
            }
        }
        if out.is_empty() {
            return Err(LayerSelectionError::Empty);
        }
        Ok(LayerSelection::List(out))
    }
}

impl fmt::Display for LayerSelection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LayerSelection::All => f.write_str("all"),
            LayerSelection::List(v) => {
                let parts: Vec<String> = v.iter().map(usize::to_string).collect();
                f.write_str(&parts.join(","))
            }
        }
    }
}

impl Serialize for LayerSelection {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for LayerSelection {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_ranges_and_errors() {
        assert_eq!("all".parse(), Ok(LayerSelection::All));
        let sel: LayerSelection = "0, 6,10-12".parse().unwrap();
        assert_eq!(sel, LayerSelection::List(vec![0, 6, 10, 11, 12]));
        assert_eq!(sel.to_string(), "0,6,10,11,12");
        assert_eq!(sel.resolve(13).unwrap(), vec![0, 6, 10, 11, 12]);
        assert_eq!(
            sel.resolve(12),
            Err(LayerSelectionError::OutOfRange {
                index: 12,
                last: 11
            })
        );
        assert_eq!(LayerSelection::All.resolve(3).unwrap(), vec![0, 1, 2]);
        assert_eq!(
            "5-3".parse::<LayerSelection>(),
            Err(LayerSelectionError::Reversed("5-3".into()))
        );
        assert_eq!(
            "x".parse::<LayerSelection>(),
            Err(LayerSelectionError::NotAnIndex("x".into()))
        );
        assert_eq!(
            " , ".parse::<LayerSelection>(),
            Err(LayerSelectionError::Empty)
        );
        assert_eq!(
            "3,3,2-3".parse::<LayerSelection>(),
            Ok(LayerSelection::List(vec![3, 2]))
        );
        let json = serde_json::to_string(&sel).unwrap();
        assert_eq!(json, "\"0,6,10,11,12\"");
        assert_eq!(serde_json::from_str::<LayerSelection>(&json).unwrap(), sel);
    }
}
