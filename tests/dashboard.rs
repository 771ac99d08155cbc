//! The Grafana dashboard (`charts/greenlight/dashboards/greenlight.json`) and the alert
//! rules (`charts/greenlight/files/alerts.yaml`) query only what the controller exports.
//! Every PromQL expression (panel targets at any depth, collapsed rows included, and the
//! query variables) is parsed with `promql-parser`; each metric it selects must be a series
//! of the real registry ([`Metrics`], with every metric given a value), and each label it
//! matches or groups by must be one of that series' labels. Pipeline names are unique only
//! within a namespace, so wherever an expression filters, groups or matches on `pipeline`
//! it must use `namespace` too. The panels the README promises exist, and
//! `dashboards/greenlight.json` at the repository root is a link to the chart's file.

#[path = "support/promtool.rs"]
mod promtool;

use std::{
    collections::{BTreeMap, BTreeSet},
    path::Path,
    process::Command,
    time::Duration,
};

use greenlight::{
    api::{PipelineStatus, ReleaseStatus},
    engine::{Decision, Event, EventType, MetricEvent, Regarding},
    metrics::{Metrics, PipelineLabels},
};
use promql_parser::{
    label::{Labels, MatchOp},
    parser::{self, Expr, LabelModifier, VectorSelector},
    util::{ExprVisitor, walk_expr},
};
use promtool::promtool;
use regex::{Captures, Regex};
use serde_json::{Value, json};

const CHART: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/charts/greenlight");
const DASHBOARD: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/charts/greenlight/dashboards/greenlight.json"
);
const ROOT_LINK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/dashboards/greenlight.json");

// ---------------------------------------------------------------------------------------
// What the controller exports

/// One of each metric event, so that every metric of the registry gets a series.
fn every_metric_event() -> Vec<MetricEvent> {
    let events = vec![
        MetricEvent::PromotionFinished {
            result: "succeeded",
            duration: Some(Duration::from_secs(600)),
            lead_time: Some(Duration::from_secs(7200)),
        },
        MetricEvent::Rollback {
            trigger: "verification",
        },
        MetricEvent::Restored {
            after: Duration::from_secs(900),
        },
        MetricEvent::CanaryStep {
            passed: true,
            duration: Duration::from_secs(300),
        },
        MetricEvent::DriftRepaired,
        MetricEvent::DriftFight,
        MetricEvent::GatesPassed {
            gates: vec!["approvals"],
        },
    ];
    // Exhaustive on purpose: a new kind of metric event does not compile here until it is
    // added above, so the registry below never misses the metric it feeds.
    let kinds: BTreeSet<u8> = events
        .iter()
        .map(|event| match event {
            MetricEvent::PromotionFinished { .. } => 0,
            MetricEvent::Rollback { .. } => 1,
            MetricEvent::Restored { .. } => 2,
            MetricEvent::DriftRepaired => 3,
            MetricEvent::GatesPassed { .. } => 4,
            MetricEvent::CanaryStep { .. } => 5,
            MetricEvent::DriftFight => 6,
        })
        .collect();
    assert_eq!(kinds.len(), 7, "one event of each kind");
    events
}

/// A decision for pipeline `shop` whose status and Events touch every metric: one
/// environment, Degraded and running a release, a candidate blocked by a gate, and one
/// Event of each metric kind.
fn decision_touching_every_metric() -> Decision {
    let pipeline_status: PipelineStatus = serde_json::from_value(json!({
        "environments": [{
            "name": "prod",
            "phase": "Degraded",
            "healthy": false,
            "current": {"release": "shop-1-2-3", "version": "1.2.3"},
        }],
    }))
    .expect("a valid Pipeline status");
    let waiting: ReleaseStatus = serde_json::from_value(json!({
        "environments": [{
            "name": "prod",
            "state": "Waiting",
            "since": "2026-11-20T09:00:00Z",
            "blockedBy": [{"gate": "approvals", "reason": "needs two approvals"}],
        }],
    }))
    .expect("a valid Release status");
    let events = every_metric_event()
        .into_iter()
        .map(|metric| Event {
            regarding: Regarding::Pipeline,
            kind: EventType::Normal,
            reason: "Test",
            message: String::new(),
            environment: Some("prod".to_owned()),
            metric: Some(metric),
        })
        .collect();
    Decision {
        pipeline_status,
        release_statuses: BTreeMap::from([("shop-1-2-4".to_owned(), waiting)]),
        events,
        ..Decision::default()
    }
}

/// Series name → its label names, read from the exposition of a real [`Metrics`] in
/// which every metric has a value. A histogram contributes its `_bucket`, `_sum` and
/// `_count` series, exactly as Prometheus stores them.
fn exported_series() -> BTreeMap<String, BTreeSet<String>> {
    let metrics = Metrics::new();
    let decision = decision_touching_every_metric();
    let shop = PipelineLabels::new("shop", "shop");
    metrics.record_events(shop, &decision);
    metrics.record_status(shop, &decision.pipeline_status, &decision);
    metrics.reconcile("Pipeline").ok();
    metrics.api_request("get", "pipelines", "ok");
    let text = metrics.render_at("2026-11-22T09:00:00Z".parse().unwrap());
    let series = parse_exposition(&text);
    // Families without a sample are left out of the exposition: every one declared must
    // have been given one above, or names would be missing from the check.
    for line in text.lines().filter(|l| l.starts_with("# TYPE ")) {
        let mut words = line["# TYPE ".len()..].split(' ');
        let (family, kind) = (words.next().unwrap(), words.next().unwrap_or_default());
        let sample = if kind == "histogram" {
            format!("{family}_count")
        } else {
            family.to_owned()
        };
        assert!(
            series.contains_key(&sample),
            "{family} declared but no {sample} series"
        );
    }
    series
}

/// Series name → label names, from the text exposition format.
fn parse_exposition(text: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut series: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let end = line
            .find(['{', ' '])
            .unwrap_or_else(|| panic!("not a sample line: {line:?}"));
        let labels = series.entry(line[..end].to_owned()).or_default();
        if let Some(rest) = line[end..].strip_prefix('{') {
            labels.extend(label_names(rest));
        }
    }
    series
}

/// The label names of `a="x",b="y"} 1` (the text after a sample's `{`), up to the closing
/// brace. Values may hold escaped quotes, commas, braces and equals signs.
fn label_names(mut rest: &str) -> Vec<String> {
    let mut names = Vec::new();
    loop {
        rest = rest.strip_prefix(',').unwrap_or(rest);
        if rest.starts_with('}') {
            return names;
        }
        let (name, value_and_rest) = rest
            .split_once("=\"")
            .unwrap_or_else(|| panic!("malformed labels: {rest:?}"));
        names.push(name.to_owned());
        let mut chars = value_and_rest.char_indices();
        let closing_quote = loop {
            match chars.next() {
                Some((_, '\\')) => {
                    chars.next();
                }
                Some((at, '"')) => break at,
                Some(_) => {}
                None => panic!("unterminated label value: {value_and_rest:?}"),
            }
        };
        rest = &value_and_rest[closing_quote + 1..];
    }
}

#[test]
fn label_names_skip_values_with_escapes_commas_and_braces() {
    assert_eq!(
        label_names(r#"a="x\",b=\"y",c="}{,=",le="+Inf"} 1"#),
        ["a", "c", "le"]
    );
    assert_eq!(label_names("} 1"), Vec::<String>::new());
}

#[test]
fn the_exposition_yields_histogram_series_and_their_labels() {
    let series = exported_series();
    let bucket = &series["greenlight_lead_time_seconds_bucket"];
    assert_eq!(
        bucket.iter().map(String::as_str).collect::<Vec<_>>(),
        ["environment", "le", "namespace", "pipeline"]
    );
    assert!(series.contains_key("greenlight_lead_time_seconds_sum"));
    assert!(series.contains_key("greenlight_lead_time_seconds_count"));
    assert!(
        !series.contains_key("greenlight_lead_time_seconds"),
        "a histogram's own name is no series"
    );
    assert!(series.contains_key("greenlight_drift_repairs_total"));
}

// ---------------------------------------------------------------------------------------
// PromQL: which metrics and labels an expression uses

/// One vector selector of an expression: the metric and the labels its matchers name.
#[derive(Debug)]
struct Selector {
    metric: String,
    labels: Vec<String>,
}

/// Collects the selectors of an expression, and the labels each aggregation groups by
/// together with the metrics below it.
#[derive(Default)]
struct Uses {
    selectors: Vec<Selector>,
    /// (grouping label, metrics aggregated).
    groupings: Vec<(String, Vec<String>)>,
    /// The matchers, `by`, `without`, `on` and `ignoring` clauses that keep `pipeline`
    /// without `namespace`: they mix up Pipelines of the same name in two namespaces.
    pipeline_without_namespace: Vec<String>,
}

/// Whether a clause that keeps `kept` (matchers, `by`, `on`), or drops the other labels
/// (`without`, `ignoring`: `kept` is then what it drops), keeps `pipeline` but not
/// `namespace`.
fn keeps_pipeline_alone(kept: &[String], dropping: bool) -> bool {
    let has = |label: &str| kept.iter().any(|l| l == label);
    if dropping {
        has("namespace") && !has("pipeline")
    } else {
        has("pipeline") && !has("namespace")
    }
}

impl Uses {
    fn select(&mut self, selector: &VectorSelector) -> Result<(), String> {
        let matchers = || {
            selector
                .matchers
                .matchers
                .iter()
                .chain(selector.matchers.or_matchers.iter().flatten())
        };
        let by_name = matchers()
            .find(|m| m.name == "__name__" && matches!(m.op, MatchOp::Equal))
            .map(|m| m.value.clone());
        let metric = selector.name.clone().or(by_name).ok_or_else(|| {
            format!("{selector} picks metrics by a pattern, so the names cannot be checked")
        })?;
        let labels: Vec<String> = matchers()
            .map(|m| m.name.clone())
            .filter(|name| name != "__name__")
            .collect();
        if keeps_pipeline_alone(&labels, false) {
            self.pipeline_without_namespace
                .push(format!("{selector} filters on pipeline"));
        }
        self.selectors.push(Selector { metric, labels });
        Ok(())
    }

    /// Notes a `by`/`without` (`keyword` "by") or `on`/`ignoring` ("on") clause that keeps
    /// `pipeline` without `namespace`.
    fn modifier(&mut self, keyword: &str, modifier: &LabelModifier) {
        let (dropping, labels): (bool, &Labels) = match modifier {
            LabelModifier::Include(labels) => (false, labels),
            LabelModifier::Exclude(labels) => (true, labels),
        };
        if keeps_pipeline_alone(&labels.labels, dropping) {
            let keyword = match (keyword, dropping) {
                ("by", false) => "by",
                ("by", true) => "without",
                (_, false) => "on",
                (_, true) => "ignoring",
            };
            self.pipeline_without_namespace
                .push(format!("{keyword} ({labels}) keeps pipeline"));
        }
    }
}

impl ExprVisitor for Uses {
    type Error = String;

    fn pre_visit(&mut self, expr: &Expr) -> Result<bool, String> {
        match expr {
            Expr::VectorSelector(selector) => self.select(selector)?,
            Expr::MatrixSelector(matrix) => self.select(&matrix.vs)?,
            Expr::Aggregate(aggregate) => {
                // The walk does not enter an aggregation's parameter (topk's k, ...).
                if let Some(param) = &aggregate.param {
                    walk_expr(self, param)?;
                }
                if let Some(modifier) = &aggregate.modifier {
                    self.modifier("by", modifier);
                }
                if let Some(LabelModifier::Include(by)) = &aggregate.modifier {
                    let inner = uses(&aggregate.expr)?;
                    let metrics: Vec<String> =
                        inner.selectors.into_iter().map(|s| s.metric).collect();
                    for label in &by.labels {
                        self.groupings.push((label.clone(), metrics.clone()));
                    }
                }
            }
            Expr::Binary(binary) => {
                if let Some(matching) = binary.modifier.as_ref().and_then(|m| m.matching.as_ref()) {
                    self.modifier("on", matching);
                }
            }
            Expr::Extension(_) => return Err("an extension node the parser never makes".into()),
            _ => {}
        }
        Ok(true)
    }
}

fn uses(expr: &Expr) -> Result<Uses, String> {
    let mut uses = Uses::default();
    walk_expr(&mut uses, expr)?;
    Ok(uses)
}

/// Everything wrong with `expr` (named `origin` in messages) against the exported series:
/// it does not parse, names a metric or a label the controller does not export, or filters,
/// groups or matches on `pipeline` without `namespace`.
fn check_expression(
    origin: &str,
    expr: &str,
    exported: &BTreeMap<String, BTreeSet<String>>,
) -> Result<BTreeSet<String>, Vec<String>> {
    let parsed = parser::parse(expr).map_err(|e| vec![format!("{origin}: {e}: {expr}")])?;
    let uses = uses(&parsed).map_err(|e| vec![format!("{origin}: {e}")])?;
    let mut problems = Vec::new();
    for selector in &uses.selectors {
        let Some(labels) = exported.get(&selector.metric) else {
            problems.push(format!(
                "{origin}: {} is not a series the controller exports",
                selector.metric
            ));
            continue;
        };
        for label in selector.labels.iter().filter(|l| !labels.contains(*l)) {
            problems.push(format!(
                "{origin}: {} has no label {label:?} (it has {labels:?})",
                selector.metric
            ));
        }
    }
    for (label, metrics) in &uses.groupings {
        for metric in metrics {
            if exported
                .get(metric)
                .is_some_and(|labels| !labels.contains(label))
            {
                problems.push(format!(
                    "{origin}: groups {metric} by {label:?}, a label it does not have"
                ));
            }
        }
    }
    for clause in &uses.pipeline_without_namespace {
        problems.push(format!(
            "{origin}: {clause} but not namespace: Pipeline names are unique only within a \
             namespace, so the two go together"
        ));
    }
    if problems.is_empty() {
        Ok(uses.selectors.into_iter().map(|s| s.metric).collect())
    } else {
        Err(problems)
    }
}

#[test]
fn the_check_catches_unknown_metrics_labels_and_groupings() {
    let exported = exported_series();
    let good = r#"sum by (environment) (increase(greenlight_promotions_total{result="failed"}[1h])) / on() group_left sum(greenlight_promotions_total)"#;
    assert_eq!(
        check_expression("good", good, &exported),
        Ok(BTreeSet::from(["greenlight_promotions_total".to_owned()]))
    );
    let by_pipeline = r#"sum by (namespace, pipeline) (greenlight_promotions_total{namespace="a", pipeline="shop"}) * on (namespace, pipeline) group_left sum without (namespace, pipeline, result) (greenlight_promotions_total)"#;
    assert_eq!(
        check_expression("by pipeline", by_pipeline, &exported),
        Ok(BTreeSet::from(["greenlight_promotions_total".to_owned()]))
    );
    for (bad, why) in [
        ("rate(greenlight_promotion_total[5m])", "not a series"),
        ("greenlight_lead_time_seconds", "not a series"),
        (
            r#"greenlight_promotions_total{enviroment="prod"}"#,
            "no label",
        ),
        ("sum by (gate) (greenlight_promotions_total)", "groups"),
        (
            r#"greenlight_promotions_total{pipeline="shop"}"#,
            "filters on pipeline but not namespace",
        ),
        (
            r#"sum by (pipeline, environment) (greenlight_promotions_total{namespace="a"})"#,
            "by (pipeline, environment) keeps pipeline but not namespace",
        ),
        (
            "sum without (namespace) (greenlight_promotions_total)",
            "without (namespace) keeps pipeline but not namespace",
        ),
        (
            "greenlight_environment_info * on (pipeline, environment) greenlight_environment_healthy",
            "on (pipeline, environment) keeps pipeline but not namespace",
        ),
        (
            "topk(scalar(greenlight_nope), greenlight_promotions_total)",
            "not a series",
        ),
        (r#"{__name__=~"greenlight_.*"}"#, "pattern"),
        ("sum(rate(greenlight_reconcile_total[5m]", "unclosed"),
    ] {
        let problems = check_expression("bad", bad, &exported).unwrap_err();
        assert!(
            problems.iter().any(|p| p.contains(why)),
            "{bad}: {problems:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// The dashboard

fn dashboard() -> Value {
    let text = std::fs::read_to_string(DASHBOARD).unwrap_or_else(|e| panic!("{DASHBOARD}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{DASHBOARD} is not JSON: {e}"))
}

/// Every panel at any depth: rows, and the panels a collapsed row keeps inside it.
fn panels(dashboard: &Value) -> Vec<&Value> {
    fn collect<'a>(list: &'a Value, out: &mut Vec<&'a Value>) {
        for panel in list.as_array().into_iter().flatten() {
            out.push(panel);
            if let Some(children) = panel.get("panels") {
                collect(children, out);
            }
        }
    }
    let mut out = Vec::new();
    collect(&dashboard["panels"], &mut out);
    out
}

fn title(panel: &Value) -> &str {
    panel["title"].as_str().unwrap_or("(untitled)")
}

/// One PromQL expression of the dashboard and where it comes from.
struct Query {
    origin: String,
    expr: String,
    /// For a `label_values(selector, label)` variable: the label it lists.
    lists_label: Option<String>,
}

/// Grafana's built-in interval variables, replaced by values of the same shape: a week's
/// time range (the dashboard's default).
const BUILTINS: [(&str, &str); 6] = [
    ("__range", "7d"),
    ("__range_s", "604800"),
    ("__range_ms", "604800000"),
    ("__interval", "1h"),
    ("__interval_ms", "3600000"),
    ("__rate_interval", "5m"),
];

/// The built-ins for a one-day time range.
const ONE_DAY: [(&str, &str); 6] = [
    ("__range", "1d"),
    ("__range_s", "86400"),
    ("__range_ms", "86400000"),
    ("__interval", "1h"),
    ("__interval_ms", "3600000"),
    ("__rate_interval", "5m"),
];

/// `expr` with Grafana's variables replaced: the built-ins by values of their shape, and
/// the dashboard's own variables by `.*` (they hold regexes of label values, so they only
/// fit inside a matcher's string, where PromQL then parses them). An unknown variable is an
/// error.
fn expand(expr: &str, variables: &BTreeSet<String>) -> Result<String, String> {
    expand_with(expr, variables, &BUILTINS)
}

/// [`expand`] with the given values of the built-in variables.
fn expand_with(
    expr: &str,
    variables: &BTreeSet<String>,
    builtins: &[(&str, &str)],
) -> Result<String, String> {
    let syntax = Regex::new(r"\$\{(\w+)(?::[^}]*)?\}|\$(\w+)|\[\[(\w+)(?::[^\]]*)?\]\]").unwrap();
    let mut unknown = Vec::new();
    let expanded = syntax.replace_all(expr, |found: &Captures| {
        let name = (1..=3).find_map(|i| found.get(i)).unwrap().as_str();
        if let Some((_, value)) = builtins.iter().find(|(builtin, _)| *builtin == name) {
            (*value).to_owned()
        } else if variables.contains(name) {
            ".*".to_owned()
        } else {
            unknown.push(name.to_owned());
            String::new()
        }
    });
    if unknown.is_empty() {
        Ok(expanded.into_owned())
    } else {
        Err(format!("uses undefined variables {unknown:?}"))
    }
}

#[test]
fn expanding_variables_keeps_promql_parseable_and_rejects_unknown_ones() {
    let variables = BTreeSet::from(["pipeline".to_owned()]);
    assert_eq!(
        expand(
            r#"increase(x{pipeline=~"$pipeline", b=~"${pipeline:regex}"}[$__range]) / $__range_s"#,
            &variables
        ),
        Ok(r#"increase(x{pipeline=~".*", b=~".*"}[7d]) / 604800"#.to_owned())
    );
    assert_eq!(
        expand("rate(x[$__rate_interval])", &variables),
        Ok("rate(x[5m])".to_owned())
    );
    assert!(expand(r#"x{a=~"$nope"}"#, &variables).is_err());
}

/// Every PromQL expression of the dashboard: each target's `expr` at any depth, and the
/// selector of each query variable (`label_values(selector, label)` or
/// `query_result(expr)`), both its `query` and its `definition`.
fn queries(dashboard: &Value) -> Vec<Query> {
    let mut queries = Vec::new();
    for panel in panels(dashboard) {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().unwrap_or_else(|| {
                panic!("panel {:?}: a target without a PromQL expr", title(panel))
            });
            queries.push(Query {
                origin: format!("panel {:?} target {}", title(panel), target["refId"]),
                expr: expr.to_owned(),
                lists_label: None,
            });
        }
    }
    let label_values = Regex::new(r"^\s*label_values\(\s*(.+?)\s*,\s*(\w+)\s*\)\s*$").unwrap();
    let query_result = Regex::new(r"^\s*query_result\((.+)\)\s*$").unwrap();
    for variable in variables(dashboard).filter(|v| v["type"] == "query") {
        let name = variable["name"].as_str().unwrap_or_default();
        let query = match &variable["query"] {
            Value::Object(editor) => editor["query"].as_str(),
            other => other.as_str(),
        };
        for (field, text) in [
            ("query", query),
            ("definition", variable["definition"].as_str()),
        ] {
            let text = text.unwrap_or_else(|| panic!("variable {name}: no {field}"));
            let origin = format!("variable {name} {field}");
            if let Some(found) = label_values.captures(text) {
                queries.push(Query {
                    origin,
                    expr: found[1].to_owned(),
                    lists_label: Some(found[2].to_owned()),
                });
            } else if let Some(found) = query_result.captures(text) {
                queries.push(Query {
                    origin,
                    expr: found[1].to_owned(),
                    lists_label: None,
                });
            } else {
                panic!(
                    "{origin}: {text:?} is not label_values(selector, label) or query_result(expr)"
                );
            }
        }
    }
    queries
}

fn variables(dashboard: &Value) -> impl Iterator<Item = &Value> {
    dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
}

/// How many `expr` fields the document holds anywhere, to be sure the walk finds them all.
fn count_exprs(value: &Value) -> usize {
    match value {
        Value::Object(map) => map
            .iter()
            .map(|(key, v)| usize::from(key == "expr" && v.is_string()) + count_exprs(v))
            .sum(),
        Value::Array(items) => items.iter().map(count_exprs).sum(),
        _ => 0,
    }
}

#[test]
fn every_dashboard_query_uses_only_exported_metrics_and_labels() {
    let dashboard = dashboard();
    let exported = exported_series();
    let names: BTreeSet<String> = variables(&dashboard)
        .filter_map(|v| v["name"].as_str().map(str::to_owned))
        .collect();
    let queries = queries(&dashboard);
    let targets = queries
        .iter()
        .filter(|q| q.origin.starts_with("panel "))
        .count();
    assert_eq!(
        targets,
        count_exprs(&dashboard),
        "an expr outside panels' targets, where the walk does not look"
    );
    assert!(targets >= 10, "only {targets} targets found");
    let mut problems = Vec::new();
    for query in &queries {
        let expr = match expand(&query.expr, &names) {
            Ok(expr) => expr,
            Err(e) => {
                problems.push(format!("{}: {e}", query.origin));
                continue;
            }
        };
        match check_expression(&query.origin, &expr, &exported) {
            Ok(metrics) => {
                assert!(!metrics.is_empty(), "{}: queries no metric", query.origin);
                if let Some(label) = &query.lists_label {
                    for metric in metrics.iter().filter(|m| !exported[*m].contains(label)) {
                        problems.push(format!(
                            "{}: lists {label:?}, not a label of {metric}",
                            query.origin
                        ));
                    }
                }
            }
            Err(found) => problems.extend(found),
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The dashboard's variables that filter panels.
fn filter_variables() -> BTreeSet<String> {
    ["namespace", "pipeline", "environment"]
        .map(str::to_owned)
        .into()
}

/// The panels the README describes, the metric each must query, and its unit.
const REQUIRED_PANELS: [(&str, &[&str], Option<&str>); 15] = [
    (
        "What runs where",
        &[
            "greenlight_environment_info",
            "greenlight_environment_healthy",
            "greenlight_environment_degraded",
        ],
        None,
    ),
    (
        "Deployment frequency",
        &["greenlight_promotions_total"],
        None,
    ),
    (
        "Lead time (p50)",
        &["greenlight_lead_time_seconds_bucket"],
        Some("s"),
    ),
    (
        "Change failure rate",
        &["greenlight_promotions_total"],
        Some("percentunit"),
    ),
    (
        "Time to restore (p50)",
        &["greenlight_time_to_restore_seconds_bucket"],
        Some("s"),
    ),
    (
        "Promotions by result",
        &["greenlight_promotions_total"],
        None,
    ),
    (
        "Rollbacks by trigger",
        &["greenlight_rollbacks_total"],
        None,
    ),
    (
        "Blocked time per gate",
        &["greenlight_promotion_blocked_seconds"],
        Some("s"),
    ),
    (
        "Canary weight",
        &["greenlight_canary_weight"],
        Some("percent"),
    ),
    (
        "Canary steps by result",
        &["greenlight_canary_steps_total"],
        None,
    ),
    (
        "Reconciles by result",
        &["greenlight_reconcile_total"],
        None,
    ),
    (
        "Reconcile error ratio",
        &["greenlight_reconcile_total"],
        Some("percentunit"),
    ),
    (
        "Reconcile latency",
        &["greenlight_reconcile_duration_seconds_bucket"],
        Some("s"),
    ),
    (
        "API requests by result",
        &["greenlight_api_requests_total"],
        Some("reqps"),
    ),
    (
        "API errors by call",
        &["greenlight_api_requests_total"],
        Some("reqps"),
    ),
];

#[test]
fn the_promised_panels_exist_and_query_what_they_say() {
    let dashboard = dashboard();
    let exported = exported_series();
    let all = panels(&dashboard);
    for (wanted, metrics, unit) in REQUIRED_PANELS {
        let matching: Vec<&&Value> = all.iter().filter(|p| title(p) == wanted).collect();
        assert_eq!(matching.len(), 1, "one panel titled {wanted:?}");
        let panel = matching[0];
        let mut used = BTreeSet::new();
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = expand(target["expr"].as_str().unwrap(), &filter_variables()).unwrap();
            used.extend(check_expression(wanted, &expr, &exported).unwrap());
        }
        for metric in metrics {
            assert!(
                used.contains(*metric),
                "{wanted:?} should query {metric}: {used:?}"
            );
        }
        if let Some(unit) = unit {
            assert_eq!(
                panel["fieldConfig"]["defaults"]["unit"].as_str(),
                Some(unit),
                "unit of {wanted:?}"
            );
        }
    }
}

#[test]
fn what_runs_where_merges_instant_tables_of_its_three_metrics() {
    let dashboard = dashboard();
    let table = panels(&dashboard)
        .into_iter()
        .find(|p| title(p) == "What runs where")
        .expect("the What runs where panel");
    assert_eq!(table["type"], "table");
    let targets = table["targets"].as_array().unwrap();
    assert_eq!(targets.len(), 3);
    for target in targets {
        assert_eq!(target["instant"], true, "{target}");
        assert_eq!(target["format"], "table", "{target}");
    }
    let transformations: Vec<&str> = table["transformations"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["id"].as_str())
        .collect();
    assert_eq!(
        transformations.first(),
        Some(&"merge"),
        "{transformations:?}"
    );
    // Pipelines are named by namespace and name: the namespace is the first column.
    let organize = &table["transformations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == "organize")
        .expect("an organize transformation")["options"];
    assert_eq!(organize["indexByName"]["namespace"], 0, "{organize}");
    assert_eq!(organize["indexByName"]["pipeline"], 1, "{organize}");
    assert_eq!(
        organize["renameByName"]["namespace"], "Namespace",
        "{organize}"
    );
    assert_ne!(organize["excludeByName"]["namespace"], true, "{organize}");
}

/// Grafana refreshes variables in order: Namespace comes before Pipeline and lists the
/// namespaces of the exported Pipelines, and Pipeline and Environment list only what the
/// selected namespaces hold.
#[test]
fn the_namespace_variable_comes_first_and_narrows_pipeline_and_environment() {
    let dashboard = dashboard();
    let names: Vec<&str> = variables(&dashboard)
        .filter_map(|v| v["name"].as_str())
        .collect();
    let at = |name: &str| {
        names
            .iter()
            .position(|n| *n == name)
            .unwrap_or_else(|| panic!("no {name} variable: {names:?}"))
    };
    assert!(
        at("namespace") < at("pipeline") && at("pipeline") < at("environment"),
        "{names:?}"
    );
    let variable = |name: &str| variables(&dashboard).find(|v| v["name"] == name).unwrap();
    let namespace = variable("namespace");
    for field in [&namespace["definition"], &namespace["query"]["query"]] {
        assert_eq!(
            field, "label_values(greenlight_environment_info, namespace)",
            "{namespace}"
        );
    }
    assert_eq!(namespace["multi"], true, "{namespace}");
    assert_eq!(namespace["includeAll"], true, "{namespace}");
    assert_eq!(namespace["allValue"], ".*", "{namespace}");
    for name in ["pipeline", "environment"] {
        let variable = variable(name);
        for field in [&variable["definition"], &variable["query"]["query"]] {
            assert!(
                field
                    .as_str()
                    .is_some_and(|q| q.contains(r#"namespace=~"$namespace""#)),
                "{name} should list only the selected namespaces': {field}"
            );
        }
    }
}

/// A legend that names a Pipeline names it `namespace/pipeline`, and so does every legend
/// of a query that keeps `pipeline` in its result (unless Grafana's automatic one).
#[test]
fn legends_name_pipelines_with_their_namespace() {
    let dashboard = dashboard();
    let mut checked = 0;
    for panel in panels(&dashboard) {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let legend = target["legendFormat"].as_str().unwrap_or("__auto");
            let expr = expand(target["expr"].as_str().unwrap(), &filter_variables()).unwrap();
            let keeps_pipeline = uses(&parser::parse(&expr).unwrap())
                .unwrap()
                .groupings
                .iter()
                .any(|(label, _)| label == "pipeline");
            if legend.contains("{{pipeline}}") || (keeps_pipeline && legend != "__auto") {
                assert!(
                    legend.contains("{{namespace}}/{{pipeline}}"),
                    "{:?} target {}: legend {legend:?} should name the Pipeline as \
                     {{{{namespace}}}}/{{{{pipeline}}}}",
                    title(panel),
                    target["refId"]
                );
                checked += 1;
            }
        }
    }
    assert!(checked >= 5, "only {checked} legends name a Pipeline");
}

#[test]
fn every_panel_is_described_uses_the_datasource_variable_and_has_a_unique_id() {
    let dashboard = dashboard();
    assert!(dashboard["schemaVersion"].as_u64().is_some_and(|v| v >= 36));
    let datasource = variables(&dashboard)
        .find(|v| v["name"] == "datasource")
        .expect("a datasource variable");
    assert_eq!(datasource["type"], "datasource");
    assert_eq!(datasource["query"], "prometheus");
    for name in ["namespace", "pipeline", "environment"] {
        let variable = variables(&dashboard)
            .find(|v| v["name"] == name)
            .unwrap_or_else(|| panic!("a {name} variable"));
        assert_eq!(variable["type"], "query", "{name}");
        assert_eq!(variable["datasource"]["uid"], "${datasource}", "{name}");
    }
    let mut ids = BTreeSet::new();
    for panel in panels(&dashboard) {
        let name = title(panel);
        let id = panel["id"]
            .as_u64()
            .unwrap_or_else(|| panic!("{name:?} has no id"));
        assert!(ids.insert(id), "panel id {id} used twice ({name:?})");
        if panel["type"] == "row" {
            continue;
        }
        assert!(
            panel["description"].as_str().is_some_and(|d| d.len() > 40),
            "{name:?} needs a description of what it measures"
        );
        assert_eq!(panel["datasource"]["uid"], "${datasource}", "{name:?}");
        let mut refs = BTreeSet::new();
        for target in panel["targets"].as_array().into_iter().flatten() {
            assert_eq!(target["datasource"]["uid"], "${datasource}", "{name:?}");
            assert!(
                refs.insert(target["refId"].to_string()),
                "{name:?}: refId twice"
            );
        }
        if panel["type"] != "table" {
            assert!(
                panel["fieldConfig"]["defaults"]["unit"].is_string(),
                "{name:?} needs a unit"
            );
        }
    }
}

#[test]
fn the_repository_root_links_to_the_charts_dashboard() {
    let link = Path::new(ROOT_LINK);
    let meta = std::fs::symlink_metadata(link).unwrap_or_else(|e| panic!("{ROOT_LINK}: {e}"));
    assert!(
        meta.file_type().is_symlink(),
        "{ROOT_LINK} should be a symlink"
    );
    assert_eq!(
        std::fs::read_link(link).unwrap(),
        Path::new("../charts/greenlight/dashboards/greenlight.json"),
        "a relative link, valid in any checkout"
    );
    assert_eq!(
        std::fs::read(link).unwrap(),
        std::fs::read(DASHBOARD).unwrap()
    );
}

/// sprig's `nindent`, as the template applies it to the included file.
fn nindent(text: &str, spaces: usize) -> String {
    let pad = " ".repeat(spaces);
    format!("\n{pad}{}", text.replace('\n', &format!("\n{pad}")))
}

/// The ConfigMap template includes the JSON verbatim in a block scalar; read back, the
/// value must be the dashboard itself.
#[test]
fn the_dashboard_configmap_carries_the_json_unchanged() {
    let path = format!("{CHART}/templates/dashboard-configmap.yaml");
    let template = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let include = Regex::new(
        r#"(?m)^data:\n  ([\w.-]+): \|-\n\s*\{\{- \.Files\.Get "([^"]+)" \| nindent (\d+) \}\}$"#,
    )
    .unwrap();
    let found = include
        .captures(&template)
        .unwrap_or_else(|| panic!("{path} should include the dashboard under data: with nindent"));
    assert_eq!(&found[2], "dashboards/greenlight.json");
    for wanted in [
        ".Values.dashboard.enabled",
        ".Values.dashboard.labels",
        ".Values.dashboard.annotations",
        ".Values.dashboard.namespace",
    ] {
        assert!(template.contains(wanted), "{path} should use {wanted}");
    }
    let json = std::fs::read_to_string(format!("{CHART}/{}", &found[2])).unwrap();
    let indent: usize = found[3].parse().unwrap();
    let rendered = format!("data:\n  {}: |-{}", &found[1], nindent(&json, indent));
    let rendered: serde_yaml::Value = serde_yaml::from_str(&rendered)
        .unwrap_or_else(|e| panic!("the included dashboard is not valid YAML: {e}"));
    let value = rendered["data"][&found[1]].as_str().unwrap();
    assert_eq!(value, json.trim_end_matches('\n'));
    assert_eq!(serde_json::from_str::<Value>(value).unwrap(), dashboard());
}

/// The DORA panels' queries, as Grafana sends them for a one-day range, evaluated by
/// Prometheus's own engine (`promtool test rules` with `promql_expr_test`) over a day of
/// series shaped like the controller's: the numbers a reader sees are the four keys.
#[test]
fn the_dora_panels_compute_the_four_keys() {
    let Some(promtool) = promtool() else { return };
    let dashboard = dashboard();
    let variables = filter_variables();
    let query = |wanted: &str| {
        let panel = panels(&dashboard)
            .into_iter()
            .find(|p| title(p) == wanted)
            .unwrap_or_else(|| panic!("no panel {wanted:?}"));
        let targets = panel["targets"].as_array().unwrap();
        assert_eq!(targets.len(), 1, "{wanted:?} has one query");
        expand_with(targets[0]["expr"].as_str().unwrap(), &variables, &ONE_DAY).unwrap()
    };
    // One sample a minute over the day: "a xn" is n+1 samples of a. `shop` in team-a and
    // `shop` in team-b are two Pipelines: their numbers must not mix.
    let prod = ("team-a", "prod");
    let staging = ("team-a", "staging");
    let other_prod = ("team-b", "prod");
    let series = |name: &str, at: (&str, &str), extra: &str, values: &str| {
        let (namespace, environment) = at;
        json!({
            "series": format!(
                r#"{name}{{namespace="{namespace}", pipeline="shop", environment="{environment}"{extra}}}"#
            ),
            "values": values,
        })
    };
    let promotions = "greenlight_promotions_total";
    let lead = "greenlight_lead_time_seconds_bucket";
    let restore = "greenlight_time_to_restore_seconds_bucket";
    let input = [
        // prod: 4 successes, 1 failure, 1 rollback, 5 superseded candidates in the day.
        series(
            promotions,
            prod,
            r#", result="succeeded""#,
            "0x360 1x360 2x360 4x360",
        ),
        series(promotions, prod, r#", result="failed""#, "0x720 1x720"),
        series(
            promotions,
            prod,
            r#", result="rolled_back""#,
            "0x1000 1x440",
        ),
        series(promotions, prod, r#", result="superseded""#, "0x100 5x1340"),
        // staging: promoted before the day, nothing since (the other counters exist at 0).
        series(promotions, staging, r#", result="succeeded""#, "2x1440"),
        series(promotions, staging, r#", result="failed""#, "0x1440"),
        series(promotions, staging, r#", result="rolled_back""#, "0x1440"),
        series(
            promotions,
            staging,
            r#", result="superseded""#,
            "0x100 5x1340",
        ),
        // team-b's prod: 2 successes, nothing failed, no lead time finished.
        series(
            promotions,
            other_prod,
            r#", result="succeeded""#,
            "0x720 2x720",
        ),
        series(promotions, other_prod, r#", result="failed""#, "0x1440"),
        series(
            promotions,
            other_prod,
            r#", result="rolled_back""#,
            "0x1440",
        ),
        series(lead, other_prod, r#", le="3600""#, "0x1440"),
        series(lead, other_prod, r#", le="+Inf""#, "0x1440"),
        // prod lead times: one under 1h, two between 1h and 2h, one longer: median 1h30m.
        series(lead, prod, r#", le="3600""#, "0x720 1x720"),
        series(lead, prod, r#", le="7200""#, "0x720 3x720"),
        series(lead, prod, r#", le="+Inf""#, "0x720 4x720"),
        series(lead, staging, r#", le="3600""#, "1x1440"),
        series(lead, staging, r#", le="+Inf""#, "1x1440"),
        // prod restores: two between 5m and 15m: median 10m.
        series(restore, prod, r#", le="300""#, "0x1440"),
        series(restore, prod, r#", le="900""#, "0x720 2x720"),
        series(restore, prod, r#", le="+Inf""#, "0x720 2x720"),
    ];
    let expect = |panel: &str, samples: &[((&str, &str), f64)]| {
        let samples: Vec<Value> = samples
            .iter()
            .map(|((namespace, environment), value)| {
                json!({
                    "labels": format!(
                        r#"{{namespace="{namespace}", pipeline="shop", environment="{environment}"}}"#
                    ),
                    "value": value,
                })
            })
            .collect();
        json!({"expr": query(panel), "eval_time": "1d", "exp_samples": samples})
    };
    let cases = [
        // Per day; staging's zero is shown, not hidden.
        expect(
            "Deployment frequency",
            &[(prod, 4.0), (staging, 0.0), (other_prod, 2.0)],
        ),
        // No lead time finished in staging or team-b's prod: no value rather than NaN.
        expect("Lead time (p50)", &[(prod, 5400.0)]),
        // (1 + 1) / (4 + 1 + 1): superseded candidates are no deployments; staging had none.
        expect(
            "Change failure rate",
            &[(prod, 1.0 / 3.0), (other_prod, 0.0)],
        ),
        expect("Time to restore (p50)", &[(prod, 600.0)]),
    ];
    let file = json!({
        "rule_files": [],
        "evaluation_interval": "1m",
        "tests": [{"interval": "1m", "input_series": input, "promql_expr_test": cases}],
    });
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dora_test.yaml");
    std::fs::write(&path, serde_yaml::to_string(&file).unwrap()).unwrap();
    let output = Command::new(&promtool)
        .args(["test", "rules"])
        .arg(&path)
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", promtool.display()));
    assert!(
        output.status.success(),
        "the DORA queries do not compute the expected values:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

// ---------------------------------------------------------------------------------------
// The alerts

#[test]
fn every_alert_expression_uses_only_exported_metrics_and_labels() {
    let path = format!("{CHART}/files/alerts.yaml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let rules: serde_yaml::Value =
        serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
    let exported = exported_series();
    let mut problems = Vec::new();
    let mut checked = 0;
    for group in rules["groups"].as_sequence().expect("a groups: list") {
        for rule in group["rules"].as_sequence().expect("a rules: list") {
            let name = rule["alert"]
                .as_str()
                .or(rule["record"].as_str())
                .unwrap_or("(unnamed rule)");
            let expr = rule["expr"]
                .as_str()
                .unwrap_or_else(|| panic!("{name}: no expr"));
            match check_expression(name, expr, &exported) {
                Ok(metrics) if metrics.is_empty() => problems.push(format!("{name}: no metric")),
                Ok(_) => {}
                Err(found) => problems.extend(found),
            }
            checked += 1;
        }
    }
    assert!(checked >= 4, "only {checked} rules found in {path}");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
