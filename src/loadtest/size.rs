//! Payload sizes as people write them: `512`, `512B`, `1KiB`, `64KiB`, `1MiB`, `10kB`.

/// The largest payload accepted. Every request shares one buffer, so this bounds memory,
/// not per-request cost; anything larger is almost certainly a typo.
pub const MAX_PAYLOAD: u64 = 256 * 1024 * 1024;

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;
const GIB: u64 = 1024 * MIB;

/// Units, matched without regard to case. Binary units (`KiB`, `Ki`) are powers of 1024,
/// decimal ones (`kB`, `k`) powers of 1000, as in Kubernetes quantities.
const UNITS: &[(&str, u64)] = &[
    ("", 1),
    ("b", 1),
    ("kib", KIB),
    ("ki", KIB),
    ("mib", MIB),
    ("mi", MIB),
    ("gib", GIB),
    ("gi", GIB),
    ("kb", 1_000),
    ("k", 1_000),
    ("mb", 1_000_000),
    ("m", 1_000_000),
    ("gb", 1_000_000_000),
    ("g", 1_000_000_000),
];

/// Parses a payload size into bytes: a whole number, optionally followed by a unit
/// (`B`, `KiB`, `MiB`, `GiB`, or the decimal `kB`, `MB`, `GB`).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let expected = "expected a size such as 512, 512B, 1KiB, 64KiB or 1MiB";
    let trimmed = text.trim();
    let digits = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(digits);
    if number.is_empty() {
        return Err(format!("{text:?} is not a size: {expected}"));
    }
    let unit = unit.trim();
    let Some((_, scale)) = UNITS
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(unit))
    else {
        return Err(format!(
            "{text:?} is not a size: unknown unit {unit:?}; {expected}"
        ));
    };
    let bytes = number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(*scale))
        .filter(|bytes| *bytes <= MAX_PAYLOAD)
        .ok_or_else(|| format!("{text:?} is too large: payloads are limited to 256 MiB"))?;
    Ok(bytes)
}

/// Formats a size the short way: `64 KiB`, `1 MiB`, `1000 B`.
pub fn format_size(bytes: u64) -> String {
    match bytes {
        0 => "0 B".to_owned(),
        b if b % GIB == 0 => format!("{} GiB", b / GIB),
        b if b % MIB == 0 => format!("{} MiB", b / MIB),
        b if b % KIB == 0 => format!("{} KiB", b / KIB),
        b => format!("{b} B"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_in_bytes_and_binary_and_decimal_units() {
        assert_eq!(parse_size("512"), Ok(512));
        assert_eq!(parse_size("512B"), Ok(512));
        assert_eq!(parse_size("1KiB"), Ok(1024));
        assert_eq!(parse_size("64KiB"), Ok(65_536));
        assert_eq!(parse_size("64kib"), Ok(65_536));
        assert_eq!(parse_size("1MiB"), Ok(1_048_576));
        assert_eq!(parse_size("2Mi"), Ok(2_097_152));
        assert_eq!(parse_size("10kB"), Ok(10_000));
        assert_eq!(parse_size("1MB"), Ok(1_000_000));
        assert_eq!(parse_size("64 KiB"), Ok(65_536));
        assert_eq!(parse_size("0"), Ok(0));
    }

    #[test]
    fn malformed_and_huge_sizes_are_refused_with_the_expected_form() {
        let err = parse_size("KiB").unwrap_err();
        assert!(err.contains("such as 512, 512B, 1KiB"), "{err}");
        let err = parse_size("64XB").unwrap_err();
        assert!(err.contains("unknown unit \"XB\""), "{err}");
        assert!(parse_size("1.5KiB").is_err());
        assert!(parse_size("-1").is_err());
        assert!(parse_size("").is_err());
        assert!(parse_size("257MiB").unwrap_err().contains("256 MiB"));
        assert!(parse_size("99999999999999999999").is_err());
        assert!(parse_size("18446744073709551615GiB").is_err());
    }

    #[test]
    fn sizes_format_in_the_largest_exact_binary_unit() {
        assert_eq!(format_size(1024), "1 KiB");
        assert_eq!(format_size(65_536), "64 KiB");
        assert_eq!(format_size(1_048_576), "1 MiB");
        assert_eq!(format_size(1000), "1000 B");
        assert_eq!(format_size(0), "0 B");
    }
}
