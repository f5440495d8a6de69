//! The security part of the metadata image (Kafka's `AclsImage`, `ScramImage` and
//! `ClientQuotasImage`): every ACL binding by its id, every user's SCRAM credentials per
//! mechanism, and the client quotas (`quota_image`), built only from
//! `AccessControlEntryRecord` / `RemoveAccessControlEntryRecord`,
//! `UserScramCredentialRecord` / `RemoveUserScramCredentialRecord` and `ClientQuotaRecord`.
//!
//! Invariants: `acls`, `ids` and `by_id` always hold the same bindings (one id per binding, as
//! Kafka's `AclControlManager` refuses a second identical ACL); a record with a binding that is
//! not concrete, a mechanism Sluice does not know, or an id or binding already taken by another
//! ACL is refused with the image unchanged. Re-applying a record already reflected changes
//! nothing, and removing what is absent is a replay, so both kinds are idempotent.
//! `diff_acls` / `diff_scram` / `diff_quotas` turn a wanted state into the records that reach
//! it, so a change made on a copy (`security_control`) becomes records without a second
//! vocabulary; `delta` turns one image's part into another's (a KRaft broker's shards follow
//! the committed image with it), keeping every ACL's id.

use std::collections::BTreeMap;

use super::quota_image::ClientQuotasImage;
use super::records::{
    AccessControlEntryRecord, MetadataRecord, RemoveAccessControlEntryRecord,
    RemoveUserScramCredentialRecord, TopicId, UserScramCredentialRecord,
};
use crate::quotas::entity::QuotaMap;
use crate::security::acl::AclBinding;
use crate::security::acl_store::Acls;
use crate::security::scram::{Credential, Mechanism, Users};

/// Why a security record does not apply (the image maps it to its own error).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SecurityRecordError(pub String);

/// See the module documentation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecurityImage {
    /// Every binding (what the authorizer checks against).
    acls: Acls,
    ids: BTreeMap<AclBinding, TopicId>,
    by_id: BTreeMap<u128, AclBinding>,
    scram: Users,
    quotas: ClientQuotasImage,
}

impl SecurityImage {
    /// Applies one security record (the caller routes only these four kinds here).
    pub fn apply(&mut self, record: &MetadataRecord) -> Result<(), SecurityRecordError> {
        match record {
            MetadataRecord::AccessControlEntry(r) => self.add_acl(r),
            MetadataRecord::RemoveAccessControlEntry(r) => {
                if let Some(binding) = self.by_id.remove(&r.id.0) {
                    self.ids.remove(&binding);
                    self.acls.remove(&binding);
                }
                Ok(())
            }
            MetadataRecord::UserScramCredential(r) => self.upsert_scram(r),
            MetadataRecord::RemoveUserScramCredential(r) => {
                let mechanism = mechanism(r.mechanism)?;
                if let Some(mechanisms) = self.scram.get_mut(&r.name) {
                    mechanisms.remove(&mechanism);
                    if mechanisms.is_empty() {
                        self.scram.remove(&r.name);
                    }
                }
                Ok(())
            }
            MetadataRecord::ClientQuota(r) => self
                .quotas
                .apply(r)
                .map_err(|e| SecurityRecordError(e.to_string())),
            other => Err(SecurityRecordError(format!(
                "record type {} is not a security record",
                other.kafka_type_id()
            ))),
        }
    }

    fn add_acl(&mut self, r: &AccessControlEntryRecord) -> Result<(), SecurityRecordError> {
        let binding = AclBinding::from_wire(
            r.resource_type,
            &r.resource_name,
            r.pattern_type,
            &r.principal,
            &r.host,
            r.operation,
            r.permission_type,
        )
        .map_err(|e| SecurityRecordError(format!("ACL {}: {e}", r.id.uuid())))?;
        match (self.by_id.get(&r.id.0), self.ids.get(&binding)) {
            (Some(existing), _) if *existing == binding => return Ok(()),
            (Some(_), _) => {
                return Err(SecurityRecordError(format!(
                    "ACL id {} already names another binding",
                    r.id.uuid()
                )))
            }
            (None, Some(other)) => {
                return Err(SecurityRecordError(format!(
                    "ACL {} duplicates ACL {}",
                    r.id.uuid(),
                    other.uuid()
                )))
            }
            (None, None) => {}
        }
        self.ids.insert(binding.clone(), r.id);
        self.by_id.insert(r.id.0, binding.clone());
        self.acls.insert(binding);
        Ok(())
    }

    fn upsert_scram(&mut self, r: &UserScramCredentialRecord) -> Result<(), SecurityRecordError> {
        let mechanism = mechanism(r.mechanism)?;
        let iterations = u32::try_from(r.iterations).map_err(|_| {
            SecurityRecordError(format!("negative SCRAM iterations for {}", r.name))
        })?;
        self.scram.entry(r.name.clone()).or_default().insert(
            mechanism,
            Credential {
                salt: r.salt.clone(),
                stored_key: r.stored_key.clone(),
                server_key: r.server_key.clone(),
                iterations,
            },
        );
        Ok(())
    }

    /// Every ACL binding.
    pub fn acls(&self) -> &Acls {
        &self.acls
    }

    /// Every user's SCRAM credentials.
    pub fn scram_users(&self) -> &Users {
        &self.scram
    }

    pub fn scram_credential(&self, user: &str, mechanism: Mechanism) -> Option<Credential> {
        self.scram.get(user)?.get(&mechanism).cloned()
    }

    /// The records that rebuild this part from nothing (a snapshot's share).
    pub fn snapshot_records(&self) -> Vec<MetadataRecord> {
        let acls = self.ids.iter().map(|(b, id)| acl_record(*id, b));
        let scram = self.scram.iter().flat_map(|(user, mechanisms)| {
            mechanisms
                .iter()
                .map(move |(m, c)| scram_record(user, *m, c))
        });
        acls.chain(scram)
            .chain(self.quotas.snapshot_records())
            .collect()
    }

    /// The client quotas.
    pub fn client_quotas(&self) -> &QuotaMap {
        self.quotas.quotas()
    }

    /// The records that turn this image's client quotas into `wanted`.
    pub fn diff_quotas(&self, wanted: &QuotaMap) -> Vec<MetadataRecord> {
        self.quotas.diff(wanted)
    }

    /// The records that turn this part into `to`: ACLs by id (a removal per id that goes or
    /// names another binding, then an entry per id that comes), SCRAM credentials and quotas.
    pub fn delta(&self, to: &SecurityImage) -> Vec<MetadataRecord> {
        let removed = self
            .by_id
            .iter()
            .filter(|(id, b)| to.by_id.get(*id) != Some(*b))
            .map(|(id, _)| {
                MetadataRecord::RemoveAccessControlEntry(RemoveAccessControlEntryRecord {
                    id: TopicId(*id),
                })
            });
        let added = to
            .by_id
            .iter()
            .filter(|(id, b)| self.by_id.get(*id) != Some(*b))
            .map(|(id, b)| acl_record(TopicId(*id), b));
        let mut records: Vec<MetadataRecord> = removed.chain(added).collect();
        records.extend(self.diff_scram(&to.scram));
        records.extend(self.diff_quotas(to.quotas.quotas()));
        records
    }

    /// The records that turn this image's ACLs into `wanted`: a removal per binding that goes
    /// (by its id), an entry with a fresh id per binding that comes.
    pub fn diff_acls(&self, wanted: &Acls) -> Vec<MetadataRecord> {
        let removed = self
            .ids
            .iter()
            .filter(|(b, _)| !wanted.contains(*b))
            .map(|(_, id)| {
                MetadataRecord::RemoveAccessControlEntry(RemoveAccessControlEntryRecord { id: *id })
            });
        let added = wanted
            .iter()
            .filter(|b| !self.ids.contains_key(*b))
            .map(|b| acl_record(TopicId::generate("acl"), b));
        removed.chain(added).collect()
    }

    /// The records that turn this image's SCRAM credentials into `wanted`.
    pub fn diff_scram(&self, wanted: &Users) -> Vec<MetadataRecord> {
        let mut records = Vec::new();
        for (user, mechanisms) in &self.scram {
            for m in mechanisms.keys() {
                if wanted.get(user).is_none_or(|w| !w.contains_key(m)) {
                    records.push(MetadataRecord::RemoveUserScramCredential(
                        RemoveUserScramCredentialRecord {
                            name: user.clone(),
                            mechanism: m.id(),
                        },
                    ));
                }
            }
        }
        for (user, mechanisms) in wanted {
            for (m, c) in mechanisms {
                if self.scram.get(user).and_then(|h| h.get(m)) != Some(c) {
                    records.push(scram_record(user, *m, c));
                }
            }
        }
        records
    }
}

fn mechanism(id: i8) -> Result<Mechanism, SecurityRecordError> {
    Mechanism::from_id(id)
        .ok_or_else(|| SecurityRecordError(format!("unknown SCRAM mechanism {id}")))
}

/// The `AccessControlEntryRecord` of `binding` under `id`.
pub fn acl_record(id: TopicId, binding: &AclBinding) -> MetadataRecord {
    MetadataRecord::AccessControlEntry(AccessControlEntryRecord {
        id,
        resource_type: binding.resource_type.code(),
        resource_name: binding.resource_name.clone(),
        pattern_type: binding.pattern_type.code(),
        principal: binding.principal.clone(),
        host: binding.host.clone(),
        operation: binding.operation.code(),
        permission_type: binding.permission.code(),
    })
}

/// The `UserScramCredentialRecord` of one user's credential.
pub fn scram_record(user: &str, mechanism: Mechanism, c: &Credential) -> MetadataRecord {
    MetadataRecord::UserScramCredential(UserScramCredentialRecord {
        name: user.to_owned(),
        mechanism: mechanism.id(),
        salt: c.salt.clone(),
        stored_key: c.stored_key.clone(),
        server_key: c.server_key.clone(),
        iterations: i32::try_from(c.iterations).unwrap_or(i32::MAX),
    })
}

/// Whether `record` belongs to this part of the image.
pub fn is_security_record(record: &MetadataRecord) -> bool {
    matches!(
        record,
        MetadataRecord::AccessControlEntry(_)
            | MetadataRecord::RemoveAccessControlEntry(_)
            | MetadataRecord::UserScramCredential(_)
            | MetadataRecord::RemoveUserScramCredential(_)
            | MetadataRecord::ClientQuota(_)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::acl::{Operation, PatternType, Permission, ResourceType};

    fn binding(name: &str) -> AclBinding {
        AclBinding {
            resource_type: ResourceType::Topic,
            resource_name: name.into(),
            pattern_type: PatternType::Literal,
            principal: "User:alice".into(),
            host: "*".into(),
            operation: Operation::Read,
            permission: Permission::Allow,
        }
    }

    #[test]
    fn acl_records_add_remove_and_replay() {
        let mut image = SecurityImage::default();
        let wanted: Acls = [binding("a"), binding("b")].into_iter().collect();
        let records = image.diff_acls(&wanted);
        assert_eq!(records.len(), 2);
        for r in &records {
            image.apply(r).unwrap();
            image.apply(r).unwrap(); // a replay changes nothing
        }
        assert_eq!(image.acls(), &wanted);
        assert!(image.diff_acls(&wanted).is_empty());
        let fewer: Acls = [binding("b")].into_iter().collect();
        let removal = image.diff_acls(&fewer);
        assert!(matches!(
            removal.as_slice(),
            [MetadataRecord::RemoveAccessControlEntry(_)]
        ));
        image.apply(&removal[0]).unwrap();
        assert_eq!(image.acls(), &fewer);
        let mut rebuilt = SecurityImage::default();
        for r in image.snapshot_records() {
            rebuilt.apply(&r).unwrap();
        }
        assert_eq!(rebuilt, image);
    }

    #[test]
    fn a_duplicate_or_invalid_acl_is_refused_unchanged() {
        let mut image = SecurityImage::default();
        image.apply(&acl_record(TopicId(1), &binding("a"))).unwrap();
        let before = image.clone();
        assert!(image.apply(&acl_record(TopicId(2), &binding("a"))).is_err());
        assert!(image.apply(&acl_record(TopicId(1), &binding("b"))).is_err());
        let mut bad = acl_record(TopicId(3), &binding("c"));
        if let MetadataRecord::AccessControlEntry(r) = &mut bad {
            r.operation = 1; // ANY: a filter code, never a stored binding
        }
        assert!(image.apply(&bad).is_err());
        assert_eq!(image, before);
    }

    #[test]
    fn the_delta_turns_one_part_into_another_keeping_acl_ids() {
        use crate::quotas::entity::{EntityName, QuotaEntity};
        let mut from = SecurityImage::default();
        for r in from.diff_acls(&[binding("a"), binding("b")].into_iter().collect()) {
            from.apply(&r).unwrap();
        }
        let mut to = from.clone();
        let changes = to.diff_acls(&[binding("b"), binding("c")].into_iter().collect());
        let mut users = Users::new();
        users.entry("alice".into()).or_default().insert(
            Mechanism::Sha512,
            Credential::from_password(Mechanism::Sha512, "pw", b"salt", 4096),
        );
        let mut quotas = QuotaMap::new();
        quotas
            .entry(QuotaEntity::client(None, Some(EntityName::Default)))
            .or_default()
            .insert("producer_byte_rate".into(), 1000.0);
        for r in changes
            .iter()
            .chain(&to.diff_scram(&users))
            .chain(&to.diff_quotas(&quotas))
            .cloned()
            .collect::<Vec<_>>()
        {
            to.apply(&r).unwrap();
        }
        let delta = from.delta(&to);
        for r in &delta {
            from.apply(r).unwrap();
        }
        assert_eq!(
            from, to,
            "same bindings under the same ids, users and quotas"
        );
        assert!(from.delta(&to).is_empty());
        assert_eq!(from.client_quotas(), &quotas);
    }

    #[test]
    fn scram_records_follow_the_wanted_users() {
        let mut image = SecurityImage::default();
        let c = Credential::from_password(Mechanism::Sha256, "pw", b"salt", 4096);
        let mut wanted = Users::new();
        wanted
            .entry("alice".into())
            .or_default()
            .insert(Mechanism::Sha256, c.clone());
        for r in image.diff_scram(&wanted) {
            image.apply(&r).unwrap();
        }
        assert_eq!(image.scram_credential("alice", Mechanism::Sha256), Some(c));
        assert!(image.diff_scram(&wanted).is_empty());
        let removal = image.diff_scram(&Users::new());
        assert_eq!(removal.len(), 1);
        image.apply(&removal[0]).unwrap();
        image.apply(&removal[0]).unwrap();
        assert!(image.scram_users().is_empty());
        let unknown = MetadataRecord::RemoveUserScramCredential(RemoveUserScramCredentialRecord {
            name: "alice".into(),
            mechanism: 9,
        });
        assert!(image.apply(&unknown).is_err());
    }
}
