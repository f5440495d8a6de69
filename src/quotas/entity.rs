//! Client quota entities and their configs, as Kafka's `ClientQuotaControlManager` validates
//! them and `ClientQuotasImage.describe` matches them. Pure: no I/O, no locks.
//!
//! An entity is a user, a client id, or both, or an IP address alone (KIP-612); each part is a
//! name or the default (`<default>`, a null name on the wire). User and client-id entities take
//! the byte rates, `request_percentage` and `controller_mutation_rate` (KIP-599); IP entities
//! take only `connection_creation_rate`.

use std::collections::BTreeMap;

/// Kafka's entity type names.
pub const USER: &str = "user";
pub const CLIENT_ID: &str = "client-id";
pub const IP: &str = "ip";

/// The quota keys Sluice enforces, with Kafka's types (`QuotaConfig`).
pub const PRODUCER_BYTE_RATE: &str = "producer_byte_rate";
pub const CONSUMER_BYTE_RATE: &str = "consumer_byte_rate";
pub const REQUEST_PERCENTAGE: &str = "request_percentage";
pub const CONTROLLER_MUTATION_RATE: &str = "controller_mutation_rate";
pub const CONNECTION_CREATION_RATE: &str = "connection_creation_rate";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ValueType {
    Long,
    Int,
    Double,
}

/// Keys of user and client-id entities (`QuotaConfig.userAndClientQuotaConfigs`).
const CLIENT_KEYS: &[(&str, ValueType)] = &[
    (PRODUCER_BYTE_RATE, ValueType::Long),
    (CONSUMER_BYTE_RATE, ValueType::Long),
    (REQUEST_PERCENTAGE, ValueType::Double),
    (CONTROLLER_MUTATION_RATE, ValueType::Double),
];
/// Keys of IP entities (`QuotaConfig.ipConfigs`).
const IP_KEYS: &[(&str, ValueType)] = &[(CONNECTION_CREATION_RATE, ValueType::Int)];

/// One part of an entity: a name, or the default for that type.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EntityName {
    Default,
    Named(String),
}

impl EntityName {
    pub fn from_wire(name: Option<&str>) -> Self {
        match name {
            None => Self::Default,
            Some(n) => Self::Named(n.to_owned()),
        }
    }

    pub fn to_wire(&self) -> Option<&str> {
        match self {
            Self::Default => None,
            Self::Named(n) => Some(n),
        }
    }
}

/// `(user, client-id)` with at least one present, or an IP alone.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QuotaEntity {
    pub user: Option<EntityName>,
    pub client_id: Option<EntityName>,
    pub ip: Option<EntityName>,
}

impl QuotaEntity {
    /// A user and/or client-id entity.
    pub fn client(user: Option<EntityName>, client_id: Option<EntityName>) -> Self {
        Self {
            user,
            client_id,
            ip: None,
        }
    }
}

/// Every entity's configs (key -> value).
pub type QuotaMap = BTreeMap<QuotaEntity, BTreeMap<String, f64>>;

/// A refusal with Kafka's error code and message.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct QuotaError {
    pub code: i16,
    pub message: String,
}

const INVALID_REQUEST: i16 = 42;
const UNSUPPORTED_VERSION: i16 = 35;

fn invalid(message: impl Into<String>) -> QuotaError {
    QuotaError {
        code: INVALID_REQUEST,
        message: message.into(),
    }
}

/// Validates the `(entity type, name)` pairs of an AlterClientQuotas entry
/// (`ClientQuotaControlManager.validateEntity`).
pub fn entity_from_wire<'a>(
    parts: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
) -> Result<QuotaEntity, QuotaError> {
    let mut entity = QuotaEntity::client(None, None);
    let mut any = false;
    for (entity_type, name) in parts {
        any = true;
        let slot = match entity_type {
            USER => &mut entity.user,
            CLIENT_ID => &mut entity.client_id,
            IP => &mut entity.ip,
            other => {
                return Err(QuotaError {
                    code: UNSUPPORTED_VERSION,
                    message: format!("Unhandled client quota entity type: {other}"),
                })
            }
        };
        if slot.is_some() {
            return Err(invalid(format!(
                "Invalid empty client quota entity, duplicate entity entry {entity_type}"
            )));
        }
        if name == Some("") {
            return Err(invalid(format!("Empty {entity_type} not supported")));
        }
        *slot = Some(EntityName::from_wire(name));
    }
    if !any {
        return Err(invalid("Invalid empty client quota entity"));
    }
    // ClientQuotaControlManager.configKeysForEntityType: an IP stands alone, and names an
    // address (Sluice resolves no host names: a literal address only).
    if let Some(ip) = &entity.ip {
        if entity.user.is_some() || entity.client_id.is_some() {
            return Err(invalid("Invalid empty client quota entity"));
        }
        if let EntityName::Named(name) = ip {
            if name.parse::<std::net::IpAddr>().is_err() {
                return Err(invalid(format!(
                    "{name} is not a valid IP or resolvable host."
                )));
            }
        }
    }
    Ok(entity)
}

/// Validates one quota op of `entity` (`ClientQuotaControlManager.validateQuotaKeyValue`,
/// with the keys its entity type allows); `remove` ops only need a known key.
pub fn validate_op(
    entity: &QuotaEntity,
    key: &str,
    value: f64,
    remove: bool,
) -> Result<(), QuotaError> {
    let keys = if entity.ip.is_some() {
        IP_KEYS
    } else {
        CLIENT_KEYS
    };
    let Some(&(_, value_type)) = keys.iter().find(|(k, _)| *k == key) else {
        return Err(invalid(format!("Invalid configuration key {key}")));
    };
    if remove {
        return Ok(());
    }
    if value.is_nan() || value <= 0.0 {
        return Err(invalid(format!("Quota {key} must be greater than 0")));
    }
    let max = match value_type {
        ValueType::Double => return Ok(()),
        ValueType::Long => i64::MAX as f64,
        ValueType::Int => f64::from(i32::MAX),
    };
    if value.fract() != 0.0 || value > max {
        return Err(invalid(format!(
            "Proposed value for {key} is not a valid integer"
        )));
    }
    Ok(())
}

/// The parsed filter of DescribeClientQuotas: exact names (None = the default) and types that
/// must be present (`MATCH_TYPE_SPECIFIED`).
#[derive(Debug, Default)]
pub struct DescribeFilter {
    exact: BTreeMap<String, Option<String>>,
    specified: Vec<String>,
    strict: bool,
}

/// Match types on the wire.
const MATCH_EXACT: i8 = 0;
const MATCH_DEFAULT: i8 = 1;
const MATCH_SPECIFIED: i8 = 2;

impl DescribeFilter {
    /// `ClientQuotasImage.describe`'s validation of the components.
    pub fn from_wire<'a>(
        components: impl IntoIterator<Item = (&'a str, i8, Option<&'a str>)>,
        strict: bool,
    ) -> Result<Self, QuotaError> {
        let mut filter = Self {
            strict,
            ..Self::default()
        };
        for (entity_type, match_type, name) in components {
            if entity_type.is_empty() {
                return Err(invalid("Invalid empty entity type."));
            }
            if filter.exact.contains_key(entity_type)
                || filter.specified.iter().any(|t| t == entity_type)
            {
                return Err(invalid(format!(
                    "Entity type {entity_type} cannot appear more than once in the filter."
                )));
            }
            if ![USER, CLIENT_ID, IP].contains(&entity_type) {
                return Err(QuotaError {
                    code: UNSUPPORTED_VERSION,
                    message: format!("Unsupported entity type {entity_type}"),
                });
            }
            match (match_type, name) {
                (MATCH_EXACT, None) => {
                    return Err(invalid(
                        "Request specified MATCH_TYPE_EXACT, but set match string to null.",
                    ))
                }
                (MATCH_EXACT, Some(n)) => {
                    filter
                        .exact
                        .insert(entity_type.to_owned(), Some(n.to_owned()));
                }
                (MATCH_DEFAULT | MATCH_SPECIFIED, Some(_)) => {
                    return Err(invalid(format!(
                    "Request specified match type {match_type}, but also specified a match string."
                )))
                }
                (MATCH_DEFAULT, None) => {
                    filter.exact.insert(entity_type.to_owned(), None);
                }
                (MATCH_SPECIFIED, None) => filter.specified.push(entity_type.to_owned()),
                (other, _) => {
                    return Err(QuotaError {
                        code: UNSUPPORTED_VERSION,
                        message: format!("Unsupported match type {other}"),
                    })
                }
            }
        }
        let has = |t: &str| filter.exact.contains_key(t) || filter.specified.iter().any(|s| s == t);
        if has(IP) && (has(USER) || has(CLIENT_ID)) {
            return Err(invalid(
                "Invalid entity filter component combination. IP filter component should not be used with user or clientId filter component.",
            ));
        }
        Ok(filter)
    }

    /// `ClientQuotasImage.matches`.
    pub fn matches(&self, entity: &QuotaEntity) -> bool {
        let parts = parts(entity);
        if self.strict && parts.len() != self.exact.len() + self.specified.len() {
            return false;
        }
        let exact_ok = self.exact.iter().all(|(t, want)| {
            parts
                .iter()
                .any(|(pt, name)| pt == t && name.to_wire() == want.as_deref())
        });
        exact_ok
            && self
                .specified
                .iter()
                .all(|t| parts.iter().any(|(pt, _)| pt == t))
    }
}

/// The entity's `(type, name)` pairs, user first.
pub fn parts(entity: &QuotaEntity) -> Vec<(&'static str, &EntityName)> {
    let mut out = Vec::with_capacity(2);
    if let Some(u) = &entity.user {
        out.push((USER, u));
    }
    if let Some(c) = &entity.client_id {
        out.push((CLIENT_ID, c));
    }
    if let Some(ip) = &entity.ip {
        out.push((IP, ip));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(n: &str) -> Option<EntityName> {
        Some(EntityName::Named(n.into()))
    }

    #[test]
    fn entities_are_validated_as_kafka() {
        assert!(entity_from_wire([]).is_err());
        assert_eq!(
            entity_from_wire([(USER, Some("a")), (USER, Some("b"))])
                .unwrap_err()
                .code,
            INVALID_REQUEST
        );
        assert_eq!(
            entity_from_wire([("topic", Some("a"))]).unwrap_err().code,
            UNSUPPORTED_VERSION
        );
        assert!(entity_from_wire([(USER, Some(""))]).is_err());
        // KIP-612: an IP entity stands alone and names an address.
        let ip = entity_from_wire([(IP, Some("10.0.0.1"))]).unwrap();
        assert_eq!(ip.ip, named("10.0.0.1"));
        assert!(entity_from_wire([(IP, None)]).is_ok());
        assert!(entity_from_wire([(IP, Some("not-an-ip"))]).is_err());
        assert!(entity_from_wire([(IP, None), (USER, Some("a"))]).is_err());
        let e = entity_from_wire([(CLIENT_ID, None), (USER, Some("alice"))]).unwrap();
        assert_eq!(e.user, named("alice"));
        assert_eq!(e.client_id, Some(EntityName::Default));
    }

    #[test]
    fn ops_are_validated_as_kafka() {
        let user = QuotaEntity::client(named("u"), None);
        let ip = QuotaEntity {
            ip: Some(EntityName::Default),
            ..QuotaEntity::client(None, None)
        };
        assert!(validate_op(&user, PRODUCER_BYTE_RATE, 1024.0, false).is_ok());
        assert!(validate_op(&user, PRODUCER_BYTE_RATE, 10.5, false).is_err());
        assert!(validate_op(&user, PRODUCER_BYTE_RATE, 0.0, false).is_err());
        assert!(validate_op(&user, REQUEST_PERCENTAGE, 12.5, false).is_ok());
        assert!(validate_op(&user, CONTROLLER_MUTATION_RATE, 1.5, false).is_ok());
        assert!(validate_op(&user, CONNECTION_CREATION_RATE, 1.0, false).is_err());
        assert!(validate_op(&user, CONSUMER_BYTE_RATE, -1.0, true).is_ok());
        assert!(validate_op(&ip, CONNECTION_CREATION_RATE, 10.0, false).is_ok());
        assert!(validate_op(&ip, CONNECTION_CREATION_RATE, 1.5, false).is_err());
        assert!(validate_op(&ip, CONNECTION_CREATION_RATE, 3e9, false).is_err());
        assert!(validate_op(&ip, PRODUCER_BYTE_RATE, 10.0, false).is_err());
    }

    #[test]
    fn describe_filters_match_as_kafka() {
        let alice = QuotaEntity::client(named("alice"), None);
        let alice_app = QuotaEntity::client(named("alice"), named("app"));
        let default_user = QuotaEntity::client(Some(EntityName::Default), None);
        let f = DescribeFilter::from_wire([(USER, MATCH_EXACT, Some("alice"))], false).unwrap();
        assert!(f.matches(&alice) && f.matches(&alice_app) && !f.matches(&default_user));
        let f = DescribeFilter::from_wire([(USER, MATCH_EXACT, Some("alice"))], true).unwrap();
        assert!(f.matches(&alice) && !f.matches(&alice_app));
        let f = DescribeFilter::from_wire([(USER, MATCH_DEFAULT, None)], false).unwrap();
        assert!(f.matches(&default_user) && !f.matches(&alice));
        let f = DescribeFilter::from_wire([(CLIENT_ID, MATCH_SPECIFIED, None)], false).unwrap();
        assert!(f.matches(&alice_app) && !f.matches(&alice));
        assert!(DescribeFilter::from_wire([(USER, MATCH_EXACT, None)], false).is_err());
        assert!(DescribeFilter::from_wire(
            [(USER, MATCH_SPECIFIED, None), (USER, MATCH_DEFAULT, None)],
            false
        )
        .is_err());
        assert!(DescribeFilter::from_wire([(IP, 2, None), (USER, 2, None)], false).is_err());
        let all = DescribeFilter::from_wire([], false).unwrap();
        assert!(all.matches(&alice) && all.matches(&default_user));
    }
}
