//! The AlterConfigs / IncrementalAlterConfigs part that changes listeners at run time
//! (`listener.name.<l>.ssl.*` on a BROKER resource: certificate reload, see
//! `security::listener_configs`). A resource naming only such keys is handled here; one mixing
//! them with other broker configs is refused (INVALID_REQUEST) rather than half applied.

use crate::router::admin::{AdminError, ConfigChange};
use crate::security::listener_configs::{KeyChange, ListenerConfigError, ListenerConfigs};
use crate::shard::Shard;

/// IncrementalAlterConfigs operation codes.
const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;

/// Whether `change` names any per-listener key.
pub fn touches_listeners(change: &ConfigChange) -> bool {
    match change {
        ConfigChange::Replace(pairs) => pairs
            .iter()
            .any(|(k, _)| ListenerConfigs::is_listener_key(k)),
        ConfigChange::IncrementalAlter(entries) => entries
            .iter()
            .any(|e| ListenerConfigs::is_listener_key(&e.key)),
    }
}

/// Applies a BROKER resource's per-listener keys; `per_node`: the resource named this node.
pub async fn alter(
    shard: &Shard,
    per_node: bool,
    change: &ConfigChange,
    validate_only: bool,
) -> Result<(), AdminError> {
    let changes = key_changes(change)?;
    shard
        .listener_configs
        .alter(per_node, changes, validate_only)
        .await
        .map_err(|e| match e {
            ListenerConfigError::InvalidRequest(m) => AdminError::InvalidRequest(m),
            ListenerConfigError::InvalidConfig(m) => AdminError::InvalidConfig(m),
            other => AdminError::Storage(other.to_string()),
        })
}

fn key_changes(change: &ConfigChange) -> Result<Vec<(String, KeyChange)>, AdminError> {
    let mixed = || {
        AdminError::InvalidRequest(
            "listener.name.* configs must be altered in a request of their own".into(),
        )
    };
    match change {
        ConfigChange::Replace(pairs) => pairs
            .iter()
            .map(|(k, v)| {
                if !ListenerConfigs::is_listener_key(k) {
                    return Err(mixed());
                }
                Ok((
                    k.clone(),
                    v.clone().map_or(KeyChange::Delete, KeyChange::Set),
                ))
            })
            .collect(),
        ConfigChange::IncrementalAlter(entries) => entries
            .iter()
            .map(|e| {
                if !ListenerConfigs::is_listener_key(&e.key) {
                    return Err(mixed());
                }
                match (e.op, &e.value) {
                    (OP_SET, Some(v)) => Ok((e.key.clone(), KeyChange::Set(v.clone()))),
                    (OP_DELETE, _) => Ok((e.key.clone(), KeyChange::Delete)),
                    (OP_SET, None) => Err(AdminError::InvalidRequest(format!(
                        "Null value not supported for {}",
                        e.key
                    ))),
                    _ => Err(AdminError::InvalidConfig(format!(
                        "Config value append/subtract is not allowed for config {}",
                        e.key
                    ))),
                }
            })
            .collect(),
    }
}
