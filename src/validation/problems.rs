//! Field paths and the problems found at them.

use std::fmt;

/// A path to a field, written the way `kubectl explain` and API errors write it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FieldPath(String);

impl FieldPath {
    /// The root of an object (`metadata`, `spec`... hang off it).
    pub fn root() -> Self {
        Self(String::new())
    }

    /// A path starting at the named top-level field.
    pub fn new(field: &str) -> Self {
        Self(field.to_owned())
    }

    /// The named field below this one.
    pub fn field(&self, name: &str) -> Self {
        if self.0.is_empty() {
            Self(name.to_owned())
        } else {
            Self(format!("{}.{name}", self.0))
        }
    }

    /// The list element at `index` below this one.
    pub fn index(&self, index: usize) -> Self {
        Self(format!("{}[{index}]", self.0))
    }

    /// The map entry with `key` below this one.
    pub fn key(&self, key: &str) -> Self {
        Self(format!("{}[{key:?}]", self.0))
    }

    /// Whether this path is `other` or lies below it.
    pub fn is_within(&self, other: &FieldPath) -> bool {
        match self.0.strip_prefix(&other.0) {
            Some(rest) => other.0.is_empty() || rest.is_empty() || rest.starts_with(['.', '[']),
            None => false,
        }
    }

    /// The path as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            f.write_str("(root)")
        } else {
            f.write_str(&self.0)
        }
    }
}

/// Whether a problem makes the object unusable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// The object is rejected.
    Error,
    /// The object is accepted, but probably not what its author meant.
    Warning,
}

/// One problem at one field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// Error or warning.
    pub severity: Severity,
    /// Where.
    pub path: FieldPath,
    /// What is wrong and what was expected.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let label = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        if self.path.as_str().is_empty() {
            write!(f, "{label}: {}", self.message)
        } else {
            write!(f, "{label}: {}: {}", self.path, self.message)
        }
    }
}

/// The problems found in one object, in the order they were found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Problems(Vec<Problem>);

impl Problems {
    /// No problems yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records an error at `path`.
    pub fn error(&mut self, path: &FieldPath, message: impl Into<String>) {
        self.push(Severity::Error, path, message);
    }

    /// Records a warning at `path`.
    pub fn warning(&mut self, path: &FieldPath, message: impl Into<String>) {
        self.push(Severity::Warning, path, message);
    }

    fn push(&mut self, severity: Severity, path: &FieldPath, message: impl Into<String>) {
        self.0.push(Problem {
            severity,
            path: path.clone(),
            message: message.into(),
        });
    }

    /// Records the error of a failed check, if any, and passes the value through.
    pub fn check<T>(&mut self, path: &FieldPath, result: Result<T, String>) -> Option<T> {
        result.map_err(|message| self.error(path, message)).ok()
    }

    /// Appends all problems of `other`.
    pub fn extend(&mut self, other: Problems) {
        self.0.extend(other.0);
    }

    /// Whether any problem is an error.
    pub fn has_errors(&self) -> bool {
        self.0.iter().any(|p| p.severity == Severity::Error)
    }

    /// Whether nothing was found.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The problems, in order.
    pub fn iter(&self) -> impl Iterator<Item = &Problem> {
        self.0.iter()
    }

    /// The errors only.
    pub fn errors(&self) -> impl Iterator<Item = &Problem> {
        self.0.iter().filter(|p| p.severity == Severity::Error)
    }
}

impl IntoIterator for Problems {
    type Item = Problem;
    type IntoIter = std::vec::IntoIter<Problem>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}
