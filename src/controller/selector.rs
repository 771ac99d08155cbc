//! `--selector`: the label selector that shards Pipelines between controller instances,
//! checked when the controller starts (the API server would answer a malformed one with
//! an error on every watch, and the controller would retry it forever).

use std::{fmt, str::FromStr};

/// A Kubernetes label selector, in the syntax of `kubectl get -l`: requirements joined by
/// commas, each `key`, `!key`, `key=value`, `key==value`, `key!=value`,
/// `key in (a,b)` or `key notin (a,b)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LabelSelector(String);

impl LabelSelector {
    /// The selector as sent to the API server.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for LabelSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a selector was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid label selector {selector:?}: {reason}")]
pub struct InvalidSelector {
    selector: String,
    reason: String,
}

impl FromStr for LabelSelector {
    type Err = InvalidSelector;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = |reason: String| InvalidSelector {
            selector: text.to_owned(),
            reason,
        };
        if text.trim().is_empty() {
            return Err(invalid(
                "it is empty; leave --selector out to take every Pipeline".into(),
            ));
        }
        for requirement in split_requirements(text).map_err(invalid)? {
            check_requirement(requirement.trim()).map_err(invalid)?;
        }
        Ok(Self(text.trim().to_owned()))
    }
}

/// Splits on the commas outside `( )`.
fn split_requirements(text: &str) -> Result<Vec<&str>, String> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0usize, 0);
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth = depth
                    .checked_sub(1)
                    .ok_or_else(|| format!("unbalanced ')' at position {}", i + 1))?;
            }
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth > 0 {
        return Err("unbalanced '(': a value list is not closed".into());
    }
    parts.push(&text[start..]);
    Ok(parts)
}

fn check_requirement(requirement: &str) -> Result<(), String> {
    if requirement.is_empty() {
        return Err("an empty requirement (two commas in a row, or a trailing comma)".into());
    }
    if let Some(key) = requirement.strip_prefix('!') {
        return check_key(key.trim());
    }
    for operator in ["==", "!=", "="] {
        if let Some((key, value)) = requirement.split_once(operator) {
            check_key(key.trim())?;
            return check_value(value.trim());
        }
    }
    for operator in [" notin ", " in "] {
        if let Some((key, values)) = requirement.split_once(operator) {
            check_key(key.trim())?;
            let values = values
                .trim()
                .strip_prefix('(')
                .and_then(|v| v.strip_suffix(')'))
                .ok_or_else(|| {
                    format!(
                        "{requirement:?}: `{}` needs a list such as (a,b)",
                        operator.trim()
                    )
                })?;
            return values.split(',').try_for_each(|v| check_value(v.trim()));
        }
    }
    check_key(requirement)
}

/// A label key: an optional DNS-subdomain prefix and `/`, then a name of at most 63
/// characters.
fn check_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if let Some(prefix) = prefix {
        let valid = !prefix.is_empty()
            && prefix.len() <= 253
            && prefix.split('.').all(|part| {
                !part.is_empty()
                    && part.len() <= 63
                    && part
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                    && !part.starts_with('-')
                    && !part.ends_with('-')
            });
        if !valid {
            return Err(format!(
                "{prefix:?} is not a valid label key prefix (a DNS subdomain such as example.com)"
            ));
        }
    }
    if name.is_empty() || !is_label_name(name) {
        return Err(format!(
            "{key:?} is not a valid label key (at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit)"
        ));
    }
    Ok(())
}

/// A label value: empty, or a name as in [`check_key`].
fn check_value(value: &str) -> Result<(), String> {
    if value.is_empty() || is_label_name(value) {
        Ok(())
    } else {
        Err(format!(
            "{value:?} is not a valid label value (at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit)"
        ))
    }
}

fn is_label_name(name: &str) -> bool {
    let alphanumeric = |c: char| c.is_ascii_alphanumeric();
    name.len() <= 63
        && name.starts_with(alphanumeric)
        && name.ends_with(alphanumeric)
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_of_kubectl_get_l_is_accepted() {
        for selector in [
            "shard=a",
            "shard==a",
            "shard!=b",
            "greenlight.dev/shard=a,team",
            "!legacy",
            "tier in (web, api),env notin (dev)",
            "app.kubernetes.io/part-of=shop",
            "shard=",
        ] {
            let parsed: LabelSelector = selector.parse().unwrap();
            assert_eq!(parsed.as_str(), selector);
        }
    }

    #[test]
    fn a_malformed_selector_says_what_is_wrong() {
        let error = |s: &str| s.parse::<LabelSelector>().unwrap_err().to_string();
        assert!(error("").contains("it is empty"));
        assert!(error("shard=a,").contains("an empty requirement"));
        assert!(error("shard=a b").contains("\"a b\" is not a valid label value"));
        assert!(error("tier in web").contains("needs a list such as (a,b)"));
        assert!(error("tier in (web").contains("unbalanced '('"));
        assert!(error("Example.COM/shard=a").contains("not a valid label key prefix"));
        assert!(error("-shard=a").contains("\"-shard\" is not a valid label key"));
    }
}
