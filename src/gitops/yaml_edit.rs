//! Changes YAML text in place: finds a field by its path and rewrites only its bytes, so
//! comments, key order, quoting and indentation everywhere else stay as they were (what a
//! person reviewing a GitOps commit expects to see in its diff).

use std::ops::Range;

use granit_parser::{Event, Parser, ScalarStyle};

/// A node of a parsed document, with where it is written.
#[derive(Clone, Debug)]
pub enum Node {
    /// A scalar, its value as read and its style.
    Scalar {
        value: String,
        span: Range<usize>,
        style: ScalarStyle,
    },
    /// A mapping: its entries in order.
    Mapping {
        entries: Vec<(Key, Node)>,
        start: usize,
        end: usize,
        flow: bool,
    },
    /// A sequence: its items in order.
    Sequence {
        items: Vec<Node>,
        start: usize,
        end: usize,
        flow: bool,
    },
    /// An alias (`*name`): never edited.
    Alias { span: Range<usize> },
}

/// A mapping key and where it is written.
#[derive(Clone, Debug)]
pub struct Key {
    /// The key's text.
    pub text: String,
    /// Its bytes.
    pub span: Range<usize>,
}

impl Node {
    /// Where its text ends (the end of its last scalar for a block collection).
    pub fn end(&self) -> usize {
        match self {
            Self::Scalar { span, .. } | Self::Alias { span } => span.end,
            Self::Mapping { end, .. } | Self::Sequence { end, .. } => *end,
        }
    }

    /// The value of `key`, for a mapping.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match self {
            Self::Mapping { entries, .. } => {
                entries.iter().find(|(k, _)| k.text == key).map(|(_, v)| v)
            }
            _ => None,
        }
    }

    /// The value at a path of mapping keys.
    pub fn at(&self, path: &[&str]) -> Option<&Node> {
        path.iter().try_fold(self, |node, key| node.get(key))
    }

    /// The text of a scalar.
    pub fn text(&self) -> Option<&str> {
        match self {
            Self::Scalar { value, .. } => Some(value),
            _ => None,
        }
    }

    /// The items of a sequence (none for anything else).
    pub fn items(&self) -> &[Node] {
        match self {
            Self::Sequence { items, .. } => items,
            _ => &[],
        }
    }

    /// Whether it is an empty plain scalar: an empty document or a key with no value.
    fn is_null(&self) -> bool {
        matches!(self, Self::Scalar { value, style: ScalarStyle::Plain, .. } if value.is_empty() || value == "~" || value == "null")
    }
}

/// Parses every document of `src` (an empty text is one empty document). Errors say
/// where the YAML is broken.
pub fn parse(src: &str) -> Result<Vec<Node>, String> {
    let mut documents = Vec::new();
    let mut stack: Vec<Open> = Vec::new();
    for item in Parser::new_from_str(src) {
        let (event, span) = item.map_err(|e| e.to_string())?;
        let range = span
            .byte_range()
            .ok_or("the YAML parser gave no byte offsets")?;
        let node = match event {
            Event::Scalar(value, style, ..) => Node::Scalar {
                value: value.into_owned(),
                span: range,
                style,
            },
            Event::Alias(..) => Node::Alias { span: range },
            Event::MappingStart(..) => {
                stack.push(Open::Mapping {
                    entries: Vec::new(),
                    key: None,
                    start: range.start,
                    flow: src[range.start..].starts_with('{'),
                });
                continue;
            }
            Event::SequenceStart(..) => {
                stack.push(Open::Sequence {
                    items: Vec::new(),
                    start: range.start,
                    flow: src[range.start..].starts_with('['),
                });
                continue;
            }
            Event::MappingEnd | Event::SequenceEnd => {
                let Some(open) = stack.pop() else {
                    return Err("unbalanced YAML collection".into());
                };
                open.close(range.end)
            }
            _ => continue,
        };
        match stack.last_mut() {
            Some(open) => open.add(node)?,
            None => documents.push(node),
        }
    }
    if documents.is_empty() {
        // An empty file is one empty document, which keys can be added to.
        documents.push(Node::Scalar {
            value: String::new(),
            span: src.len()..src.len(),
            style: ScalarStyle::Plain,
        });
    }
    Ok(documents)
}

/// A collection being read.
enum Open {
    Mapping {
        entries: Vec<(Key, Node)>,
        key: Option<Key>,
        start: usize,
        flow: bool,
    },
    Sequence {
        items: Vec<Node>,
        start: usize,
        flow: bool,
    },
}

impl Open {
    fn add(&mut self, node: Node) -> Result<(), String> {
        match self {
            Self::Sequence { items, .. } => items.push(node),
            Self::Mapping { entries, key, .. } => match key.take() {
                Some(key) => entries.push((key, node)),
                None => match node {
                    Node::Scalar { value, span, .. } => *key = Some(Key { text: value, span }),
                    _ => return Err("a mapping key that is not a scalar".into()),
                },
            },
        }
        Ok(())
    }

    /// The finished node; a block collection ends with its last child.
    fn close(self, end_event: usize) -> Node {
        match self {
            Self::Mapping {
                entries,
                start,
                flow,
                ..
            } => {
                let end = if flow {
                    end_event
                } else {
                    entries.last().map_or(start, |(_, v)| v.end())
                };
                Node::Mapping {
                    entries,
                    start,
                    end,
                    flow,
                }
            }
            Self::Sequence { items, start, flow } => {
                let end = if flow {
                    end_event
                } else {
                    items.last().map_or(start, Node::end)
                };
                Node::Sequence {
                    items,
                    start,
                    end,
                    flow,
                }
            }
        }
    }
}

/// Changes to one file's text, applied together.
pub struct Edits<'s> {
    src: &'s str,
    changes: Vec<(Range<usize>, String)>,
}

impl<'s> Edits<'s> {
    /// No changes yet to `src`.
    pub fn new(src: &'s str) -> Self {
        Self {
            src,
            changes: Vec::new(),
        }
    }

    /// Whether anything changes.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// Sets a scalar to `value`, in the style it had (plain only where `value` still reads
    /// as the same string); unchanged if it already holds it.
    pub fn set_scalar(&mut self, node: &Node, value: &str) -> Result<(), String> {
        match node {
            Node::Scalar {
                value: old,
                span,
                style,
            } => {
                if old != value {
                    self.changes.push((span.clone(), render(value, *style)));
                }
                Ok(())
            }
            _ => Err("is not a single value".into()),
        }
    }

    /// Sets `path` under `mapping` to `value`, adding the missing keys (as block mappings
    /// under the last one present).
    pub fn set(&mut self, mapping: &Node, path: &[&str], value: &str) -> Result<(), String> {
        let Some((first, rest)) = path.split_first() else {
            return self.set_scalar(mapping, value);
        };
        match mapping.get(first) {
            Some(child) if rest.is_empty() => self
                .set_scalar(child, value)
                .map_err(|e| format!("{first} {e}")),
            Some(child) if child.is_null() => {
                let block = nested(rest, value, self.indent_under(mapping) + 2);
                let text = format!("\n{}", block.trim_end_matches('\n'));
                self.changes
                    .push((child_value_range(self.src, child), text));
                Ok(())
            }
            Some(child) => self.set(child, rest, value).map_err(|e| {
                if e.starts_with("is ") {
                    format!("{first} {e}")
                } else {
                    format!("{first}.{e}")
                }
            }),
            None => self.insert(mapping, path, value),
        }
    }

    /// Removes `key` and its single-line value from a block mapping, if present.
    pub fn remove(&mut self, mapping: &Node, key: &str) -> Result<(), String> {
        let Node::Mapping { entries, flow, .. } = mapping else {
            return Err("is not a mapping".into());
        };
        let Some((k, value)) = entries.iter().find(|(k, _)| k.text == key) else {
            return Ok(());
        };
        let line = line_start(self.src, k.span.start);
        if *flow || !self.src[line..k.span.start].trim().is_empty() {
            return Err(format!(
                "{key} cannot be removed where it is written; move it to a line of its own"
            ));
        }
        let end = line_end(self.src, value.end().max(k.span.end).saturating_sub(1));
        self.changes.push((line..end, String::new()));
        Ok(())
    }

    /// Appends a mapping item with these keys and values to a block sequence, or makes
    /// `key: [that item]` when `parent` has no such key.
    pub fn append_item(
        &mut self,
        parent: &Node,
        key: &str,
        item: &[(&str, &str)],
    ) -> Result<(), String> {
        let render_item = |indent: &str| {
            item.iter()
                .enumerate()
                .map(|(i, (k, v))| {
                    let dash = if i == 0 { "- " } else { "  " };
                    format!("{indent}{dash}{k}: {}\n", render(v, ScalarStyle::Plain))
                })
                .collect::<String>()
        };
        match parent.get(key) {
            Some(Node::Sequence {
                items, flow: false, ..
            }) if !items.is_empty() => {
                let first = items[0].start_of();
                let dash = self.src[..first].rfind('-').unwrap_or(first);
                let indent = " ".repeat(column(self.src, dash));
                let at = line_end(self.src, items[items.len() - 1].end().saturating_sub(1));
                let prefix = if at == self.src.len() && !self.src.ends_with('\n') {
                    "\n"
                } else {
                    ""
                };
                self.changes
                    .push((at..at, format!("{prefix}{}", render_item(&indent))));
                Ok(())
            }
            Some(node @ (Node::Sequence { .. } | Node::Scalar { .. }))
                if node.items().is_empty() && (node.is_null() || node.is_flow_sequence()) =>
            {
                let range = child_value_range(self.src, node);
                let indent = " ".repeat(self.indent_under(parent));
                let block = render_item(&indent);
                self.changes
                    .push((range, format!("\n{}", block.trim_end_matches('\n'))));
                Ok(())
            }
            Some(_) => Err(format!(
                "{key} is not a block list; write it as `{key}:` followed by `- ` items"
            )),
            None => {
                let indent = " ".repeat(self.indent_under(parent));
                let block = format!("{key}:\n{}", render_item(&indent));
                self.insert_text(parent, &block)
            }
        }
    }

    /// The text with every change made.
    pub fn apply(mut self) -> String {
        self.changes.sort_by_key(|(range, _)| range.start);
        let mut out = String::with_capacity(self.src.len() + 64);
        let mut at = 0;
        for (range, text) in &self.changes {
            out.push_str(&self.src[at..range.start.max(at)]);
            out.push_str(text);
            at = range.end.max(at);
        }
        out.push_str(&self.src[at..]);
        out
    }

    /// Adds the missing `path` (its first key absent) to a block mapping.
    fn insert(&mut self, mapping: &Node, path: &[&str], value: &str) -> Result<(), String> {
        let block = nested(path, value, self.indent_under(mapping));
        self.insert_text(mapping, block.trim_start())
    }

    /// Adds lines (the first unindented) after the last entry of a block mapping, at its
    /// entries' indentation; into an empty document, at its end.
    fn insert_text(&mut self, mapping: &Node, block: &str) -> Result<(), String> {
        let (indent, at) = match mapping {
            Node::Mapping {
                entries,
                flow: false,
                ..
            } if !entries.is_empty() => (
                column(self.src, entries[0].0.span.start),
                line_end(self.src, mapping.end().saturating_sub(1)),
            ),
            node if node.is_null() => (0, self.src.len()),
            Node::Mapping { flow: true, .. } => {
                return Err("is written in flow style ({…}); write it as a block mapping".into());
            }
            _ => return Err("is not a mapping".into()),
        };
        let prefix = if at == self.src.len() && !self.src.is_empty() && !self.src.ends_with('\n') {
            "\n"
        } else {
            ""
        };
        let pad = " ".repeat(indent);
        let text: String = block.lines().map(|line| format!("{pad}{line}\n")).collect();
        self.changes.push((at..at, format!("{prefix}{text}")));
        Ok(())
    }

    /// The indentation of a mapping's children, for new keys under it.
    fn indent_under(&self, mapping: &Node) -> usize {
        match mapping {
            Node::Mapping { entries, .. } if !entries.is_empty() => {
                column(self.src, entries[0].0.span.start)
            }
            _ => 0,
        }
    }
}

impl Node {
    fn start_of(&self) -> usize {
        match self {
            Self::Scalar { span, .. } | Self::Alias { span } => span.start,
            Self::Mapping { start, .. } | Self::Sequence { start, .. } => *start,
        }
    }

    fn is_flow_sequence(&self) -> bool {
        matches!(self, Self::Sequence { flow: true, .. })
    }
}

/// `a:\n  b: value` for the path `a.b`, the first key at `indent + 2`.
fn nested(path: &[&str], value: &str, indent: usize) -> String {
    let mut text = String::new();
    for (depth, key) in path.iter().enumerate() {
        let pad = " ".repeat(indent + 2 * depth + 2);
        if depth + 1 == path.len() {
            text.push_str(&format!(
                "{pad}{key}: {}\n",
                render(value, ScalarStyle::Plain)
            ));
        } else {
            text.push_str(&format!("{pad}{key}:\n"));
        }
    }
    // The caller's indentation is that of the mapping's children.
    text.lines()
        .map(|line| format!("{}\n", &line[2..]))
        .collect()
}

/// The bytes a null or empty-flow value takes, to replace with a block: from just after
/// its key's `:` (an empty value's span is where the next token starts).
fn child_value_range(src: &str, node: &Node) -> Range<usize> {
    let start = node.start_of();
    let colon = src[..start].rfind(':').map_or(start, |i| i + 1);
    match node {
        Node::Scalar { value, .. } if value.is_empty() => colon..colon,
        _ => colon..node.end(),
    }
}

/// `value` as a YAML scalar in `style`: quoted as before, plain where that still reads as
/// the same string, else double-quoted.
fn render(value: &str, style: ScalarStyle) -> String {
    match style {
        ScalarStyle::SingleQuoted => format!("'{}'", value.replace('\'', "''")),
        ScalarStyle::Plain if reads_as_plain_string(value) => value.to_owned(),
        _ => serde_json::to_string(value).unwrap_or_else(|_| format!("{value:?}")),
    }
}

/// Whether `value`, written plain, reads back as this very string (not a number, a
/// boolean, null, or something YAML gives a meaning).
fn reads_as_plain_string(value: &str) -> bool {
    let safe = value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "._/:@+-".contains(c));
    safe && !value.starts_with(['-', ':', '@'])
        && !value.contains(": ")
        && matches!(serde_yaml::from_str::<serde_yaml::Value>(value), Ok(serde_yaml::Value::String(s)) if s == value)
}

fn line_start(src: &str, at: usize) -> usize {
    src[..at].rfind('\n').map_or(0, |i| i + 1)
}

/// Just past the newline ending the line that holds byte `at` (or the end of the text).
fn line_end(src: &str, at: usize) -> usize {
    src[at.min(src.len())..]
        .find('\n')
        .map_or(src.len(), |i| at + i + 1)
}

fn column(src: &str, at: usize) -> usize {
    at - line_start(src, at)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edit(src: &str, f: impl FnOnce(&mut Edits<'_>, &Node)) -> String {
        let docs = parse(src).unwrap();
        let mut edits = Edits::new(src);
        f(&mut edits, &docs[0]);
        edits.apply()
    }

    #[test]
    fn changes_only_the_value() {
        let src = "# the image\nimage:\n  repository: shop/web # pinned by CI\n  tag: \"1.4.1\"\n  pullPolicy: IfNotPresent\n";
        let out = edit(src, |e, root| {
            e.set(root, &["image", "tag"], "1.4.2").unwrap()
        });
        assert_eq!(
            out,
            "# the image\nimage:\n  repository: shop/web # pinned by CI\n  tag: \"1.4.2\"\n  pullPolicy: IfNotPresent\n"
        );
    }

    #[test]
    fn keeps_quoting_and_quotes_what_would_not_read_as_a_string() {
        let out = edit("tag: '1.4.1'\n", |e, root| {
            e.set(root, &["tag"], "1.4").unwrap()
        });
        assert_eq!(out, "tag: '1.4'\n");
        let out = edit("tag: latest\n", |e, root| {
            e.set(root, &["tag"], "1.4").unwrap()
        });
        assert_eq!(out, "tag: \"1.4\"\n");
        let out = edit("tag: latest\n", |e, root| {
            e.set(root, &["tag"], "1.4.2").unwrap()
        });
        assert_eq!(out, "tag: 1.4.2\n");
    }

    #[test]
    fn adds_missing_keys_at_the_indentation_of_their_siblings() {
        let src = "replicas: 2\nimage:\n    repository: shop/web\n# trailing comment\n";
        let out = edit(src, |e, root| {
            e.set(root, &["image", "digest"], "sha256:abc").unwrap();
            e.set(root, &["sidecar", "image", "tag"], "2.0.0").unwrap();
        });
        assert_eq!(
            out,
            "replicas: 2\nimage:\n    repository: shop/web\n    digest: sha256:abc\nsidecar:\n  image:\n    tag: 2.0.0\n# trailing comment\n"
        );
        assert_eq!(
            edit("", |e, root| e
                .set(root, &["image", "tag"], "1.0.0")
                .unwrap()),
            "image:\n  tag: 1.0.0\n"
        );
    }

    #[test]
    fn removes_a_key_on_a_line_of_its_own() {
        let src =
            "images:\n- name: web\n  newTag: 1.4.1\n  digest: sha256:old\nresources: [a.yaml]\n";
        let out = edit(src, |e, root| {
            let item = &root.get("images").unwrap().items()[0];
            e.remove(item, "digest").unwrap();
            assert!(
                e.remove(item, "name").is_err(),
                "name shares its line with the dash"
            );
        });
        assert_eq!(
            out,
            "images:\n- name: web\n  newTag: 1.4.1\nresources: [a.yaml]\n"
        );
    }

    #[test]
    fn appends_list_items_in_the_list_style() {
        let src = "resources:\n  - deploy.yaml\nimages:\n  - name: api\n    newTag: 1.0.0 # api\nnamePrefix: shop-\n";
        let out = edit(src, |e, root| {
            e.append_item(root, "images", &[("name", "web"), ("newTag", "1.4.2")])
                .unwrap()
        });
        assert_eq!(
            out,
            "resources:\n  - deploy.yaml\nimages:\n  - name: api\n    newTag: 1.0.0 # api\n  - name: web\n    newTag: 1.4.2\nnamePrefix: shop-\n"
        );
        let out = edit("resources:\n- a.yaml\nimages: []\n", |e, root| {
            e.append_item(root, "images", &[("name", "web")]).unwrap()
        });
        assert_eq!(out, "resources:\n- a.yaml\nimages:\n- name: web\n");
        let out = edit("resources:\n- a.yaml", |e, root| {
            e.append_item(root, "images", &[("name", "web")]).unwrap()
        });
        assert_eq!(out, "resources:\n- a.yaml\nimages:\n- name: web\n");
    }

    #[test]
    fn refuses_flow_style_and_non_mappings() {
        let docs = parse("image: {tag: 1.0.0}\nlist: [a]\n").unwrap();
        let mut edits = Edits::new("image: {tag: 1.0.0}\nlist: [a]\n");
        assert!(
            edits
                .set(&docs[0], &["image", "digest"], "x")
                .unwrap_err()
                .contains("flow style")
        );
        assert_eq!(
            edits.set(&docs[0], &["list", "x"], "y").unwrap_err(),
            "list is not a mapping"
        );
        // A flow mapping's existing scalar can still change in place.
        edits.set(&docs[0], &["image", "tag"], "1.0.1").unwrap();
        assert_eq!(edits.apply(), "image: {tag: 1.0.1}\nlist: [a]\n");
    }

    #[test]
    fn reads_every_document() {
        let docs = parse("a: 1\n---\nb: [x, y]\n").unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[1].get("b").unwrap().items()[1].text(), Some("y"));
        assert!(parse("a: [\n").is_err());
    }
}
