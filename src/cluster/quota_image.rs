//! The client quotas of the metadata image (Kafka's `ClientQuotasImage`): every quota entity
//! (user / client id / their defaults, or an IP) with its keys and values, built only from
//! `ClientQuotaRecord`s, so every broker of a cluster enforces the same quotas and a restart
//! keeps them (the records are in the metadata log, or in `__cluster/security.json` on a single
//! node).
//!
//! Invariants: an entity and its values pass the same checks as AlterClientQuotas
//! (`quotas::entity`) before they enter the image, so a record that would not be accepted from
//! a client is refused with the image unchanged; an entity without keys is not kept (as
//! Kafka's image drops an empty entity); setting a key to the value it has and removing an
//! absent key change nothing, so replays are idempotent.

use std::collections::BTreeMap;

use super::records::{ClientQuotaEntityData, ClientQuotaRecord, MetadataRecord};
use crate::quotas::entity::{self, QuotaEntity, QuotaMap};

/// Why a `ClientQuotaRecord` does not apply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("client quota record: {0}")]
pub struct QuotaRecordError(pub String);

/// See the module documentation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClientQuotasImage {
    quotas: QuotaMap,
}

// Every value in the image passed `validate_op` (finite or +inf, never NaN): equality is total.
impl Eq for ClientQuotasImage {}

impl ClientQuotasImage {
    /// Applies one `ClientQuotaRecord`.
    pub fn apply(&mut self, r: &ClientQuotaRecord) -> Result<(), QuotaRecordError> {
        let parts = r
            .entity
            .iter()
            .map(|p| (p.entity_type.as_str(), p.entity_name.as_deref()));
        let quota_entity =
            entity::entity_from_wire(parts).map_err(|e| QuotaRecordError(e.message))?;
        entity::validate_op(&quota_entity, &r.key, r.value, r.remove)
            .map_err(|e| QuotaRecordError(e.message))?;
        if r.remove {
            if let Some(values) = self.quotas.get_mut(&quota_entity) {
                values.remove(&r.key);
                if values.is_empty() {
                    self.quotas.remove(&quota_entity);
                }
            }
        } else {
            self.quotas
                .entry(quota_entity)
                .or_default()
                .insert(r.key.clone(), r.value);
        }
        Ok(())
    }

    /// Every entity and its keys.
    pub fn quotas(&self) -> &QuotaMap {
        &self.quotas
    }

    /// The records that rebuild this part from nothing.
    pub fn snapshot_records(&self) -> Vec<MetadataRecord> {
        Self::default().diff(&self.quotas)
    }

    /// The records that turn this image's quotas into `wanted`: a removal per key that goes,
    /// a record per key that comes or changes value.
    pub fn diff(&self, wanted: &QuotaMap) -> Vec<MetadataRecord> {
        let empty = BTreeMap::new();
        let mut records = Vec::new();
        for (e, values) in &self.quotas {
            let now = wanted.get(e).unwrap_or(&empty);
            for key in values.keys().filter(|k| !now.contains_key(*k)) {
                records.push(quota_record(e, key, 0.0, true));
            }
        }
        for (e, values) in wanted {
            let before = self.quotas.get(e).unwrap_or(&empty);
            for (key, value) in values {
                if before.get(key) != Some(value) {
                    records.push(quota_record(e, key, *value, false));
                }
            }
        }
        records
    }
}

/// The `ClientQuotaRecord` setting (or removing) `key` of `quota_entity`.
pub fn quota_record(
    quota_entity: &QuotaEntity,
    key: &str,
    value: f64,
    remove: bool,
) -> MetadataRecord {
    MetadataRecord::ClientQuota(ClientQuotaRecord {
        entity: entity::parts(quota_entity)
            .into_iter()
            .map(|(entity_type, name)| ClientQuotaEntityData {
                entity_type: entity_type.to_owned(),
                entity_name: name.to_wire().map(str::to_owned),
            })
            .collect(),
        key: key.to_owned(),
        value,
        remove,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quotas::entity::EntityName;

    fn map(entries: &[(Option<&str>, Option<&str>, &str, f64)]) -> QuotaMap {
        let mut map = QuotaMap::new();
        for (user, client, key, value) in entries {
            let name = |n: &Option<&str>| {
                n.map(|n| match n {
                    "<default>" => EntityName::Default,
                    n => EntityName::Named(n.to_owned()),
                })
            };
            map.entry(QuotaEntity::client(name(user), name(client)))
                .or_default()
                .insert((*key).to_owned(), *value);
        }
        map
    }

    fn apply_all(image: &mut ClientQuotasImage, records: &[MetadataRecord]) {
        for r in records {
            let MetadataRecord::ClientQuota(r) = r else {
                panic!("not a quota record: {r:?}");
            };
            image.apply(r).unwrap();
            image.apply(r).unwrap(); // a replay changes nothing
        }
    }

    #[test]
    fn records_reach_the_wanted_quotas_and_rebuild_them() {
        let mut image = ClientQuotasImage::default();
        let wanted = map(&[
            (Some("alice"), None, "producer_byte_rate", 1024.0),
            (
                Some("alice"),
                Some("<default>"),
                "consumer_byte_rate",
                2048.0,
            ),
            (None, Some("<default>"), "request_percentage", 12.5),
        ]);
        let records = image.diff(&wanted);
        assert_eq!(records.len(), 3);
        apply_all(&mut image, &records);
        assert_eq!(image.quotas(), &wanted);
        assert!(image.diff(&wanted).is_empty());
        // One value changes, one key goes (and with it its entity).
        let fewer = map(&[
            (Some("alice"), None, "producer_byte_rate", 4096.0),
            (None, Some("<default>"), "request_percentage", 12.5),
        ]);
        let change = image.diff(&fewer);
        assert_eq!(change.len(), 2);
        apply_all(&mut image, &change);
        assert_eq!(image.quotas(), &fewer);
        let mut rebuilt = ClientQuotasImage::default();
        apply_all(&mut rebuilt, &image.snapshot_records());
        assert_eq!(rebuilt, image);
    }

    #[test]
    fn invalid_records_are_refused_unchanged() {
        let mut image = ClientQuotasImage::default();
        let good = map(&[(Some("alice"), None, "producer_byte_rate", 1024.0)]);
        let records = image.diff(&good);
        apply_all(&mut image, &records);
        let before = image.clone();
        let bad = |f: &dyn Fn(&mut ClientQuotaRecord)| {
            let MetadataRecord::ClientQuota(mut r) = quota_record(
                &QuotaEntity::client(None, None),
                "producer_byte_rate",
                1.0,
                false,
            ) else {
                unreachable!()
            };
            r.entity = vec![ClientQuotaEntityData {
                entity_type: "user".into(),
                entity_name: Some("bob".into()),
            }];
            f(&mut r);
            r
        };
        for r in [
            bad(&|r| r.value = -1.0),
            bad(&|r| r.value = f64::NAN),
            bad(&|r| r.value = 1.5),
            bad(&|r| r.key = "unknown_rate".into()),
            bad(&|r| r.entity.clear()),
            bad(&|r| r.entity[0].entity_type = "group".into()),
            bad(&|r| r.entity[0].entity_name = Some(String::new())),
        ] {
            assert!(image.apply(&r).is_err(), "{r:?} applied");
        }
        assert_eq!(image, before);
    }
}
