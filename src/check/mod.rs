//! `greenlight check`: validates Pipelines, Releases and Approvals offline, reporting every
//! problem with its file, document and field path.

pub(crate) mod load;
mod object;
mod positions;

use std::{collections::HashMap, fmt::Write as _, path::PathBuf};

use object::{Checked, ObjectId, check_object, identify};

use crate::validation::{
    Problem, Severity, validate_approval_references, validate_release_references,
};

pub use load::{SourceDocument, split_documents};
pub use positions::{Position, Positions};

/// A problem with where it was found.
#[derive(Clone, Debug)]
pub struct Finding {
    /// `file:line:column` of the field (or `file:line` of the document, for a problem
    /// with the whole document).
    pub location: String,
    /// The object, when the document could be identified.
    pub object: Option<String>,
    /// What is wrong.
    pub problem: Problem,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.object {
            Some(object) => write!(f, "{}: {object}: {}", self.location, self.problem),
            None => write!(f, "{}: {}", self.location, self.problem),
        }
    }
}

/// What `check` found.
#[derive(Debug, Default)]
pub struct Report {
    /// Every problem, in file order.
    pub findings: Vec<Finding>,
    /// Files read.
    pub files: usize,
    /// Greenlight objects checked, by kind.
    pub objects: HashMap<String, usize>,
    /// Documents of other API groups, skipped.
    pub skipped: usize,
}

impl Report {
    /// Number of errors.
    pub fn errors(&self) -> usize {
        self.findings
            .iter()
            .filter(|f| f.problem.severity == Severity::Error)
            .count()
    }

    /// Number of warnings.
    pub fn warnings(&self) -> usize {
        self.findings.len() - self.errors()
    }

    /// The findings, one per line, then a summary line.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for finding in &self.findings {
            let _ = writeln!(out, "{finding}");
        }
        let kinds: Vec<String> = ["Pipeline", "Release", "Approval"]
            .iter()
            .filter_map(|k| {
                self.objects
                    .get(*k)
                    .map(|n| format!("{n} {k}{}", if *n == 1 { "" } else { "s" }))
            })
            .collect();
        let objects = if kinds.is_empty() {
            "no Greenlight objects".to_owned()
        } else {
            kinds.join(", ")
        };
        let skipped = if self.skipped > 0 {
            format!(" ({} other documents skipped)", self.skipped)
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "checked {} file{}: {objects}{skipped}; {} error{}, {} warning{}",
            self.files,
            if self.files == 1 { "" } else { "s" },
            self.errors(),
            if self.errors() == 1 { "" } else { "s" },
            self.warnings(),
            if self.warnings() == 1 { "" } else { "s" },
        );
        out
    }
}

/// Checks every Greenlight object in `inputs` (files, directories, or `-`).
pub fn check_paths(inputs: &[PathBuf]) -> Report {
    let mut report = Report::default();
    let files = match load::collect_files(inputs) {
        Ok(files) => files,
        Err(message) => {
            report.findings.push(io_finding(message));
            return report;
        }
    };
    let mut documents = Vec::new();
    for file in &files {
        match load::read_documents(file) {
            Ok(docs) => documents.extend(docs),
            Err(message) => report.findings.push(io_finding(message)),
        }
    }
    report.files = files.len();
    check_documents(documents, &mut report);
    report
}

fn io_finding(message: String) -> Finding {
    let (location, message) = match message.split_once(": ") {
        Some((location, rest)) => (location.to_owned(), rest.to_owned()),
        None => (String::new(), message),
    };
    Finding::document_error(location, message)
}

impl Finding {
    /// An error about a whole file or document rather than one field.
    fn document_error(location: String, message: String) -> Self {
        let problem = Problem {
            severity: Severity::Error,
            path: crate::validation::FieldPath::root(),
            message,
        };
        Finding {
            location,
            object: None,
            problem,
        }
    }
}

struct Seen {
    id: ObjectId,
    location: Location,
    checked: Checked,
}

/// Where a document is: its file, first line, and the positions of its fields.
struct Location {
    file: String,
    line: usize,
    positions: Positions,
}

impl Location {
    /// `file:line:column` of `path`, or of its closest written parent; the document's
    /// first line when none of it is written.
    fn of(&self, path: &crate::validation::FieldPath) -> String {
        match self.positions.find(path) {
            Some(Position { line, column }) => format!("{}:{line}:{column}", self.file),
            None => self.to_string(),
        }
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

/// Checks parsed documents, then the references between them.
pub fn check_documents(documents: Vec<SourceDocument>, report: &mut Report) {
    let mut seen: Vec<Seen> = Vec::new();
    for document in documents {
        let location = Location {
            file: document.file,
            line: document.line,
            positions: document.positions,
        };
        let value = match document.content {
            Ok(value) => value,
            Err(message) => {
                report
                    .findings
                    .push(Finding::document_error(location.to_string(), message));
                continue;
            }
        };
        let mut problems = crate::validation::Problems::new();
        let Some(id) = identify(&value, &mut problems) else {
            report.skipped += 1;
            continue;
        };
        if let Some(first) = seen.iter().find(|s| s.id == id && !id.name.ends_with('*')) {
            problems.error(
                &crate::validation::FieldPath::new("metadata").field("name"),
                format!("{id} is defined twice: first at {}", first.location),
            );
        }
        let checked = if problems.has_errors() {
            Checked::Broken
        } else {
            check_object(&id, &value, &mut problems)
        };
        *report.objects.entry(id.kind.clone()).or_default() += 1;
        push_problems(report, &location, &id, problems);
        seen.push(Seen {
            id,
            location,
            checked,
        });
    }
    check_references(&seen, report);
    report
        .findings
        .sort_by_key(|a| natural_location(&a.location));
}

/// Sort key for `file:line[:column]`, so that line 10 comes after line 9.
fn natural_location(location: &str) -> (String, usize, usize) {
    let number = |text: &str| text.parse::<usize>().ok();
    let mut parts = location.rsplitn(3, ':');
    let (last, middle, rest) = (parts.next(), parts.next(), parts.next());
    match (last.and_then(number), middle.and_then(number), rest) {
        (Some(column), Some(line), Some(file)) => (file.to_owned(), line, column),
        (Some(line), _, _) => {
            let file = location.rsplit_once(':').map_or(location, |(file, _)| file);
            (file.to_owned(), line, 0)
        }
        _ => (location.to_owned(), 0, 0),
    }
}

fn push_problems(
    report: &mut Report,
    location: &Location,
    id: &ObjectId,
    problems: crate::validation::Problems,
) {
    let mut reported_paths: Vec<crate::validation::FieldPath> = Vec::new();
    for problem in problems {
        // One line per problem: a later layer restating an earlier error at the same field,
        // or below it, is dropped.
        if problem.severity == Severity::Error
            && reported_paths.iter().any(|p| problem.path.is_within(p))
        {
            continue;
        }
        if problem.severity == Severity::Error {
            reported_paths.push(problem.path.clone());
        }
        report.findings.push(Finding {
            location: location.of(&problem.path),
            object: Some(id.to_string()),
            problem,
        });
    }
}

fn same_namespace(a: &ObjectId, b: &ObjectId) -> bool {
    match (&a.namespace, &b.namespace) {
        (Some(x), Some(y)) => x == y,
        _ => true,
    }
}

fn check_references(seen: &[Seen], report: &mut Report) {
    let find = |kind: &str, name: &str, near: &ObjectId| {
        seen.iter()
            .find(|s| s.id.kind == kind && s.id.name == name && same_namespace(&s.id, near))
    };
    for object in seen {
        let problems = match &object.checked {
            Checked::Release { spec } => match find("Pipeline", &spec.pipeline, &object.id) {
                Some(Seen {
                    checked:
                        Checked::Pipeline {
                            valid: Some(pipeline),
                        },
                    ..
                }) => validate_release_references(spec, &spec.pipeline, pipeline),
                Some(_) => continue,
                None => not_found(
                    &object.id,
                    "Pipeline",
                    &spec.pipeline,
                    "spec.pipeline",
                    "its artifacts and refs were not checked",
                ),
            },
            Checked::Approval { spec } => match find("Release", &spec.release, &object.id) {
                Some(Seen {
                    checked: Checked::Release { spec: release },
                    id,
                    ..
                }) => match find("Pipeline", &release.pipeline, id) {
                    Some(Seen {
                        checked:
                            Checked::Pipeline {
                                valid: Some(pipeline),
                            },
                        ..
                    }) => validate_approval_references(spec, &release.pipeline, pipeline),
                    _ => continue,
                },
                Some(_) => continue,
                None => not_found(
                    &object.id,
                    "Release",
                    &spec.release,
                    "spec.release",
                    "its environment was not checked",
                ),
            },
            _ => continue,
        };
        push_problems(report, &object.location, &object.id, problems);
    }
}

fn not_found(
    id: &ObjectId,
    kind: &str,
    name: &str,
    field: &str,
    consequence: &str,
) -> crate::validation::Problems {
    let mut problems = crate::validation::Problems::new();
    let namespace = id
        .namespace
        .as_deref()
        .map(|ns| format!(" in namespace {ns}"))
        .unwrap_or_default();
    problems.warning(
        &crate::validation::FieldPath::new(field),
        format!("{kind} {name:?}{namespace} is not among the checked files, so {consequence}"),
    );
    problems
}
