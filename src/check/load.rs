//! Finds manifest files and splits them into YAML documents, remembering where each starts.

use std::{
    fs,
    io::Read,
    path::{Path, PathBuf},
};

use serde_json::Value;

use super::positions::Positions;

/// One YAML document of one file.
#[derive(Debug)]
pub struct SourceDocument {
    /// Where it came from (`-` for standard input).
    pub file: String,
    /// The 1-based line its first line is on.
    pub line: usize,
    /// The parsed document, or why it could not be parsed.
    pub content: Result<Value, String>,
    /// Where each of its fields is written.
    pub positions: Positions,
}

/// Expands files and directories (recursively: `*.yaml`, `*.yml`, `*.json`) in a stable
/// order. `-` stands for standard input.
pub fn collect_files(inputs: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let mut files = Vec::new();
    for input in inputs {
        if input.as_os_str() == "-" {
            files.push(input.clone());
        } else if input.is_dir() {
            walk(input, &mut files)
                .map_err(|err| format!("{}: cannot read directory: {err}", input.display()))?;
        } else if input.exists() {
            files.push(input.clone());
        } else {
            return Err(format!("{}: no such file or directory", input.display()));
        }
    }
    Ok(files)
}

fn walk(dir: &Path, files: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut entries: Vec<PathBuf> = fs::read_dir(dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    entries.sort();
    for path in entries {
        let hidden = path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'));
        if hidden {
            continue;
        }
        if path.is_dir() {
            walk(&path, files)?;
        } else if path
            .extension()
            .is_some_and(|ext| ext == "yaml" || ext == "yml" || ext == "json")
        {
            files.push(path);
        }
    }
    Ok(())
}

/// Reads a file (or standard input for `-`) and splits it into documents.
pub fn read_documents(path: &Path) -> Result<Vec<SourceDocument>, String> {
    let name = path.display().to_string();
    let text = if path.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|err| format!("-: cannot read standard input: {err}"))?;
        text
    } else {
        fs::read_to_string(path).map_err(|err| format!("{name}: cannot read: {err}"))?
    };
    Ok(split_documents(&name, &text))
}

/// Splits a YAML stream on `---` lines and parses each non-empty document.
pub fn split_documents(file: &str, text: &str) -> Vec<SourceDocument> {
    let mut documents = Vec::new();
    let mut start_line = 1;
    let mut current = String::new();
    let flush = |start: usize, body: &str, documents: &mut Vec<SourceDocument>| {
        if body
            .lines()
            .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#') || l.trim() == "...")
        {
            return;
        }
        documents.push(SourceDocument {
            file: file.to_owned(),
            line: start,
            content: parse_yaml(body, start),
            positions: Positions::read(body, start),
        });
    };
    for (i, line) in text.lines().enumerate() {
        if line == "---" || line.starts_with("--- ") {
            flush(start_line, &current, &mut documents);
            current.clear();
            start_line = i + 2;
            if let Some(rest) = line.strip_prefix("--- ") {
                // Content on the marker line belongs to the document that starts here.
                start_line = i + 1;
                current.push_str(rest);
                current.push('\n');
            }
        } else {
            current.push_str(line);
            current.push('\n');
        }
    }
    flush(start_line, &current, &mut documents);
    documents
}

fn parse_yaml(body: &str, first_line: usize) -> Result<Value, String> {
    let yaml: serde_yaml::Value = serde_yaml::from_str(body).map_err(|err| {
        let location = err
            .location()
            .map(|l| {
                format!(
                    "line {}, column {}: ",
                    l.line() + first_line - 1,
                    l.column()
                )
            })
            .unwrap_or_default();
        let message = err.to_string();
        let message = message.split(" at line ").next().unwrap_or(&message);
        format!("invalid YAML: {location}{message}")
    })?;
    serde_json::to_value(yaml)
        .map_err(|err| format!("unsupported YAML (keys must be strings): {err}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_keep_their_starting_line() {
        let docs = split_documents("f.yaml", "# header\na: 1\n---\nb: 2\n---\n\n---\nc: 3\n");
        let lines: Vec<usize> = docs.iter().map(|d| d.line).collect();
        assert_eq!(lines, [1, 4, 8]);
        assert_eq!(docs[2].content.as_ref().unwrap()["c"], 3);
    }

    #[test]
    fn a_yaml_syntax_error_gives_the_line_in_the_file() {
        let docs = split_documents("f.yaml", "a: 1\n---\nb: 1\n  c: 2\n");
        let err = docs[1].content.as_ref().unwrap_err();
        assert!(err.starts_with("invalid YAML: line 4"), "{err}");
    }
}
