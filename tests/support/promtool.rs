//! Finding Prometheus's `promtool` for the tests that run it (alerts, dashboard queries).

use std::path::PathBuf;

/// `/usr/bin/promtool`, or `promtool` on `PATH`; `None` (after saying why on stderr) when
/// there is none, unless `GREENLIGHT_REQUIRE_PROMETHEUS=1`, which makes that a failure.
pub fn promtool() -> Option<PathBuf> {
    let debian = PathBuf::from("/usr/bin/promtool");
    let found = if debian.is_file() {
        Some(debian)
    } else {
        std::env::var_os("PATH").and_then(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join("promtool"))
                .find(|candidate| candidate.is_file())
        })
    };
    if found.is_none() {
        let required =
            std::env::var("GREENLIGHT_REQUIRE_PROMETHEUS").is_ok_and(|v| !v.is_empty() && v != "0");
        assert!(
            !required,
            "GREENLIGHT_REQUIRE_PROMETHEUS is set but there is no promtool binary (neither \
             /usr/bin/promtool nor on PATH): install Debian's `prometheus` package \
             (apt-get install -y --no-install-recommends prometheus)"
        );
        eprintln!(
            "skipping: no promtool binary (neither /usr/bin/promtool nor on PATH); install \
             Debian's `prometheus` package to run this test, and set \
             GREENLIGHT_REQUIRE_PROMETHEUS=1 to make its absence a failure"
        );
    }
    found
}
