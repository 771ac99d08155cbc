//! Where each field of a YAML document is written: the line and column that `greenlight
//! check` puts in front of a problem, as an editor needs them to jump to the field.

use std::collections::HashMap;

use granit_parser::{Event, Parser, Span};

use crate::validation::FieldPath;

/// A place in a file: 1-based line and column.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    /// The line, counted from 1 in the whole file.
    pub line: usize,
    /// The column, counted from 1.
    pub column: usize,
}

/// The position of every field and list item of one document, by field path.
#[derive(Debug, Default)]
pub struct Positions {
    by_path: HashMap<String, Position>,
}

impl Positions {
    /// Reads the positions of `body`, a document whose first line is line `first_line`
    /// of its file. A document that does not parse has the positions read before the
    /// error (its error is reported by the parser the content is read with).
    pub fn read(body: &str, first_line: usize) -> Self {
        let mut walk = Walk {
            first_line,
            stack: Vec::new(),
            by_path: HashMap::new(),
        };
        for item in Parser::new_from_str(body) {
            let Ok((event, span)) = item else { break };
            if !walk.visit(event, span) {
                break;
            }
        }
        Self {
            by_path: walk.by_path,
        }
    }

    /// Where `path` is written or, for a field that is missing, where its closest
    /// written parent is; `None` when not even the top-level field is written.
    pub fn find(&self, path: &FieldPath) -> Option<Position> {
        let mut path = path.as_str();
        loop {
            if let Some(position) = self.by_path.get(path) {
                return Some(*position);
            }
            let cut = path.rfind(['.', '['])?;
            path = &path[..cut];
        }
    }
}

/// One open collection while walking the events.
enum Frame {
    /// A mapping at `path`; `key` is set between a key and its value.
    Mapping {
        path: Option<FieldPath>,
        key: Option<(String, Span)>,
    },
    /// A sequence at `path`; `next` is the index of its next item.
    Sequence {
        path: Option<FieldPath>,
        next: usize,
    },
}

struct Walk {
    first_line: usize,
    stack: Vec<Frame>,
    by_path: HashMap<String, Position>,
}

impl Walk {
    /// Takes one event; `false` once the document is over.
    fn visit(&mut self, event: Event<'_>, span: Span) -> bool {
        match event {
            Event::Scalar(text, ..) => {
                if let Some(Frame::Mapping {
                    key: key @ None, ..
                }) = self.stack.last_mut()
                {
                    *key = Some((text.into_owned(), span));
                } else {
                    self.place(span);
                }
            }
            Event::Alias(..) => {
                self.place(span);
            }
            Event::MappingStart(..) => {
                let path = self.place(span);
                self.stack.push(Frame::Mapping { path, key: None });
            }
            Event::SequenceStart(..) => {
                let path = self.place(span);
                self.stack.push(Frame::Sequence { path, next: 0 });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
            }
            Event::DocumentEnd | Event::StreamEnd => return false,
            _ => {}
        }
        true
    }

    /// Records a value node: its path from the enclosing collection, at the key's
    /// position for a mapping value and at the item's own for a list item. `None` for
    /// the document's root and for anything inside a complex (non-scalar) key.
    fn place(&mut self, span: Span) -> Option<FieldPath> {
        let (path, at) = match self.stack.last_mut() {
            None => return Some(FieldPath::root()),
            Some(Frame::Mapping { path, key }) => match key.take() {
                Some((name, key_span)) => {
                    let parent = path.as_ref()?;
                    let (as_key, as_field) = (parent.key(&name), parent.field(&name));
                    self.record(as_key, key_span);
                    (as_field, key_span)
                }
                // A collection used as a key: its insides have no field path.
                None => return None,
            },
            Some(Frame::Sequence { path, next }) => {
                let index = *next;
                *next += 1;
                (path.as_ref()?.index(index), span)
            }
        };
        self.record(path.clone(), at);
        Some(path)
    }

    fn record(&mut self, path: FieldPath, span: Span) {
        let position = Position {
            line: span.start.line() + self.first_line - 1,
            column: span.start.col() + 1,
        };
        self.by_path
            .entry(path.as_str().to_owned())
            .or_insert(position);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(positions: &Positions, path: &str) -> Option<(usize, usize)> {
        positions
            .find(&FieldPath::new(path))
            .map(|p| (p.line, p.column))
    }

    #[test]
    fn fields_and_items_are_found_where_they_are_written() {
        let body = "kind: Pipeline\nspec:\n  environments:\n  - name: dev\n    target: {namespace: a, deployments: [{name: api}]}\n  - name: prod\n    gates:\n      approvals: [{name: leads, count: 3}]\n";
        let positions = Positions::read(body, 10);
        assert_eq!(at(&positions, "kind"), Some((10, 1)));
        assert_eq!(at(&positions, "spec.environments"), Some((12, 3)));
        assert_eq!(at(&positions, "spec.environments[1]"), Some((15, 5)));
        assert_eq!(at(&positions, "spec.environments[1].name"), Some((15, 5)));
        assert_eq!(
            at(
                &positions,
                "spec.environments[0].target.deployments[0].name"
            ),
            Some((14, 43))
        );
        assert_eq!(
            at(&positions, "spec.environments[1].gates.approvals[0].count"),
            Some((17, 33))
        );
        // A missing field points at its closest written parent.
        assert_eq!(
            at(&positions, "spec.environments[1].gates.approvals[0].users"),
            Some((17, 19))
        );
        assert_eq!(at(&positions, "metadata.name"), None);
    }

    #[test]
    fn map_entries_are_found_by_key_too() {
        let positions = Positions::read("spec:\n  artifacts:\n    api: x\n", 1);
        assert_eq!(at(&positions, r#"spec.artifacts["api"]"#), Some((3, 5)));
    }

    #[test]
    fn a_document_that_does_not_parse_keeps_what_came_before() {
        let positions = Positions::read("a: 1\nb: [\n", 1);
        assert_eq!(at(&positions, "a"), Some((1, 1)));
    }
}
