//! Deterministic Approval names, so that running the same command twice finds the
//! Approval the first run created instead of making a second one.

use crate::api::Decision;

/// The longest Kubernetes object name (a DNS-1123 subdomain).
const MAX_NAME: usize = 253;
/// The longest label between two dots of a name.
const MAX_LABEL: usize = 63;
/// Hex digits of the hash appended when the readable part alone is ambiguous.
const HASH_DIGITS: usize = 8;

/// The word for a decision in names and messages: `approve`, `promote-now`.
pub fn decision_word(decision: Decision) -> &'static str {
    match decision {
        Decision::Approve => "approve",
        Decision::Reject => "reject",
        Decision::PromoteNow => "promote-now",
        Decision::Retry => "retry",
        Decision::Rollback => "rollback",
        Decision::PromoteStep => "promote-step",
        Decision::AbortCanary => "abort-canary",
    }
}

/// The name of the Approval `user` creates to record `decision` on `release` for
/// `environment`, such as `shop-1-4-2-prod-approve-alice`.
///
/// `epoch` distinguishes requests that must be new objects each time the situation
/// changes (a retry after each failure, a rollback after each change); the same epoch
/// gives the same name. A short hash of every input is appended whenever the readable
/// part loses information: an epoch, a user name that is not already a DNS label
/// (`Alice@Example.com`), or a name cut to fit (253 characters, 63 between two dots). So
/// two different requests never share a name, and the result is always a valid object name.
pub fn approval_name(
    release: &str,
    environment: &str,
    decision: Decision,
    user: &str,
    epoch: Option<&str>,
) -> String {
    let (release_part, release_exact) = sanitize(release, true);
    let (environment_part, environment_exact) = sanitize(environment, false);
    let (user_part, user_exact) = sanitize(user, false);
    let readable = [
        release_part.as_str(),
        environment_part.as_str(),
        decision_word(decision),
        user_part.as_str(),
    ]
    .into_iter()
    .filter(|part| !part.is_empty())
    .collect::<Vec<_>>()
    .join("-");
    let lossless = release_exact && environment_exact && user_exact && epoch.is_none();
    if lossless && fits(&readable) {
        return readable;
    }
    let hash = fnv1a(&[
        release,
        environment,
        decision_word(decision),
        user,
        epoch.unwrap_or(""),
    ]);
    let suffix = format!(
        "{:0width$x}",
        hash >> (64 - 4 * HASH_DIGITS),
        width = HASH_DIGITS
    );
    let mut prefix = readable;
    prefix.truncate(MAX_NAME - HASH_DIGITS - 1);
    let mut labels: Vec<String> = prefix
        .split('.')
        .map(|label| {
            let mut label = label.to_owned();
            label.truncate(MAX_LABEL);
            label.trim_matches('-').to_owned()
        })
        .filter(|label| !label.is_empty())
        .collect();
    match labels.last_mut() {
        Some(last) => {
            last.truncate(MAX_LABEL - HASH_DIGITS - 1);
            *last = format!("{}-{suffix}", last.trim_end_matches('-'));
            labels.join(".")
        }
        None => suffix,
    }
}

/// Whether `name` is a DNS-1123 subdomain whose labels are each at most 63 characters,
/// which `greenlight check` requires of every object name.
fn fits(name: &str) -> bool {
    name.len() <= MAX_NAME
        && name
            .split('.')
            .all(|label| !label.is_empty() && label.len() <= MAX_LABEL)
}

/// Lower-case letters and digits kept, runs of anything else turned into one `-` (or
/// kept as `.` between labels when `dots` is allowed); returns whether nothing changed.
fn sanitize(text: &str, dots: bool) -> (String, bool) {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if dots && c == '.' && !out.is_empty() && !out.ends_with(['-', '.']) {
            out.push('.');
        } else if !out.is_empty() && !out.ends_with(['-', '.']) {
            out.push('-');
        }
    }
    let out = out.trim_end_matches(['-', '.']).to_owned();
    let exact = out == text;
    (out, exact)
}

/// FNV-1a over the parts with a separator between them: small, stable across Rust
/// versions and platforms, which `std`'s hasher does not promise.
fn fnv1a(parts: &[&str]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            hash ^= 0xff;
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        for byte in part.bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validation::names::dns_subdomain;

    #[test]
    fn a_plain_user_gets_a_readable_name() {
        assert_eq!(
            approval_name("shop-1-4-2", "prod", Decision::Approve, "alice", None),
            "shop-1-4-2-prod-approve-alice"
        );
        assert_eq!(
            approval_name("shop-1-4-2", "prod", Decision::PromoteNow, "bob", None),
            "shop-1-4-2-prod-promote-now-bob"
        );
    }

    #[test]
    fn the_same_request_always_gets_the_same_name() {
        let a = approval_name("r", "prod", Decision::Retry, "Bob@Example.com", Some("t1"));
        let b = approval_name("r", "prod", Decision::Retry, "Bob@Example.com", Some("t1"));
        assert_eq!(a, b);
    }

    #[test]
    fn user_names_that_are_not_labels_are_cleaned_and_hashed() {
        let name = approval_name(
            "shop-1-4-2",
            "prod",
            Decision::Approve,
            "system:serviceaccount:ci:Builder",
            None,
        );
        // 56 readable characters and a hash would pass 63: the readable part is cut.
        assert!(
            name.starts_with("shop-1-4-2-prod-approve-system-serviceaccount-ci-build-"),
            "{name}"
        );
        assert_eq!(name.len(), 63, "{name}");
        dns_subdomain(&name).unwrap();
        let short = approval_name("r", "prod", Decision::Approve, "Bob", None);
        assert!(short.starts_with("r-prod-approve-bob-"), "{short}");
        assert_eq!(short.len(), "r-prod-approve-bob-".len() + 8);
    }

    #[test]
    fn users_who_differ_only_in_case_or_punctuation_get_different_names() {
        let names = [
            approval_name("r", "prod", Decision::Approve, "alice", None),
            approval_name("r", "prod", Decision::Approve, "Alice", None),
            approval_name("r", "prod", Decision::Approve, "alice@", None),
            approval_name("r", "prod", Decision::Approve, "ali.ce", None),
            approval_name("r", "prod", Decision::Approve, "ali-ce", None),
        ];
        let distinct: std::collections::BTreeSet<_> = names.iter().collect();
        assert_eq!(distinct.len(), names.len(), "{names:?}");
    }

    #[test]
    fn decisions_and_epochs_get_different_names() {
        let approve = approval_name("r", "prod", Decision::Approve, "alice", None);
        let reject = approval_name("r", "prod", Decision::Reject, "alice", None);
        let first = approval_name(
            "r",
            "prod",
            Decision::Retry,
            "alice",
            Some("2026-11-21T10:00:00Z"),
        );
        let second = approval_name(
            "r",
            "prod",
            Decision::Retry,
            "alice",
            Some("2026-11-22T10:00:00Z"),
        );
        assert_ne!(approve, reject);
        assert_ne!(first, second);
        assert!(first.starts_with("r-prod-retry-alice-"), "{first}");
    }

    #[test]
    fn long_names_are_cut_to_253_characters_and_stay_valid() {
        let release = format!("{}.{}", "a".repeat(200), "b".repeat(52));
        let user = "u".repeat(256);
        let name = approval_name(&release, "production", Decision::Rollback, &user, Some("x"));
        assert!(name.len() <= 253, "{} characters", name.len());
        dns_subdomain(&name).unwrap();
        let other = approval_name(
            &release,
            "production",
            Decision::Rollback,
            &format!("{user}v"),
            Some("x"),
        );
        assert_ne!(
            name, other,
            "names cut at the same place still differ by their hash"
        );
    }

    #[test]
    fn a_cut_never_ends_on_a_dot_or_dash() {
        // The readable part is cut right after the dot of the release.
        let release = format!("{}.b", "a".repeat(243));
        let name = approval_name(&release, "prod", Decision::Approve, "alice", None);
        dns_subdomain(&name).unwrap();
        assert!(name.len() <= 253);
    }

    #[test]
    fn a_user_of_only_symbols_still_gets_a_valid_name() {
        let name = approval_name("r", "prod", Decision::Approve, "@@@", None);
        dns_subdomain(&name).unwrap();
        assert!(name.starts_with("r-prod-approve-"), "{name}");
    }
}
