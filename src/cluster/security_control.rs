//! Changes to ACLs, SCRAM credentials and client quotas through the controller (Kafka's
//! `AclControlManager`, `ScramControlManager` and `ClientQuotaControlManager`):
//! CreateAcls/DeleteAcls, AlterUserScramCredentials and AlterClientQuotas describe the wanted
//! state as a change of a copy; shard 0 turns the difference into
//! `AccessControlEntryRecord` / `RemoveAccessControlEntryRecord` /
//! `UserScramCredentialRecord` / `RemoveUserScramCredentialRecord` / `ClientQuotaRecord` and
//! commits them like every
//! other change (`controller::commit`: apply to a copy of the image, persist, every shard
//! adopts), so every shard's authorizer and SASL check read them from its own image.
//!
//! Invariants: a change runs on shard 0 under the registry lock, from reading the image to
//! committing, so two changes never plan against the same state; a change that reports
//! nothing changed, or whose difference is empty, commits nothing.

use super::controller::{self, ControllerContext, REGISTRY_SHARD};
use super::image::MetadataImage;
use super::records::MetadataRecord;
use crate::quotas::entity::QuotaMap;
use crate::security::acl_store::Acls;
use crate::security::scram::Users;
use crate::shard::ShardMsg;

/// Applies `change` to a copy of the image's ACLs and commits the difference; answers what
/// `change` returns. Err: the change could not be committed (nothing changed).
pub async fn modify_acls<R: Send + 'static>(
    shard: &ControllerContext<'_>,
    change: impl FnOnce(&mut Acls) -> (R, bool) + Send + 'static,
) -> Result<R, String> {
    on_controller(shard, move |image| {
        let mut wanted = image.security().acls().clone();
        let (answer, changed) = change(&mut wanted);
        let records = if changed {
            image.security().diff_acls(&wanted)
        } else {
            Vec::new()
        };
        (answer, records)
    })
    .await
}

/// Applies `change` to a copy of the image's SCRAM credentials and commits the difference.
pub async fn modify_scram<R: Send + 'static>(
    shard: &ControllerContext<'_>,
    change: impl FnOnce(&mut Users) -> (R, bool) + Send + 'static,
) -> Result<R, String> {
    on_controller(shard, move |image| {
        let mut wanted = image.security().scram_users().clone();
        let (answer, changed) = change(&mut wanted);
        let records = if changed {
            image.security().diff_scram(&wanted)
        } else {
            Vec::new()
        };
        (answer, records)
    })
    .await
}

/// Applies `change` to a copy of the image's client quotas and commits the difference.
pub async fn modify_quotas<R: Send + 'static>(
    shard: &ControllerContext<'_>,
    change: impl FnOnce(&mut QuotaMap) -> (R, bool) + Send + 'static,
) -> Result<R, String> {
    on_controller(shard, move |image| {
        let mut wanted = image.security().client_quotas().clone();
        let (answer, changed) = change(&mut wanted);
        let records = if changed {
            image.security().diff_quotas(&wanted)
        } else {
            Vec::new()
        };
        (answer, records)
    })
    .await
}

/// Runs `plan` against shard 0's image under the registry lock and commits its records.
async fn on_controller<R: Send + 'static>(
    shard: &ControllerContext<'_>,
    plan: impl FnOnce(&MetadataImage) -> (R, Vec<MetadataRecord>) + Send + 'static,
) -> Result<R, String> {
    if shard.shard_id == REGISTRY_SHARD {
        return plan_and_commit(shard, plan).await;
    }
    shard
        .broadcast
        .mesh
        .call(REGISTRY_SHARD, |reply| {
            ShardMsg::run(move |shard| async move {
                reply.send(plan_and_commit(&shard.controller_context(), plan).await);
            })
        })
        .await
        .unwrap_or_else(|_| Err("registry shard unavailable".to_owned()))
}

async fn plan_and_commit<R>(
    shard: &ControllerContext<'_>,
    plan: impl FnOnce(&MetadataImage) -> (R, Vec<MetadataRecord>),
) -> Result<R, String> {
    let _guard = shard.registry_lock.lock().await;
    let (answer, records) = plan(&shard.image.borrow());
    if !records.is_empty() {
        controller::commit(shard, records)
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(answer)
}
