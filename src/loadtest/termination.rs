//! The container termination message: the one-line summary Kubernetes keeps in the pod's
//! status after the loadtest Job's container exits, where the controller reads it.

use std::{
    fs::OpenOptions,
    io::Write,
    path::{Path, PathBuf},
};

/// Where Kubernetes mounts the termination message file unless the container says else.
pub const DEFAULT_PATH: &str = "/dev/termination-log";

/// The most a message may hold: Kubernetes keeps 4096 bytes, and our line stays well
/// under this cap so that several containers' messages fit the pod's 12 KiB total.
pub const MAX_MESSAGE: usize = 1024;

/// Where to write the termination message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// [`DEFAULT_PATH`], written only when it exists (that is, inside a pod).
    Default,
    /// A path the user named: created if missing, and a failure to write is reported.
    Explicit(PathBuf),
}

/// Writes `message` (cut to [`MAX_MESSAGE`] bytes on a character boundary) to
/// `destination`. Returns a warning for the user when an explicit path, or an existing
/// default one, cannot be written; a missing default path is skipped silently, as when
/// running outside Kubernetes.
pub fn write(destination: &Destination, message: &str) -> Result<(), String> {
    let message = clip(message);
    let (path, create) = match destination {
        Destination::Default => {
            let path = Path::new(DEFAULT_PATH);
            if !path.exists() {
                return Ok(());
            }
            (path, false)
        }
        Destination::Explicit(path) => (path.as_path(), true),
    };
    OpenOptions::new()
        .write(true)
        .truncate(true)
        .create(create)
        .open(path)
        .and_then(|mut file| file.write_all(message.as_bytes()))
        .map_err(|error| {
            format!(
                "could not write the termination message to {}: {error}",
                path.display()
            )
        })
}

fn clip(message: &str) -> &str {
    if message.len() <= MAX_MESSAGE {
        return message;
    }
    let mut end = MAX_MESSAGE;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    &message[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_explicit_path_is_created_and_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("termination-log");
        std::fs::write(&path, "an older, longer message").unwrap();
        let destination = Destination::Explicit(path.clone());
        write(&destination, "passed: 1 request").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "passed: 1 request");
    }

    #[test]
    fn an_unwritable_explicit_path_is_a_warning_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing-dir").join("termination-log");
        let warning = write(&Destination::Explicit(path), "passed").unwrap_err();
        assert!(warning.contains("missing-dir/termination-log"), "{warning}");
    }

    #[test]
    fn long_messages_are_cut_on_a_character_boundary() {
        // "€" is three bytes: 1024 falls inside one, so the cut moves back to 1023.
        let long = "€".repeat(MAX_MESSAGE);
        let cut = clip(&long);
        assert_eq!(cut.len(), 1023);
        assert!(cut.chars().all(|c| c == '€'));
        assert_eq!(clip("short"), "short");
    }
}
