//! AlterUserScramCredentials v0 and DescribeUserScramCredentials v0 (KIP-554): manage the
//! SCRAM credentials of the metadata image (`UserScramCredentialRecord`s committed through
//! `cluster::security_control`), with Kafka's per-user errors
//! (ControllerApis / ScramControlManager): RESOURCE_NOT_FOUND, DUPLICATE_RESOURCE,
//! UNSUPPORTED_SASL_MECHANISM, UNACCEPTABLE_CREDENTIAL.
//!
//! Invariant: a request's accepted changes are persisted together before it is answered; the
//! client sends SaltedPassword, never the password, and the broker keeps only StoredKey and
//! ServerKey derived from it.

use std::collections::{BTreeMap, HashSet};
use std::rc::Rc;

use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResult,
};
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse,
    DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse,
};
use kafka_protocol::ResponseError as K;

use super::{str_bytes, HandlerFuture, Outcome, Request};
use crate::security::acl::Operation;
use crate::security::scram::{Credential, Mechanism, Users, ITERATIONS_MAX, ITERATIONS_MIN};
use crate::shard::Shard;

/// One user's change, validated.
enum Change {
    Delete(Mechanism),
    Upsert(Mechanism, Credential),
}

type Checked = Result<Change, (i16, String)>;

fn check_mechanism(id: i8) -> Result<Mechanism, (i16, String)> {
    Mechanism::from_id(id).ok_or((
        K::UnsupportedSaslMechanism.code(),
        format!("Unknown SCRAM mechanism {id}"),
    ))
}

fn check_upsert(mechanism: i8, iterations: i32, salt: &[u8], salted_password: &[u8]) -> Checked {
    let mechanism = check_mechanism(mechanism)?;
    if !(ITERATIONS_MIN..=ITERATIONS_MAX).contains(&iterations) {
        return Err((
            K::UnacceptableCredential.code(),
            format!("Iterations must be between {ITERATIONS_MIN} and {ITERATIONS_MAX}"),
        ));
    }
    if salt.is_empty() || salted_password.is_empty() {
        return Err((
            K::UnacceptableCredential.code(),
            "Salt and salted password must not be empty".to_owned(),
        ));
    }
    let iterations = iterations.unsigned_abs();
    Ok(Change::Upsert(
        mechanism,
        Credential::from_salted_password(mechanism, salt, salted_password, iterations),
    ))
}

pub fn handle_alter(shard: Rc<Shard>, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let version = request.version();
        let body: AlterUserScramCredentialsRequest = request.decode()?;
        // Kafka: CLUSTER ALTER, else CLUSTER_AUTHORIZATION_FAILED for every user.
        if !super::authz::cluster_allowed(&shard, &request, Operation::Alter) {
            let users = body
                .deletions
                .iter()
                .map(|d| &d.name)
                .chain(body.upsertions.iter().map(|u| &u.name));
            let results = users
                .map(|user| {
                    AlterUserScramCredentialsResult::default()
                        .with_user(user.clone())
                        .with_error_code(K::ClusterAuthorizationFailed.code())
                })
                .collect();
            let response = AlterUserScramCredentialsResponse::default().with_results(results);
            return Outcome::encoded(&response, version);
        }
        // Per user, in request order: every change, or the first error.
        let mut per_user: BTreeMap<String, Result<Vec<Change>, (i16, String)>> = BTreeMap::new();
        let mut order: Vec<String> = Vec::new();
        let mut seen: HashSet<(String, i8)> = HashSet::new();
        let mut duplicated: HashSet<String> = HashSet::new();
        let items = body
            .deletions
            .iter()
            .map(|d| (d.name.to_string(), d.mechanism, None))
            .chain(body.upsertions.iter().map(|u| {
                (
                    u.name.to_string(),
                    u.mechanism,
                    Some((u.iterations, &u.salt, &u.salted_password)),
                )
            }));
        for (user, mechanism, upsert) in items {
            if !per_user.contains_key(&user) {
                order.push(user.clone());
            }
            if !seen.insert((user.clone(), mechanism)) {
                duplicated.insert(user.clone());
            }
            let checked = if user.is_empty() {
                Err((
                    K::UnacceptableCredential.code(),
                    "Username must not be empty".to_owned(),
                ))
            } else {
                match upsert {
                    None => check_mechanism(mechanism).map(Change::Delete),
                    Some((iterations, salt, salted)) => {
                        check_upsert(mechanism, iterations, salt, salted)
                    }
                }
            };
            let entry = per_user.entry(user).or_insert_with(|| Ok(Vec::new()));
            match (entry.as_mut(), checked) {
                (Ok(changes), Ok(change)) => changes.push(change),
                (Ok(_), Err(e)) => *entry = Err(e),
                (Err(_), _) => {}
            }
        }
        for user in duplicated {
            per_user.insert(
                user,
                Err((
                    K::DuplicateResource.code(),
                    "A user credential cannot be altered twice in the same request".to_owned(),
                )),
            );
        }
        let outcome = crate::cluster::security_control::modify_scram(
            &shard.controller_context(),
            move |users| apply(users, per_user),
        )
        .await;
        let mut results = match outcome {
            Ok(results) => results,
            Err(e) => {
                tracing::error!(error = %e, "AlterUserScramCredentials");
                order
                    .iter()
                    .map(|u| (u.clone(), (K::UnknownServerError.code(), None)))
                    .collect()
            }
        };
        let results = order
            .iter()
            .map(|user| {
                let (code, message) = results
                    .remove(user)
                    .unwrap_or((K::UnknownServerError.code(), None));
                AlterUserScramCredentialsResult::default()
                    .with_user(str_bytes(user))
                    .with_error_code(code)
                    .with_error_message(message.map(|m| str_bytes(&m)))
            })
            .collect();
        let response = AlterUserScramCredentialsResponse::default().with_results(results);
        Outcome::encoded(&response, version)
    })
}

type AlterResults = BTreeMap<String, (i16, Option<String>)>;

/// Applies every user's valid changes; a deletion of a missing credential fails that user.
fn apply(
    users: &mut Users,
    per_user: BTreeMap<String, Result<Vec<Change>, (i16, String)>>,
) -> (AlterResults, bool) {
    let mut results = BTreeMap::new();
    let mut changed = false;
    for (user, checked) in per_user {
        let changes = match checked {
            Ok(changes) => changes,
            Err((code, message)) => {
                results.insert(user, (code, Some(message)));
                continue;
            }
        };
        let mut updated = users.get(&user).cloned().unwrap_or_default();
        let mut error = None;
        for change in changes {
            match change {
                Change::Delete(m) => {
                    if updated.remove(&m).is_none() {
                        error = Some((
                            K::ResourceNotFound.code(),
                            "Attempt to delete a user credential that does not exist".to_owned(),
                        ));
                    }
                }
                Change::Upsert(m, c) => {
                    updated.insert(m, c);
                }
            }
        }
        match error {
            Some((code, message)) => {
                results.insert(user, (code, Some(message)));
            }
            None => {
                if updated.is_empty() {
                    users.remove(&user);
                } else {
                    users.insert(user.clone(), updated);
                }
                changed = true;
                results.insert(user, (0, None));
            }
        }
    }
    (results, changed)
}

pub fn handle_describe(shard: Rc<Shard>, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let version = request.version();
        let body: DescribeUserScramCredentialsRequest = request.decode()?;
        // Kafka: CLUSTER DESCRIBE, else a top-level CLUSTER_AUTHORIZATION_FAILED.
        if !super::authz::cluster_allowed(&shard, &request, Operation::Describe) {
            let response = DescribeUserScramCredentialsResponse::default()
                .with_error_code(K::ClusterAuthorizationFailed.code());
            return Outcome::encoded(&response, version);
        }
        let users = shard.topics.borrow().security().scram_users().clone();
        let describe = |user: &str| {
            let infos: Vec<CredentialInfo> = users
                .get(user)
                .map(|m| {
                    m.iter()
                        .map(|(mechanism, c)| {
                            CredentialInfo::default()
                                .with_mechanism(mechanism.id())
                                .with_iterations(i32::try_from(c.iterations).unwrap_or(i32::MAX))
                        })
                        .collect()
                })
                .unwrap_or_default();
            DescribeUserScramCredentialsResult::default()
                .with_user(str_bytes(user))
                .with_credential_infos(infos)
        };
        let results = match body.users.as_deref() {
            None | Some([]) => users.keys().map(|u| describe(u)).collect(),
            Some(wanted) => {
                let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
                for w in wanted {
                    *counts.entry(w.name.as_str()).or_default() += 1;
                }
                let mut done = HashSet::new();
                wanted
                    .iter()
                    .filter(|w| done.insert(w.name.as_str()))
                    .map(|w| {
                        let name = w.name.as_str();
                        if counts.get(name).copied().unwrap_or(0) > 1 {
                            DescribeUserScramCredentialsResult::default()
                                .with_user(str_bytes(name))
                                .with_error_code(K::DuplicateResource.code())
                                .with_error_message(Some(str_bytes(&format!(
                                    "Cannot describe SCRAM credentials for the same user twice in a single request: {name}"
                                ))))
                        } else if users.contains_key(name) {
                            describe(name)
                        } else {
                            DescribeUserScramCredentialsResult::default()
                                .with_user(str_bytes(name))
                                .with_error_code(K::ResourceNotFound.code())
                                .with_error_message(Some(str_bytes(&format!(
                                    "Attempt to describe a user credential that does not exist: {name}"
                                ))))
                        }
                    })
                    .collect()
            }
        };
        let response = DescribeUserScramCredentialsResponse::default().with_results(results);
        Outcome::encoded(&response, version)
    })
}
