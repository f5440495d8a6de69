//! Changing a topic's config overrides the way Kafka's AlterConfigs (replace the whole set) and
//! IncrementalAlterConfigs (SET / DELETE / APPEND / SUBTRACT per key) do, plus what
//! DescribeConfigs reports about each key (type, documentation, the broker setting it
//! defaults to).
//!
//! Pure functions, no I/O. Invariant: a map returned by `replace_all` / `apply_incremental` only
//! holds known keys with valid values (checked with `config::validate_one` and `config::resolve`
//! by the caller), so it can be persisted as it is.

use std::collections::BTreeSet;

use super::config::{self, TopicConfigError, TopicOverrides};

/// Why a change was refused; the variant decides the Kafka error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AlterError {
    /// Malformed request (null value, duplicate key, unknown operation): INVALID_REQUEST.
    #[error("{0}")]
    InvalidRequest(String),
    /// Unknown key or bad value: INVALID_CONFIG.
    #[error("{0}")]
    InvalidConfig(String),
}

impl From<TopicConfigError> for AlterError {
    fn from(error: TopicConfigError) -> Self {
        Self::InvalidConfig(error.to_string())
    }
}

/// IncrementalAlterConfigs' operation codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlterOp {
    Set,
    Delete,
    Append,
    Subtract,
}

impl AlterOp {
    pub fn from_code(code: i8) -> Option<Self> {
        match code {
            0 => Some(Self::Set),
            1 => Some(Self::Delete),
            2 => Some(Self::Append),
            3 => Some(Self::Subtract),
            _ => None,
        }
    }
}

/// One IncrementalAlterConfigs entry; `op` is the raw code so an unknown one is reported per
/// resource, as Kafka does, instead of failing the whole request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncrementalEntry {
    pub key: String,
    pub op: i8,
    pub value: Option<String>,
}

pub use super::catalog::ConfigType;

/// What DescribeConfigs says about one topic key beyond its value.
#[derive(Debug, Clone, Copy)]
pub struct KeyInfo {
    pub config_type: ConfigType,
    /// The broker setting that supplies the default (Kafka's synonym), if any.
    pub broker_key: Option<&'static str>,
    pub documentation: &'static str,
}

pub fn key_info(key: &str) -> Option<KeyInfo> {
    super::catalog::find(key).map(|def| KeyInfo {
        config_type: def.config_type,
        broker_key: def.broker_key,
        documentation: def.documentation,
    })
}

fn is_list(key: &str) -> bool {
    key_info(key).is_some_and(|i| i.config_type == ConfigType::List)
}

/// The canonical stored form of a value (list items trimmed and comma-joined).
pub fn normalize(key: &str, value: &str) -> String {
    if is_list(key) {
        split_list(value).join(",")
    } else {
        value.trim().to_owned()
    }
}

fn split_list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

fn check_value(key: &str, value: &str) -> Result<String, AlterError> {
    let normalized = normalize(key, value);
    config::validate_one(key, &normalized)?;
    Ok(normalized)
}

/// AlterConfigs: the given pairs become the topic's whole override set (keys not named return
/// to their defaults). Null values and repeated keys are malformed requests.
pub fn replace_all(pairs: &[(String, Option<String>)]) -> Result<TopicOverrides, AlterError> {
    let mut out = TopicOverrides::new();
    for (key, value) in pairs {
        let Some(value) = value else {
            return Err(AlterError::InvalidRequest(format!(
                "Null value not supported for topic configs: {key}"
            )));
        };
        if out.contains_key(key) {
            return Err(AlterError::InvalidRequest(format!(
                "Duplicate config key {key}"
            )));
        }
        let value = check_value(key, value)?;
        out.insert(key.clone(), value);
    }
    Ok(out)
}

/// IncrementalAlterConfigs on `current` overrides. `effective(key)` is the value in force when
/// the key has no override (APPEND/SUBTRACT start from it, as in Kafka).
pub fn apply_incremental(
    current: &TopicOverrides,
    entries: &[IncrementalEntry],
    effective: impl Fn(&str) -> Option<String>,
) -> Result<TopicOverrides, AlterError> {
    let mut seen = BTreeSet::new();
    for entry in entries {
        if !seen.insert(entry.key.as_str()) {
            return Err(AlterError::InvalidRequest(format!(
                "Error due to duplicate config keys: {}",
                entry.key
            )));
        }
    }
    let mut out = current.clone();
    for entry in entries {
        let key = entry.key.as_str();
        let op = AlterOp::from_code(entry.op).ok_or_else(|| {
            AlterError::InvalidRequest(format!("Unknown config operation {}", entry.op))
        })?;
        if op != AlterOp::Delete && entry.value.is_none() {
            return Err(AlterError::InvalidRequest(format!(
                "Null value not supported for : {key}"
            )));
        }
        let value = entry.value.as_deref().unwrap_or_default();
        match op {
            AlterOp::Set => {
                out.insert(key.to_owned(), check_value(key, value)?);
            }
            // Deleting a key that has no override (or that Sluice does not know) changes
            // nothing, as in Kafka.
            AlterOp::Delete => {
                out.remove(key);
            }
            AlterOp::Append | AlterOp::Subtract => {
                if key_info(key).is_none() {
                    return Err(TopicConfigError::UnknownKey(key.to_owned()).into());
                }
                if !is_list(key) {
                    return Err(AlterError::InvalidConfig(format!(
                        "Config value append/subtract is not allowed for config key {key}, \
                         which is not a list"
                    )));
                }
                let base = out
                    .get(key)
                    .cloned()
                    .or_else(|| effective(key))
                    .unwrap_or_default();
                let mut items = split_list(&base);
                for item in split_list(value) {
                    if op == AlterOp::Append {
                        if !items.contains(&item) {
                            items.push(item);
                        }
                    } else {
                        items.retain(|i| *i != item);
                    }
                }
                out.insert(key.to_owned(), check_value(key, &items.join(","))?);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(key: &str, op: AlterOp, value: Option<&str>) -> IncrementalEntry {
        IncrementalEntry {
            key: key.to_owned(),
            op: op as i8,
            value: value.map(str::to_owned),
        }
    }

    fn map(pairs: &[(&str, &str)]) -> TopicOverrides {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn defaults(key: &str) -> Option<String> {
        (key == "cleanup.policy").then(|| "delete".to_owned())
    }

    #[test]
    fn every_known_key_has_info() {
        for def in super::super::catalog::TOPIC_CONFIGS {
            assert!(key_info(def.name).is_some(), "{}", def.name);
        }
        assert!(key_info("no.such").is_none());
    }

    #[test]
    fn replace_all_replaces_and_validates() {
        let pairs = vec![
            ("retention.ms".to_owned(), Some("100".to_owned())),
            (
                "cleanup.policy".to_owned(),
                Some(" compact , delete ".to_owned()),
            ),
        ];
        let out = replace_all(&pairs).unwrap();
        assert_eq!(
            out,
            map(&[
                ("retention.ms", "100"),
                ("cleanup.policy", "compact,delete")
            ])
        );
        assert!(matches!(
            replace_all(&[("retention.ms".into(), None)]),
            Err(AlterError::InvalidRequest(_))
        ));
        assert!(matches!(
            replace_all(&[
                ("retention.ms".into(), Some("1".into())),
                ("retention.ms".into(), Some("2".into()))
            ]),
            Err(AlterError::InvalidRequest(_))
        ));
        assert!(matches!(
            replace_all(&[("no.such".into(), Some("1".into()))]),
            Err(AlterError::InvalidConfig(_))
        ));
        assert!(matches!(
            replace_all(&[("retention.ms".into(), Some("soon".into()))]),
            Err(AlterError::InvalidConfig(_))
        ));
        assert_eq!(replace_all(&[]).unwrap(), TopicOverrides::new());
    }

    #[test]
    fn set_and_delete() {
        let current = map(&[("retention.ms", "5"), ("segment.bytes", "1024")]);
        let out = apply_incremental(
            &current,
            &[
                entry("retention.ms", AlterOp::Set, Some("7")),
                entry("segment.bytes", AlterOp::Delete, None),
                entry("segment.ms", AlterOp::Delete, None),
                entry("no.such", AlterOp::Delete, None),
            ],
            defaults,
        )
        .unwrap();
        assert_eq!(out, map(&[("retention.ms", "7")]));
        let err = apply_incremental(
            &current,
            &[entry("retention.ms", AlterOp::Set, Some("-5"))],
            defaults,
        );
        assert!(matches!(err, Err(AlterError::InvalidConfig(_))));
        let err = apply_incremental(&current, &[entry("x.y", AlterOp::Set, Some("1"))], defaults);
        assert!(matches!(err, Err(AlterError::InvalidConfig(_))));
        let err = apply_incremental(
            &current,
            &[entry("retention.ms", AlterOp::Set, None)],
            defaults,
        );
        assert!(matches!(err, Err(AlterError::InvalidRequest(_))));
    }

    #[test]
    fn append_and_subtract_only_for_lists() {
        let current = TopicOverrides::new();
        let out = apply_incremental(
            &current,
            &[entry("cleanup.policy", AlterOp::Append, Some("compact"))],
            defaults,
        )
        .unwrap();
        assert_eq!(out, map(&[("cleanup.policy", "delete,compact")]));
        let out = apply_incremental(
            &out,
            &[entry("cleanup.policy", AlterOp::Subtract, Some("delete"))],
            defaults,
        )
        .unwrap();
        assert_eq!(out, map(&[("cleanup.policy", "compact")]));
        // Appending what is there already changes nothing.
        let same = apply_incremental(
            &out,
            &[entry("cleanup.policy", AlterOp::Append, Some("compact"))],
            defaults,
        )
        .unwrap();
        assert_eq!(same, out);
        // Subtracting everything leaves an empty policy, which is not valid.
        let err = apply_incremental(
            &out,
            &[entry("cleanup.policy", AlterOp::Subtract, Some("compact"))],
            defaults,
        );
        assert!(matches!(err, Err(AlterError::InvalidConfig(_))));
        for op in [AlterOp::Append, AlterOp::Subtract] {
            let err =
                apply_incremental(&current, &[entry("retention.ms", op, Some("1"))], defaults);
            assert!(matches!(err, Err(AlterError::InvalidConfig(_))), "{op:?}");
        }
    }

    #[test]
    fn malformed_requests() {
        let current = TopicOverrides::new();
        let dup = apply_incremental(
            &current,
            &[
                entry("retention.ms", AlterOp::Set, Some("1")),
                entry("retention.ms", AlterOp::Delete, None),
            ],
            defaults,
        );
        assert!(matches!(dup, Err(AlterError::InvalidRequest(_))));
        let unknown_op = apply_incremental(
            &current,
            &[IncrementalEntry {
                key: "retention.ms".into(),
                op: 9,
                value: Some("1".into()),
            }],
            defaults,
        );
        assert!(matches!(unknown_op, Err(AlterError::InvalidRequest(_))));
    }
}
