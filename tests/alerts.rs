//! The chart's Prometheus alerts (`charts/greenlight/files/alerts.yaml`): valid for
//! `promtool check rules`, firing and staying quiet as `alerts_test.yaml` expects under
//! `promtool test rules`, and intact once the chart's template puts them under a
//! PrometheusRule's `spec`. Pipeline names are unique only within a namespace, so every
//! annotation that names a Pipeline names it `namespace/pipeline`, and the unit tests label
//! their series as the controller does. That every metric and label the expressions name is
//! exported, and that they never group, filter or match on `pipeline` without `namespace`,
//! is checked with the dashboard's queries, in tests/dashboard.rs.
//!
//! Without a `promtool` binary (Debian's `prometheus` package) the promtool tests skip,
//! unless `GREENLIGHT_REQUIRE_PROMETHEUS=1` (set by `.ci/run`), in which case they fail.

#[path = "support/promtool.rs"]
mod promtool;

use std::{
    collections::{BTreeMap, BTreeSet},
    path::Path,
    process::Command,
};

use promtool::promtool;
use serde_yaml::Value;

const FILES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/charts/greenlight/files");
const RULE_TEMPLATE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/charts/greenlight/templates/prometheusrule.yaml"
);

/// The alerts SPEC.md "Observability" asks for.
const SPEC_ALERTS: [&str; 4] = [
    "GreenlightPromotionBlocked",
    "GreenlightRollback",
    "GreenlightEnvironmentDegraded",
    "GreenlightReconcileErrors",
];

fn files() -> &'static Path {
    Path::new(FILES)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn yaml(path: &Path) -> Value {
    serde_yaml::from_str(&read(path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every rule of every group in the rule file.
fn rules(rule_file: &Value) -> Vec<&Value> {
    rule_file["groups"]
        .as_sequence()
        .expect("alerts.yaml has a `groups:` list")
        .iter()
        .flat_map(|group| {
            group["rules"]
                .as_sequence()
                .unwrap_or_else(|| panic!("group {:?} has no `rules:` list", group["name"]))
        })
        .collect()
}

/// Runs promtool in the rule files' directory and fails with its output unless it succeeds.
fn run_promtool(binary: &Path, args: &[&str]) -> String {
    let output = Command::new(binary)
        .args(args)
        .current_dir(files())
        .output()
        .unwrap_or_else(|e| panic!("running {} {args:?}: {e}", binary.display()));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "promtool {args:?} in {FILES} failed ({}):\n{text}",
        output.status
    );
    text
}

#[test]
fn the_alert_rules_pass_promtool_check() {
    let Some(promtool) = promtool() else { return };
    let text = run_promtool(&promtool, &["check", "rules", "alerts.yaml"]);
    assert!(
        text.contains(&format!(
            "SUCCESS: {} rules found",
            rules(&yaml(&files().join("alerts.yaml"))).len()
        )),
        "promtool did not find every rule:\n{text}"
    );
}

#[test]
fn the_alerts_fire_and_stay_quiet_as_their_unit_tests_expect() {
    let Some(promtool) = promtool() else { return };
    let text = run_promtool(&promtool, &["test", "rules", "alerts_test.yaml"]);
    assert!(text.contains("SUCCESS"), "{text}");
}

#[test]
fn every_spec_alert_has_a_severity_a_summary_and_a_description() {
    let rule_file = yaml(&files().join("alerts.yaml"));
    let alerts: Vec<&Value> = rules(&rule_file)
        .into_iter()
        .filter(|rule| rule.get("alert").is_some())
        .collect();
    let names: BTreeSet<&str> = alerts
        .iter()
        .map(|rule| rule["alert"].as_str().expect("alert names are strings"))
        .collect();
    for wanted in SPEC_ALERTS {
        assert!(
            names.contains(wanted),
            "{wanted} missing from alerts.yaml: {names:?}"
        );
    }
    for rule in alerts {
        let name = rule["alert"].as_str().unwrap();
        let severity = rule["labels"]["severity"].as_str();
        assert!(
            matches!(severity, Some("warning" | "critical")),
            "{name}: severity {severity:?}, want warning or critical"
        );
        for annotation in ["summary", "description"] {
            let text = rule["annotations"][annotation].as_str().unwrap_or_default();
            assert!(
                text.contains("{{ $labels."),
                "{name}: the {annotation} should name the series it is about: {text:?}"
            );
        }
    }
}

/// Each alert must be seen both firing and quiet by the unit tests: a test that only ever
/// expects silence passes for a rule that can never fire.
#[test]
fn the_unit_tests_see_every_alert_fire_and_stay_quiet() {
    let rule_file = yaml(&files().join("alerts.yaml"));
    let tests = yaml(&files().join("alerts_test.yaml"));
    assert_eq!(
        tests["rule_files"].as_sequence().map(Vec::len),
        Some(1),
        "alerts_test.yaml tests alerts.yaml alone"
    );
    assert_eq!(tests["rule_files"][0].as_str(), Some("alerts.yaml"));
    let mut fired = BTreeSet::new();
    let mut quiet = BTreeSet::new();
    for test in tests["tests"]
        .as_sequence()
        .expect("alerts_test.yaml has `tests:`")
    {
        for case in test["alert_rule_test"].as_sequence().into_iter().flatten() {
            let name = case["alertname"]
                .as_str()
                .expect("each case names its alert");
            let expected = case["exp_alerts"].as_sequence().map_or(0, Vec::len);
            if expected == 0 {
                quiet.insert(name.to_owned());
            } else {
                fired.insert(name.to_owned());
            }
        }
    }
    for rule in rules(&rule_file) {
        let Some(name) = rule["alert"].as_str() else {
            continue;
        };
        assert!(fired.contains(name), "no unit test sees {name} fire");
        assert!(quiet.contains(name), "no unit test sees {name} stay quiet");
    }
}

/// An alert about a Pipeline names it as `namespace/pipeline` wherever it names it: a name
/// alone is ambiguous between namespaces.
#[test]
fn every_alert_names_a_pipeline_with_its_namespace() {
    let rule_file = yaml(&files().join("alerts.yaml"));
    let mut checked = 0;
    for rule in rules(&rule_file) {
        let Some(name) = rule["alert"].as_str() else {
            continue;
        };
        for (annotation, text) in rule["annotations"].as_mapping().into_iter().flatten() {
            let text = text.as_str().unwrap_or_default();
            if !text.contains("$labels.pipeline") {
                continue;
            }
            checked += 1;
            assert!(
                text.contains("{{ $labels.namespace }}/{{ $labels.pipeline }}"),
                "{name}: the {annotation:?} names the pipeline without its namespace: {text:?}"
            );
            for command in text.split('`').skip(1).step_by(2) {
                assert!(
                    !command.starts_with("kubectl ")
                        || command.contains("-n {{ $labels.namespace }}"),
                    "{name}: `{command}` should run in the Pipeline's namespace"
                );
            }
        }
    }
    assert!(checked >= 6, "only {checked} annotations name a pipeline");
}

/// The label names and values of a promtool series, `name{a="x", b="y"}`.
fn series_labels(series: &str) -> BTreeMap<String, String> {
    let label = regex::Regex::new(r#"(\w+)\s*=\s*"([^"]*)""#).unwrap();
    label
        .captures_iter(series)
        .map(|found| (found[1].to_owned(), found[2].to_owned()))
        .collect()
}

/// The unit tests' series and expected alerts carry `namespace` with every `pipeline`, as
/// the controller's do, and one Pipeline name lives in two namespaces somewhere, so that
/// an alert that mixed them up would be seen.
#[test]
fn the_unit_tests_label_pipelines_with_their_namespace() {
    let tests = yaml(&files().join("alerts_test.yaml"));
    let mut namespaces_of: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut expected = 0;
    for test in tests["tests"]
        .as_sequence()
        .expect("alerts_test.yaml has `tests:`")
    {
        let name = test["name"].as_str().unwrap_or("(unnamed test)");
        for input in test["input_series"].as_sequence().into_iter().flatten() {
            let series = input["series"]
                .as_str()
                .expect("each input names its series");
            let labels = series_labels(series);
            if let Some(pipeline) = labels.get("pipeline") {
                let namespace = labels
                    .get("namespace")
                    .unwrap_or_else(|| panic!("{name}: {series} has no namespace"));
                namespaces_of
                    .entry(pipeline.clone())
                    .or_default()
                    .insert(namespace.clone());
            }
        }
        for case in test["alert_rule_test"].as_sequence().into_iter().flatten() {
            for alert in case["exp_alerts"].as_sequence().into_iter().flatten() {
                let labels = &alert["exp_labels"];
                if labels.get("pipeline").is_some() {
                    expected += 1;
                    assert!(
                        labels.get("namespace").is_some(),
                        "{name} at {:?}: expects {labels:?} without a namespace",
                        case["eval_time"]
                    );
                }
            }
        }
    }
    assert!(expected > 0, "no expected alert names a pipeline");
    assert!(
        namespaces_of
            .values()
            .any(|namespaces| namespaces.len() > 1),
        "no unit test has one Pipeline name in two namespaces: {namespaces_of:?}"
    );
}

/// sprig's `nindent`, as the template applies it to the included file.
fn nindent(text: &str, spaces: usize) -> String {
    let pad = " ".repeat(spaces);
    format!("\n{pad}{}", text.replace('\n', &format!("\n{pad}")))
}

/// The template includes the rule file verbatim under `spec:`; the result must still be
/// YAML, with the very same groups (no line of the file may depend on its indentation).
#[test]
fn the_prometheus_rule_template_puts_the_alerts_under_spec_unchanged() {
    let template = read(Path::new(RULE_TEMPLATE));
    let include = regex::Regex::new(
        r#"(?m)^spec:\n(\s*)\{\{- \.Files\.Get "([^"]+)" \| nindent (\d+) \}\}$"#,
    )
    .unwrap();
    let captures = include.captures(&template).unwrap_or_else(|| {
        panic!("{RULE_TEMPLATE} should include the rule file under `spec:` with nindent")
    });
    assert_eq!(&captures[2], "files/alerts.yaml");
    let indent: usize = captures[3].parse().unwrap();
    assert!(
        template.contains("monitoring.coreos.com/v1") && template.contains("kind: PrometheusRule"),
        "{RULE_TEMPLATE} renders a monitoring.coreos.com/v1 PrometheusRule"
    );
    assert!(
        template.contains(".Values.prometheusRule.enabled"),
        "the PrometheusRule is optional"
    );

    let file = read(&files().join("alerts.yaml"));
    let rendered = format!("spec:{}", nindent(&file, indent));
    let rendered: Value = serde_yaml::from_str(&rendered)
        .unwrap_or_else(|e| panic!("the included rule file is not valid YAML: {e}\n{rendered}"));
    let original: Value = serde_yaml::from_str(&file).unwrap();
    assert_eq!(rendered["spec"], original);
    assert!(
        rendered["spec"]["groups"]
            .as_sequence()
            .is_some_and(|groups| !groups.is_empty()),
        "spec.groups holds the alert groups"
    );
}
