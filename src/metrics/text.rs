//! Prometheus text exposition format 0.0.4: rendering merged shard snapshots, and a strict
//! parser of the same format (used by the tests to read the output back, and usable by tools).
//!
//! Invariants: every family is written as `# HELP`, `# TYPE`, then its samples, each family
//! once; counters end in `_total`, histograms have cumulative `_bucket{le}` series ending in
//! `le="+Inf"` equal to `_count`, plus `_sum`; label values are escaped (`\\`, `\"`, `\n`).

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;

use kafka_protocol::messages::ApiKey;

use super::histogram::Histogram;
use super::{ApiStats, MetricsError, ShardSnapshot};

/// The Content-Type of the rendered text.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Merges `shards` (counters summed, histograms merged; per-shard gauges keep a `shard` label)
/// and renders them.
pub fn render(shards: &[ShardSnapshot], served_api_keys: &[i16]) -> String {
    let mut out = Writer::default();
    let apis = merged_apis(shards, served_api_keys);
    out.family(
        "sluice_requests_total",
        "counter",
        "Requests handled, by Kafka API (all shards).",
    );
    for (api, stats) in &apis {
        out.sample("sluice_requests_total", &[("api", api)], stats.requests);
    }
    out.family(
        "sluice_request_errors_total",
        "counter",
        "Requests whose handler failed and closed the connection, by Kafka API.",
    );
    for (api, stats) in &apis {
        out.sample("sluice_request_errors_total", &[("api", api)], stats.errors);
    }
    out.family(
        "sluice_request_duration_seconds",
        "histogram",
        "Time from dispatch to encoded response, by Kafka API.",
    );
    for (api, stats) in &apis {
        out.histogram(
            "sluice_request_duration_seconds",
            &[("api", api)],
            &stats.latency,
        );
    }
    let total = |f: fn(&ShardSnapshot) -> u64| shards.iter().map(f).sum::<u64>();
    out.counter(
        "sluice_received_bytes_total",
        "Bytes of request frames read from clients, size prefix included.",
        total(|s| s.received_bytes),
    );
    out.counter(
        "sluice_sent_bytes_total",
        "Bytes of response frames written to clients, size prefix included.",
        total(|s| s.sent_bytes),
    );
    out.counter(
        "sluice_messages_in_total",
        "Records appended by Produce requests.",
        total(|s| s.messages_in),
    );
    out.counter(
        "sluice_log_fsyncs_total",
        "Data fsyncs of the partition logs currently owned, since each log was opened.",
        total(|s| s.log_fsyncs),
    );
    let mut fsync = Histogram::default();
    for shard in shards {
        fsync.merge(&shard.fsync_wait);
    }
    out.family(
        "sluice_fsync_wait_seconds",
        "histogram",
        "Time produce requests with acks=all waited for their fsync.",
    );
    out.histogram("sluice_fsync_wait_seconds", &[], &fsync);
    out.per_shard(
        shards,
        "sluice_connections_active",
        "Open client connections, per shard.",
        |s| s.connections,
    );
    out.per_shard(
        shards,
        "sluice_partitions_owned",
        "Partitions (internal topics included) whose log this shard owns.",
        |s| s.partitions_owned,
    );
    render_cleaner(&mut out, shards);
    out.family(
        "sluice_shards",
        "gauge",
        "Shards whose metrics this scrape merged.",
    );
    out.sample("sluice_shards", &[], shards.len() as u64);
    out.text
}

/// The log cleaners' counters (all shards) and each compacted partition's dirty ratio.
fn render_cleaner(out: &mut Writer, shards: &[ShardSnapshot]) {
    let total = |f: fn(&ShardSnapshot) -> u64| shards.iter().map(f).sum::<u64>();
    out.counter(
        "sluice_log_cleaner_runs_total",
        "Log cleaner passes that cleaned (or tried to clean) a partition.",
        total(|s| s.cleaner.runs),
    );
    out.counter(
        "sluice_log_cleaner_errors_total",
        "Cleans stopped by corrupt data (that partition is no longer cleaned until restart).",
        total(|s| s.cleaner.errors),
    );
    out.counter(
        "sluice_log_cleaner_read_bytes_total",
        "Bytes the log cleaner read from segments.",
        total(|s| s.cleaner.bytes_read),
    );
    out.counter(
        "sluice_log_cleaner_written_bytes_total",
        "Bytes of cleaned segments the log cleaner wrote.",
        total(|s| s.cleaner.bytes_written),
    );
    out.family(
        "sluice_log_cleaner_busy_seconds_total",
        "counter",
        "Time spent cleaning (throttle waits included).",
    );
    let busy: f64 = shards.iter().map(|s| s.cleaner.busy_seconds).sum();
    out.sample(
        "sluice_log_cleaner_busy_seconds_total",
        &[],
        format_float(busy),
    );
    out.family(
        "sluice_log_cleaner_dirty_ratio",
        "gauge",
        "Dirty bytes / (clean + dirty) bytes of each compacted partition, at the last pass.",
    );
    for shard in shards {
        for (topic, partition, ratio) in &shard.cleaner.dirty_ratios {
            let p = partition.to_string();
            out.sample(
                "sluice_log_cleaner_dirty_ratio",
                &[("topic", topic), ("partition", &p)],
                format_float(*ratio),
            );
        }
    }
}

/// Every API the broker serves (zero when unused, so series exist from the start), in
/// API-key order, with its stats summed over shards.
fn merged_apis(shards: &[ShardSnapshot], served_api_keys: &[i16]) -> Vec<(String, ApiStats)> {
    let mut by_key: BTreeMap<i16, ApiStats> = served_api_keys
        .iter()
        .map(|&key| (key, ApiStats::default()))
        .collect();
    for shard in shards {
        for (key, stats) in &shard.apis {
            by_key.entry(*key).or_default().merge(stats);
        }
    }
    by_key
        .into_iter()
        .map(|(key, stats)| (api_label(key), stats))
        .collect()
}

fn api_label(key: i16) -> String {
    match ApiKey::try_from(key) {
        Ok(api) => format!("{api:?}"),
        Err(()) => format!("ApiKey{key}"),
    }
}

/// Appends exposition lines to a string (writing to a `String` cannot fail).
#[derive(Default)]
struct Writer {
    text: String,
}

impl Writer {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.text, "# HELP {name} {help}");
        let _ = writeln!(self.text, "# TYPE {name} {kind}");
    }

    fn counter(&mut self, name: &str, help: &str, value: u64) {
        self.family(name, "counter", help);
        self.sample(name, &[], value);
    }

    fn per_shard(
        &mut self,
        shards: &[ShardSnapshot],
        name: &str,
        help: &str,
        value: fn(&ShardSnapshot) -> u64,
    ) {
        self.family(name, "gauge", help);
        for shard in shards {
            let id = shard.shard.to_string();
            self.sample(name, &[("shard", &id)], value(shard));
        }
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.text.push_str(name);
        self.labels(labels);
        let _ = writeln!(self.text, " {value}");
    }

    fn labels(&mut self, labels: &[(&str, &str)]) {
        if labels.is_empty() {
            return;
        }
        self.text.push('{');
        for (i, (key, value)) in labels.iter().enumerate() {
            if i > 0 {
                self.text.push(',');
            }
            let _ = write!(self.text, "{key}=\"{}\"", escape(value));
        }
        self.text.push('}');
    }

    fn histogram(&mut self, name: &str, labels: &[(&str, &str)], h: &Histogram) {
        let bucket = format!("{name}_bucket");
        for (le, count) in h.cumulative() {
            let le = format_float(le);
            let mut with_le = labels.to_vec();
            with_le.push(("le", &le));
            self.sample(&bucket, &with_le, count);
        }
        self.sample(
            &format!("{name}_sum"),
            labels,
            format_float(h.sum_seconds()),
        );
        self.sample(&format!("{name}_count"), labels, h.count());
    }
}

fn format_float(value: f64) -> String {
    if value == f64::INFINITY {
        "+Inf".to_owned()
    } else {
        format!("{value}")
    }
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// One parsed sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl Sample {
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// A parsed exposition: samples in order and each family's declared type.
#[derive(Debug, Default)]
pub struct Exposition {
    pub samples: Vec<Sample>,
    pub types: HashMap<String, String>,
}

impl Exposition {
    /// Sum of the samples named `name` whose labels include every pair in `matching`.
    pub fn sum(&self, name: &str, matching: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|s| s.name == name && matching.iter().all(|(k, v)| s.label(k) == Some(v)))
            .map(|s| s.value)
            .sum()
    }
}

/// Parses exposition text strictly: every line is a `# HELP`/`# TYPE`/comment line, blank, or a
/// sample `name{labels} value [timestamp]` of a family whose `# TYPE` came before it.
pub fn parse(text: &str) -> Result<Exposition, MetricsError> {
    let mut exposition = Exposition::default();
    for (index, line) in text.lines().enumerate() {
        let fail = |reason: &str| MetricsError::Parse {
            line: index + 1,
            reason: format!("{reason}: {line:?}"),
        };
        if line.trim().is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            parse_comment(comment, &mut exposition.types).map_err(fail)?;
            continue;
        }
        let sample = parse_sample(line).map_err(fail)?;
        if family_type(&exposition.types, &sample.name).is_none() {
            return Err(fail("sample before its # TYPE"));
        }
        exposition.samples.push(sample);
    }
    Ok(exposition)
}

fn family_type<'a>(types: &'a HashMap<String, String>, sample: &str) -> Option<&'a str> {
    if let Some(kind) = types.get(sample) {
        return Some(kind);
    }
    ["_bucket", "_sum", "_count"].iter().find_map(|suffix| {
        let base = sample.strip_suffix(suffix)?;
        types
            .get(base)
            .filter(|k| *k == "histogram" || (*k == "summary" && *suffix != "_bucket"))
            .map(String::as_str)
    })
}

fn parse_comment(comment: &str, types: &mut HashMap<String, String>) -> Result<(), &'static str> {
    let mut words = comment.trim_start().splitn(3, ' ');
    match words.next() {
        Some("HELP") => {
            let name = words.next().ok_or("HELP without a name")?;
            valid_name(name).then_some(()).ok_or("bad metric name")
        }
        Some("TYPE") => {
            let name = words.next().ok_or("TYPE without a name")?;
            let kind = words.next().ok_or("TYPE without a type")?;
            if !valid_name(name) {
                return Err("bad metric name");
            }
            if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind) {
                return Err("unknown metric type");
            }
            if types.insert(name.to_owned(), kind.to_owned()).is_some() {
                return Err("family typed twice");
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn valid_label_name(name: &str) -> bool {
    valid_name(name) && !name.contains(':')
}

fn parse_sample(line: &str) -> Result<Sample, &'static str> {
    let name_end = line.find(['{', ' ']).ok_or("sample without a value")?;
    let name = line.get(..name_end).ok_or("bad sample")?;
    if !valid_name(name) {
        return Err("bad metric name");
    }
    let mut rest = line.get(name_end..).ok_or("bad sample")?;
    let mut labels = Vec::new();
    if let Some(after_brace) = rest.strip_prefix('{') {
        rest = parse_labels(after_brace, &mut labels)?;
    }
    let mut fields = rest.split(' ').filter(|f| !f.is_empty());
    let value = parse_value(fields.next().ok_or("sample without a value")?)?;
    if let Some(timestamp) = fields.next() {
        timestamp.parse::<i64>().map_err(|_| "bad timestamp")?;
    }
    if fields.next().is_some() {
        return Err("trailing fields");
    }
    Ok(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

/// Parses `k="v",...}` and returns what follows the closing brace.
fn parse_labels<'a>(
    mut rest: &'a str,
    labels: &mut Vec<(String, String)>,
) -> Result<&'a str, &'static str> {
    loop {
        if let Some(after) = rest.strip_prefix('}') {
            return Ok(after);
        }
        let eq = rest.find('=').ok_or("label without '='")?;
        let key = rest.get(..eq).ok_or("bad label")?;
        if !valid_label_name(key) {
            return Err("bad label name");
        }
        let quoted = rest
            .get(eq + 1..)
            .and_then(|r| r.strip_prefix('"'))
            .ok_or("label value not quoted")?;
        let (value, after) = unescape_until_quote(quoted)?;
        if labels.iter().any(|(k, _)| k == key) {
            return Err("label repeated");
        }
        labels.push((key.to_owned(), value));
        rest = after.strip_prefix(',').unwrap_or(after);
    }
}

fn unescape_until_quote(text: &str) -> Result<(String, &str), &'static str> {
    let mut value = String::new();
    let mut chars = text.char_indices();
    while let Some((at, c)) = chars.next() {
        match c {
            '"' => return Ok((value, text.get(at + 1..).ok_or("bad label")?)),
            '\\' => match chars.next() {
                Some((_, '\\')) => value.push('\\'),
                Some((_, '"')) => value.push('"'),
                Some((_, 'n')) => value.push('\n'),
                _ => return Err("bad escape in label value"),
            },
            '\n' => return Err("newline in label value"),
            c => value.push(c),
        }
    }
    Err("unterminated label value")
}

fn parse_value(text: &str) -> Result<f64, &'static str> {
    match text {
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ => text.parse::<f64>().map_err(|_| "bad value"),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn served() -> Vec<i16> {
        crate::handlers::REGISTRY
            .iter()
            .map(|entry| entry.key as i16)
            .collect()
    }

    fn snapshot(shard: u16, produce: u64, latency_us: u64) -> ShardSnapshot {
        let mut latency = Histogram::default();
        for _ in 0..produce {
            latency.record(Duration::from_micros(latency_us));
        }
        let mut fsync_wait = Histogram::default();
        fsync_wait.record(Duration::from_millis(2));
        ShardSnapshot {
            shard,
            apis: vec![(
                ApiKey::Produce as i16,
                ApiStats {
                    requests: produce,
                    errors: 1,
                    latency,
                },
            )],
            received_bytes: 100,
            sent_bytes: 50,
            messages_in: 10 * produce,
            fsync_wait,
            connections: 1,
            partitions_owned: u64::from(shard) + 2,
            log_fsyncs: 3,
            cleaner: Default::default(),
        }
    }

    #[test]
    fn rendered_text_parses_back_and_merges_shards() {
        let text = render(&[snapshot(0, 3, 40), snapshot(1, 5, 4_000)], &served());
        let exp = parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        let produce = [("api", "Produce")];
        assert_eq!(exp.sum("sluice_requests_total", &produce), 8.0);
        assert_eq!(exp.sum("sluice_request_errors_total", &produce), 2.0);
        assert_eq!(
            exp.sum("sluice_request_duration_seconds_count", &produce),
            8.0
        );
        let sum = exp.sum("sluice_request_duration_seconds_sum", &produce);
        assert!((sum - (3.0 * 40e-6 + 5.0 * 4e-3)).abs() < 1e-9, "{sum}");
        let le = |le: &str| {
            exp.sum(
                "sluice_request_duration_seconds_bucket",
                &[("api", "Produce"), ("le", le)],
            )
        };
        assert_eq!(le("0.00005"), 3.0);
        assert_eq!(le("0.0025"), 3.0);
        assert_eq!(le("0.005"), 8.0);
        assert_eq!(le("+Inf"), 8.0);
        // Unused registry APIs are present with zeros.
        assert_eq!(exp.sum("sluice_requests_total", &[("api", "Fetch")]), 0.0);
        assert_eq!(exp.sum("sluice_messages_in_total", &[]), 80.0);
        assert_eq!(exp.sum("sluice_received_bytes_total", &[]), 200.0);
        assert_eq!(exp.sum("sluice_sent_bytes_total", &[]), 100.0);
        assert_eq!(exp.sum("sluice_fsync_wait_seconds_count", &[]), 2.0);
        assert_eq!(exp.sum("sluice_log_fsyncs_total", &[]), 6.0);
        assert_eq!(exp.sum("sluice_partitions_owned", &[("shard", "1")]), 3.0);
        assert_eq!(exp.sum("sluice_partitions_owned", &[]), 5.0);
        assert_eq!(exp.sum("sluice_connections_active", &[]), 2.0);
        assert_eq!(exp.sum("sluice_shards", &[]), 2.0);
    }

    #[test]
    fn every_histogram_is_cumulative_and_ends_at_its_count() {
        let text = render(&[snapshot(0, 7, 900), snapshot(1, 2, 20)], &served());
        let exp = parse(&text).unwrap_or_else(|e| panic!("{e}"));
        let mut series: BTreeMap<(String, Option<String>), Vec<f64>> = BTreeMap::new();
        for s in exp.samples.iter().filter(|s| s.name.ends_with("_bucket")) {
            let key = (s.name.clone(), s.label("api").map(str::to_owned));
            series.entry(key).or_default().push(s.value);
            assert!(s.label("le").is_some(), "{s:?}");
        }
        assert!(!series.is_empty());
        for ((name, api), values) in &series {
            assert!(values.windows(2).all(|w| w[0] <= w[1]), "{name} {api:?}");
            let base = name.trim_end_matches("_bucket");
            let matching: Vec<(&str, &str)> = api.iter().map(|a| ("api", a.as_str())).collect();
            let count = exp.sum(&format!("{base}_count"), &matching);
            assert_eq!(values.last().copied(), Some(count), "{name} {api:?}");
        }
    }

    #[test]
    fn every_counter_ends_in_total_and_every_name_is_prefixed() {
        let exp = parse(&render(&[snapshot(0, 1, 1)], &served())).unwrap_or_else(|e| panic!("{e}"));
        for (name, kind) in &exp.types {
            assert!(name.starts_with("sluice_"), "{name}");
            if kind == "counter" {
                assert!(name.ends_with("_total"), "{name}");
            }
        }
        assert!(exp.types.len() >= 10);
    }

    #[test]
    fn empty_scrape_still_renders_valid_text() {
        let exp = parse(&render(&[], &served())).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(exp.sum("sluice_shards", &[]), 0.0);
        assert_eq!(exp.sum("sluice_fsync_wait_seconds_count", &[]), 0.0);
    }

    #[test]
    fn label_values_are_escaped_and_unescaped() {
        let mut w = Writer::default();
        w.family("x_total", "counter", "h");
        w.sample("x_total", &[("a", "q\"b\\s\nn"), ("b", "")], 1);
        let exp = parse(&w.text).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(exp.samples[0].label("a"), Some("q\"b\\s\nn"));
        assert_eq!(exp.samples[0].label("b"), Some(""));
    }

    #[test]
    fn parser_rejects_invalid_lines() {
        let typed = "# TYPE m gauge\n";
        for bad in [
            "m 1",                            // no TYPE before it
            "# TYPE m gauge\n# TYPE m gauge", // typed twice
            "# TYPE m flavour",               // unknown type
            "# TYPE 1m gauge",                // bad name
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        for bad in [
            "m",
            "m{a=\"1\" 1",
            "m{a=1} 1",
            "m{a=\"1\",a=\"2\"} 1",
            "m{a=\"\\x\"} 1",
            "m one",
            "m 1 2 3",
            "m{1a=\"x\"} 1",
        ] {
            let text = format!("{typed}{bad}");
            assert!(parse(&text).is_err(), "{bad:?}");
        }
        let good = format!("{typed}m{{a=\"1\",}} 1.5 1700000000000\nm +Inf\n\n# free comment");
        assert_eq!(parse(&good).map(|e| e.samples.len()).ok(), Some(2));
    }
}
