//! Which quota applies to a `(user, client-id)`, and which clients share one rate: Kafka's
//! `DefaultQuotaCallback.quotaMetricTags` and `quotaLimit`, pure.
//!
//! Precedence, highest first: `/users/<u>/clients/<c>`, `/users/<u>/clients/<default>`,
//! `/users/<u>`, `/users/<default>/clients/<c>`, `/users/<default>/clients/<default>`,
//! `/users/<default>`, `/clients/<c>`, `/clients/<default>`. The metric tags name the rate a
//! request is measured in: `(user, "")` when a user-level quota applies (all clients of the user
//! share it), `("", client)` for a client-id quota (all users of the client id share it),
//! `(user, client)` for a user+client quota.

use std::collections::HashMap;

use super::entity::{EntityName, QuotaEntity};

/// One quota type's overrides (entity -> bound per second).
pub type Overrides = HashMap<QuotaEntity, f64>;

/// `(user tag, client-id tag)`: the identity of a rate.
pub type MetricTags = (String, String);

fn entity(user: Option<EntityName>, client_id: Option<EntityName>) -> QuotaEntity {
    QuotaEntity::client(user, client_id)
}

fn named(name: &str) -> Option<EntityName> {
    Some(EntityName::Named(name.to_owned()))
}

const DEFAULT: Option<EntityName> = Some(EntityName::Default);

/// `quotaMetricTags`: the tags of the most specific entity with a quota.
pub fn metric_tags(user: &str, client_id: &str, overrides: &Overrides) -> MetricTags {
    let has = |e: QuotaEntity| overrides.contains_key(&e);
    let both = || (user.to_owned(), client_id.to_owned());
    if has(entity(named(user), named(client_id))) || has(entity(named(user), DEFAULT)) {
        return both();
    }
    if has(entity(named(user), None)) {
        return (user.to_owned(), String::new());
    }
    if has(entity(DEFAULT, named(client_id))) || has(entity(DEFAULT, DEFAULT)) {
        return both();
    }
    if has(entity(DEFAULT, None)) {
        return (user.to_owned(), String::new());
    }
    (String::new(), client_id.to_owned())
}

/// `quotaLimit`: the bound for a rate's tags; `None` = unlimited.
pub fn limit(tags: &MetricTags, overrides: &Overrides) -> Option<f64> {
    let (user, client_id) = (tags.0.as_str(), tags.1.as_str());
    let get = |e: QuotaEntity| overrides.get(&e).copied();
    if !user.is_empty() && !client_id.is_empty() {
        get(entity(named(user), named(client_id)))
            .or_else(|| get(entity(named(user), DEFAULT)))
            .or_else(|| get(entity(DEFAULT, named(client_id))))
            .or_else(|| get(entity(DEFAULT, DEFAULT)))
    } else if !user.is_empty() {
        get(entity(named(user), None)).or_else(|| get(entity(DEFAULT, None)))
    } else if !client_id.is_empty() {
        get(entity(None, named(client_id))).or_else(|| get(entity(None, DEFAULT)))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn o(entries: &[(Option<EntityName>, Option<EntityName>, f64)]) -> Overrides {
        entries
            .iter()
            .map(|(u, c, v)| (entity(u.clone(), c.clone()), *v))
            .collect()
    }

    fn resolve(user: &str, client: &str, overrides: &Overrides) -> (MetricTags, Option<f64>) {
        let tags = metric_tags(user, client, overrides);
        let bound = limit(&tags, overrides);
        (tags, bound)
    }

    #[test]
    fn kafkas_precedence() {
        let all = o(&[
            (named("u"), named("c"), 1.0),
            (named("u"), DEFAULT, 2.0),
            (named("u"), None, 3.0),
            (DEFAULT, named("c"), 4.0),
            (DEFAULT, DEFAULT, 5.0),
            (DEFAULT, None, 6.0),
            (None, named("c"), 7.0),
            (None, DEFAULT, 8.0),
        ]);
        assert_eq!(resolve("u", "c", &all).1, Some(1.0));
        assert_eq!(resolve("u", "x", &all).1, Some(2.0));
        assert_eq!(resolve("v", "c", &all).1, Some(4.0));
        assert_eq!(resolve("v", "x", &all).1, Some(5.0));
        let users = o(&[(named("u"), None, 3.0), (DEFAULT, None, 6.0)]);
        assert_eq!(
            resolve("u", "c", &users),
            (("u".into(), "".into()), Some(3.0))
        );
        assert_eq!(
            resolve("v", "c", &users),
            (("v".into(), "".into()), Some(6.0))
        );
        let clients = o(&[(None, named("c"), 7.0), (None, DEFAULT, 8.0)]);
        assert_eq!(
            resolve("u", "c", &clients),
            (("".into(), "c".into()), Some(7.0))
        );
        assert_eq!(resolve("u", "x", &clients).1, Some(8.0));
        // A user quota beats a client-id quota.
        let mixed = o(&[(named("u"), None, 3.0), (None, named("c"), 7.0)]);
        assert_eq!(resolve("u", "c", &mixed).1, Some(3.0));
        assert_eq!(resolve("w", "c", &mixed).1, Some(7.0));
        assert_eq!(resolve("w", "y", &mixed).1, None);
    }
}
