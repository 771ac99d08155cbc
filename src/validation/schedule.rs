//! Cron expressions read in IANA time zones: schedule windows and freezes.
//!
//! Cron parsing is `croner` (five POSIX fields, nicknames such as `@daily`, DST-aware
//! iteration over `jiff::Zoned`); time zones come from jiff's bundled IANA database, so
//! the controller, `check` and `simulate` agree on every machine and in a scratch image.

use std::{fmt, time::Duration};

use croner::{
    Cron,
    parser::{CronParser, Seconds, Year},
};
use jiff::{Timestamp, tz::TimeZone};

/// A parsed cron expression and the time zone it is read in.
#[derive(Clone)]
pub struct CronSchedule {
    /// The expression as written.
    pub expression: String,
    /// The parsed expression.
    pub cron: Cron,
    /// The zone its fields are read in.
    pub time_zone: TimeZone,
    /// The zone's name as written (`UTC` when omitted).
    pub time_zone_name: String,
}

impl fmt::Debug for CronSchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} in {}", self.expression, self.time_zone_name)
    }
}

impl PartialEq for CronSchedule {
    fn eq(&self, other: &Self) -> bool {
        self.expression == other.expression && self.time_zone_name == other.time_zone_name
    }
}

/// A recurring window in which promotions may start.
#[derive(Clone, Debug, PartialEq)]
pub struct Window {
    /// When it opens.
    pub opens: CronSchedule,
    /// How long it stays open.
    pub duration: Duration,
}

/// A period in which promotions never start.
#[derive(Clone, Debug, PartialEq)]
pub enum Freeze {
    /// Opens at every cron match and lasts `duration`.
    Recurring {
        /// When it begins.
        begins: Box<CronSchedule>,
        /// How long it lasts.
        duration: Duration,
        /// Why, for people who wait.
        reason: Option<String>,
    },
    /// One fixed period, `start` inclusive, `end` exclusive.
    Fixed {
        /// First frozen instant.
        start: Timestamp,
        /// First instant after the freeze.
        end: Timestamp,
        /// Why, for people who wait.
        reason: Option<String>,
    },
}

const CRON_FIELDS: &str = "minute hour day-of-month month day-of-week";

/// Parses a five-field cron expression, such as `0 2 * * *`, or a nickname like `@daily`.
pub fn parse_cron(expression: &str) -> Result<Cron, String> {
    let trimmed = expression.trim();
    let fields = trimmed.split_whitespace().count();
    if !trimmed.starts_with('@') && fields != 5 {
        return Err(format!(
            "{expression:?} is not a cron expression: expected 5 fields ({CRON_FIELDS}), found {fields}"
        ));
    }
    CronParser::builder()
        .seconds(Seconds::Disallowed)
        .year(Year::Disallowed)
        .build()
        .parse(trimmed)
        .map_err(|err| {
            format!("{expression:?} is not a valid cron expression ({CRON_FIELDS}): {err}")
        })
}

/// Looks up an IANA time zone such as `Europe/Berlin`, suggesting the closest name on a typo.
pub fn parse_time_zone(name: &str) -> Result<TimeZone, String> {
    if let Ok(zone) = jiff::tz::db().get(name) {
        return Ok(zone);
    }
    let db = jiff::tz::db();
    let names: Vec<String> = db.available().map(|n| n.as_str().to_owned()).collect();
    let hint = match crate::suggest::closest(name, names.iter().map(String::as_str)) {
        Some(best) => format!("did you mean {best:?}?"),
        None => "use a name such as UTC, Europe/Berlin or America/New_York".to_owned(),
    };
    Err(format!("{name:?} is not an IANA time zone: {hint}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_field_expressions_and_nicknames_parse() {
        assert!(parse_cron("0 2 * * *").is_ok());
        assert!(parse_cron("0 17 * * 5").is_ok());
        assert!(parse_cron("*/15 9-17 * * MON-FRI").is_ok());
        assert!(parse_cron("@daily").is_ok());
    }

    #[test]
    fn a_missing_field_is_named_with_the_expected_fields() {
        let err = parse_cron("0 2 * *").unwrap_err();
        assert_eq!(
            err,
            "\"0 2 * *\" is not a cron expression: expected 5 fields (minute hour day-of-month month day-of-week), found 4"
        );
    }

    #[test]
    fn seconds_fields_are_rejected() {
        assert!(parse_cron("0 0 2 * * *").unwrap_err().contains("found 6"));
    }

    #[test]
    fn out_of_range_values_are_rejected() {
        let err = parse_cron("0 25 * * *").unwrap_err();
        assert!(
            err.starts_with("\"0 25 * * *\" is not a valid cron expression"),
            "{err}"
        );
    }

    #[test]
    fn iana_zones_resolve_and_typos_get_a_suggestion() {
        assert!(parse_time_zone("Europe/Berlin").is_ok());
        assert!(parse_time_zone("UTC").is_ok());
        let err = parse_time_zone("Europe/Berln").unwrap_err();
        assert!(err.contains("did you mean \"Europe/Berlin\""), "{err}");
        let err = parse_time_zone("Mars/Base").unwrap_err();
        assert!(
            err.starts_with("\"Mars/Base\" is not an IANA time zone"),
            "{err}"
        );
    }
}
