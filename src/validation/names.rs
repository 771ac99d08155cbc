//! Kubernetes name rules, URLs and image references.

/// Checks a DNS-1123 label: lower-case letters, digits and `-`, at most 63 characters,
/// starting and ending with a letter or digit.
pub fn dns_label(value: &str) -> Result<(), String> {
    let expected = "expected a DNS label: at most 63 lower-case letters, digits or '-', starting and ending with a letter or digit";
    if value.is_empty() {
        return Err(format!("empty name: {expected}"));
    }
    let valid_chars = value
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    let valid_ends = !value.starts_with('-') && !value.ends_with('-');
    if value.len() > 63 || !valid_chars || !valid_ends {
        return Err(format!("{value:?} is not a valid name: {expected}"));
    }
    Ok(())
}

/// Checks a DNS-1123 subdomain: dot-separated DNS labels, at most 253 characters.
pub fn dns_subdomain(value: &str) -> Result<(), String> {
    let expected = "expected a Kubernetes object name: lower-case letters, digits, '-' and '.', at most 253 characters";
    if value.is_empty() {
        return Err(format!("empty name: {expected}"));
    }
    if value.len() > 253 || value.split('.').any(|label| dns_label(label).is_err()) {
        return Err(format!("{value:?} is not a valid object name: {expected}"));
    }
    Ok(())
}

/// Checks a key of a Secret's `data`.
pub fn secret_key(value: &str) -> Result<(), String> {
    let valid = !value.is_empty()
        && value.len() <= 253
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if valid {
        Ok(())
    } else {
        Err(format!(
            "{value:?} is not a valid Secret key: expected letters, digits, '-', '_' and '.', at most 253 characters"
        ))
    }
}

/// Checks an absolute `http://` or `https://` URL with a host.
pub fn http_url(value: &str) -> Result<url::Url, String> {
    let parsed = url::Url::parse(value).map_err(|err| format!("{value:?} is not a URL: {err}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!(
            "{value:?} must use http:// or https://, not {}://",
            parsed.scheme()
        ));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(format!("{value:?} has no host"));
    }
    Ok(parsed)
}

/// Checks a container image reference: `[registry/]repository[:tag][@algorithm:digest]`.
pub fn image_reference(value: &str) -> Result<(), String> {
    let expected = "expected an image such as registry.example.com/shop/api@sha256:<64 hex digits> or repo/name:tag";
    if value.is_empty() || value.chars().any(char::is_whitespace) {
        return Err(format!("{value:?} is not an image reference: {expected}"));
    }
    let (name_and_tag, digest) = match value.split_once('@') {
        Some((name, digest)) => (name, Some(digest)),
        None => (value, None),
    };
    if let Some(digest) = digest {
        let valid = digest.split_once(':').is_some_and(|(algorithm, hex)| {
            !algorithm.is_empty()
                && algorithm
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+._-".contains(&b))
                && hex.len() >= 32
                && hex.bytes().all(|b| b.is_ascii_hexdigit())
        });
        if !valid {
            return Err(format!(
                "{value:?} has a malformed digest {digest:?}: expected algorithm:hex, such as sha256:<64 hex digits>"
            ));
        }
    }
    let last_segment_start = name_and_tag.rfind('/').map_or(0, |i| i + 1);
    let (repository, tag) = match name_and_tag[last_segment_start..].rfind(':') {
        Some(i) => (
            &name_and_tag[..last_segment_start + i],
            Some(&name_and_tag[last_segment_start + i + 1..]),
        ),
        None => (name_and_tag, None),
    };
    let repository_path = repository
        .split_once('/')
        .map_or(repository, |(host, path)| {
            if host.contains(['.', ':']) || host == "localhost" {
                path
            } else {
                repository
            }
        });
    let valid_path = !repository_path.is_empty()
        && repository_path.split('/').all(|component| {
            !component.is_empty()
                && component
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
        });
    if !valid_path {
        return Err(format!(
            "{value:?} is not an image reference: the repository must be lower-case; {expected}"
        ));
    }
    if let Some(tag) = tag {
        let valid_tag = !tag.is_empty()
            && tag.len() <= 128
            && tag
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
        if !valid_tag {
            return Err(format!("{value:?} has an invalid tag {tag:?}"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_labels_follow_kubernetes_rules() {
        assert!(dns_label("staging").is_ok());
        assert!(dns_label("eu-west-1").is_ok());
        assert!(dns_label("Staging").is_err());
        assert!(dns_label("-dev").is_err());
        assert!(dns_label(&"a".repeat(64)).is_err());
        assert!(dns_subdomain("shop-1.4.2").is_ok());
        assert!(dns_subdomain("shop_1").is_err());
    }

    #[test]
    fn urls_must_be_http_with_a_host() {
        assert!(http_url("http://api.shop-staging.svc/healthz").is_ok());
        assert!(
            http_url("ftp://x")
                .unwrap_err()
                .contains("http:// or https://")
        );
        assert!(http_url("api/healthz").is_err());
    }

    #[test]
    fn image_references_accept_tags_digests_and_registries_with_ports() {
        let digest = format!("registry.example.com/shop/api@sha256:{}", "a".repeat(64));
        assert!(image_reference(&digest).is_ok());
        assert!(image_reference("nginx").is_ok());
        assert!(image_reference("localhost:5000/team/app:1.2.3").is_ok());
        assert!(
            image_reference("ghcr.io/org/app:v1.4.2@sha256:0123456789abcdef0123456789abcdef")
                .is_ok()
        );
    }

    #[test]
    fn malformed_image_references_say_what_is_wrong() {
        assert!(
            image_reference("Registry.example.com/Shop/API:1")
                .unwrap_err()
                .contains("lower-case")
        );
        assert!(
            image_reference("api@sha256:xyz")
                .unwrap_err()
                .contains("malformed digest")
        );
        assert!(image_reference("api:").unwrap_err().contains("invalid tag"));
        assert!(image_reference("my api").is_err());
    }
}
