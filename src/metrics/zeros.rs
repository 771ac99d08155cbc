//! Series that exist before their first event. Every series of a known Pipeline's
//! environments is exported from its first decision, at 0, so that `increase()` sees the
//! first event after a restart. They are written into the exposition when scraped rather
//! than stored as registry children: untouched counters and histograms of 5,000
//! environments would hold about 60 MB in the registry for zeros.

use std::{collections::HashSet, fmt::Write as _};

use prometheus::{Encoder, TextEncoder, proto::MetricFamily};

/// What kind of series a family has, as the text format names it.
#[derive(Clone, Copy, Debug)]
pub enum Shape {
    /// One sample per series.
    Counter,
    /// One sample per series.
    Gauge,
    /// `_bucket` per upper bound (and `+Inf`), `_sum` and `_count`.
    Histogram(&'static [f64]),
}

impl Shape {
    fn type_name(self) -> &'static str {
        match self {
            Self::Counter => "counter",
            Self::Gauge => "gauge",
            Self::Histogram(_) => "histogram",
        }
    }
}

/// One family's series that must show, at 0 unless the registry has them.
pub struct ZeroFamily {
    /// The family's name.
    pub name: String,
    /// Its help text.
    pub help: String,
    /// Its kind.
    pub shape: Shape,
    /// The label sets, each as (name, value) pairs.
    pub series: Vec<Vec<(&'static str, String)>>,
}

/// `{a="x",b="y"}`: labels sorted by name and escaped, as the text format writes them.
fn label_text<'a>(labels: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut labels: Vec<(&str, &str)> = labels.into_iter().collect();
    labels.sort();
    let mut text = String::from("{");
    for (i, (name, value)) in labels.iter().enumerate() {
        if i > 0 {
            text.push(',');
        }
        let escaped = value
            .replace('\\', "\\\\")
            .replace('\n', "\\n")
            .replace('"', "\\\"");
        let _ = write!(text, "{name}=\"{escaped}\"");
    }
    text.push('}');
    text
}

/// The label sets the registry already has for `family`.
fn present(family: &MetricFamily) -> HashSet<String> {
    family
        .get_metric()
        .iter()
        .map(|m| label_text(m.get_label().iter().map(|l| (l.name(), l.value()))))
        .collect()
}

fn write_zero(out: &mut String, family: &ZeroFamily, labels: &str) {
    let name = &family.name;
    match family.shape {
        Shape::Counter | Shape::Gauge => {
            let _ = writeln!(out, "{name}{labels} 0");
        }
        Shape::Histogram(bounds) => {
            // `{a="x"}` becomes `{a="x",le="60"}`.
            let open = &labels[..labels.len() - 1];
            let comma = if open.len() > 1 { "," } else { "" };
            for bound in bounds {
                let _ = writeln!(out, "{name}_bucket{open}{comma}le=\"{bound}\"}} 0");
            }
            let _ = writeln!(out, "{name}_bucket{open}{comma}le=\"+Inf\"}} 0");
            let _ = writeln!(out, "{name}_sum{labels} 0");
            let _ = writeln!(out, "{name}_count{labels} 0");
        }
    }
}

/// The text exposition of `gathered` with the series of `zeros` the registry lacks
/// written as 0, each family in one block, families in name order.
pub fn encode(gathered: &[MetricFamily], mut zeros: Vec<ZeroFamily>) -> String {
    zeros.sort_by(|a, b| a.name.cmp(&b.name));
    let mut zeros = zeros.into_iter().peekable();
    let mut out = String::new();
    let mut buffer = Vec::new();
    for family in gathered {
        // Zero-only families that sort before this one.
        while let Some(zero) = zeros.next_if(|z| z.name.as_str() < family.name()) {
            if !zero.series.is_empty() {
                write_header(&mut out, &zero);
                write_zeros(&mut out, &zero, &HashSet::new());
            }
        }
        buffer.clear();
        TextEncoder::new()
            .encode(std::slice::from_ref(family), &mut buffer)
            .expect("encoding metrics to memory cannot fail");
        out.push_str(std::str::from_utf8(&buffer).expect("the text format is UTF-8"));
        if let Some(zero) = zeros.next_if(|z| z.name == family.name()) {
            write_zeros(&mut out, &zero, &present(family));
        }
    }
    for zero in zeros.filter(|z| !z.series.is_empty()) {
        write_header(&mut out, &zero);
        write_zeros(&mut out, &zero, &HashSet::new());
    }
    out
}

/// The series of `zero` not in `have`, at 0.
fn write_zeros(out: &mut String, zero: &ZeroFamily, have: &HashSet<String>) {
    for series in &zero.series {
        let labels = label_text(series.iter().map(|(n, v)| (*n, v.as_str())));
        if !have.contains(&labels) {
            write_zero(out, zero, &labels);
        }
    }
}

/// `# HELP` and `# TYPE` of a family the registry has no series of.
fn write_header(out: &mut String, zero: &ZeroFamily) {
    let help = zero.help.replace('\\', "\\\\").replace('\n', "\\n");
    let _ = writeln!(out, "# HELP {} {help}", zero.name);
    let _ = writeln!(out, "# TYPE {} {}", zero.name, zero.shape.type_name());
}

#[cfg(test)]
mod tests {
    use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};

    use super::*;

    #[test]
    fn missing_series_are_written_at_zero_inside_their_family() {
        let registry = Registry::new();
        let counter =
            IntCounterVec::new(Opts::new("a_total", "As."), &["pipeline", "env"]).unwrap();
        registry.register(Box::new(counter.clone())).unwrap();
        counter.with_label_values(&["shop", "dev"]).inc();
        let histogram = HistogramVec::new(
            HistogramOpts::new("b_seconds", "Bs.").buckets(vec![1.0, 60.0]),
            &["pipeline"],
        )
        .unwrap();
        registry.register(Box::new(histogram)).unwrap();
        let zeros = vec![
            ZeroFamily {
                name: "b_seconds".into(),
                help: "Bs.".into(),
                shape: Shape::Histogram(&[1.0, 60.0]),
                series: vec![vec![("pipeline", "shop".into())]],
            },
            ZeroFamily {
                name: "a_total".into(),
                help: "As.".into(),
                shape: Shape::Counter,
                series: vec![
                    vec![("pipeline", "shop".into()), ("env", "dev".into())],
                    vec![("pipeline", "shop".into()), ("env", "prod".into())],
                ],
            },
        ];
        let text = encode(&registry.gather(), zeros);
        assert_eq!(
            text,
            "# HELP a_total As.\n# TYPE a_total counter\n\
             a_total{env=\"dev\",pipeline=\"shop\"} 1\n\
             a_total{env=\"prod\",pipeline=\"shop\"} 0\n\
             # HELP b_seconds Bs.\n# TYPE b_seconds histogram\n\
             b_seconds_bucket{pipeline=\"shop\",le=\"1\"} 0\n\
             b_seconds_bucket{pipeline=\"shop\",le=\"60\"} 0\n\
             b_seconds_bucket{pipeline=\"shop\",le=\"+Inf\"} 0\n\
             b_seconds_sum{pipeline=\"shop\"} 0\n\
             b_seconds_count{pipeline=\"shop\"} 0\n"
        );
    }
}
