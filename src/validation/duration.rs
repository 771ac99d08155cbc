//! Durations in the Go / Kubernetes notation (`90s`, `15m`, `1h30m`, `1.5h`).

use std::time::Duration;

const UNITS: &[(&str, f64)] = &[
    ("ns", 1e-9),
    ("us", 1e-6),
    ("µs", 1e-6),
    ("ms", 1e-3),
    ("s", 1.0),
    ("m", 60.0),
    ("h", 3600.0),
];

/// Parses a duration such as `10s`, `15m`, `1h30m` or `1.5h`, as Kubernetes and Go write
/// them. Every number needs a unit; units are `ns`, `us`, `ms`, `s`, `m` and `h`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let expected = "expected a duration such as 90s, 15m or 1h30m (units: ms, s, m, h)";
    let fail = || format!("{text:?} is not a duration: {expected}");
    if text.is_empty() {
        return Err(format!("empty duration: {expected}"));
    }
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    let mut rest = text;
    let mut seconds = 0f64;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, after) = rest.split_at(number_len);
        // Digits, optionally a fraction with digits on both sides of the point.
        let well_formed = match number.split_once('.') {
            Some((whole, fraction)) => {
                !whole.is_empty() && !fraction.is_empty() && !fraction.contains('.')
            }
            None => !number.is_empty(),
        };
        if !well_formed {
            return Err(fail());
        }
        let value: f64 = number.parse().map_err(|_| fail())?;
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let Some((_, scale)) = UNITS.iter().find(|(name, _)| *name == unit) else {
            return Err(if unit.is_empty() {
                format!("{text:?} is not a duration: the number {number} has no unit; {expected}")
            } else {
                fail()
            });
        };
        seconds += value * scale;
        rest = after;
    }
    if !seconds.is_finite() || seconds > 10.0 * 365.0 * 86400.0 {
        return Err(format!(
            "{text:?} is too long: durations are limited to 10 years"
        ));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// Formats a duration the way it is written in specs: `1h30m`, `45s`, `250ms`.
pub fn format_duration(duration: Duration) -> String {
    let total = duration.as_secs();
    if total == 0 {
        return format!("{}ms", duration.subsec_millis());
    }
    let (h, m, s) = (total / 3600, total % 3600 / 60, total % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if s > 0 || out.is_empty() {
        out.push_str(&format!("{s}s"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_style_durations_parse() {
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("1.5h"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("63h"), Ok(Duration::from_secs(63 * 3600)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
    }

    #[test]
    fn words_and_bare_numbers_are_rejected_with_the_expected_form() {
        let err = parse_duration("15 minutes").unwrap_err();
        assert!(err.contains("\"15 minutes\" is not a duration"), "{err}");
        assert!(err.contains("such as 90s, 15m or 1h30m"), "{err}");
        let err = parse_duration("15").unwrap_err();
        assert!(err.contains("has no unit"), "{err}");
        assert!(parse_duration("").is_err());
        assert!(parse_duration("-5m").is_err());
        assert!(parse_duration("5d").is_err());
        assert!(parse_duration("m").is_err());
        assert!(parse_duration(".m").is_err());
        assert!(parse_duration(".5h").is_err());
        assert!(parse_duration("5.h").is_err());
        assert!(parse_duration("1.2.3s").is_err());
    }

    #[test]
    fn absurdly_long_durations_are_rejected() {
        assert!(
            parse_duration("999999999h")
                .unwrap_err()
                .contains("10 years")
        );
    }

    #[test]
    fn formatting_round_trips() {
        for text in ["1h30m", "45s", "15m", "63h", "250ms", "1h0m5s"] {
            let parsed = parse_duration(text).unwrap();
            assert_eq!(
                parse_duration(&format_duration(parsed)),
                Ok(parsed),
                "{text}"
            );
        }
        assert_eq!(format_duration(Duration::from_secs(5400)), "1h30m");
    }
}
