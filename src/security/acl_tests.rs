//! Kafka's matching rules (AclAuthorizerTest / StandardAuthorizerTest cases).

use super::*;

fn acl(
    rt: ResourceType,
    name: &str,
    pt: PatternType,
    principal: &str,
    host: &str,
    op: Operation,
    perm: Permission,
) -> AclBinding {
    AclBinding {
        resource_type: rt,
        resource_name: name.into(),
        pattern_type: pt,
        principal: principal.into(),
        host: host.into(),
        operation: op,
        permission: perm,
    }
}

fn topic_allow(name: &str, pt: PatternType, principal: &str, op: Operation) -> AclBinding {
    acl(
        ResourceType::Topic,
        name,
        pt,
        principal,
        "*",
        op,
        Permission::Allow,
    )
}

fn on() -> AuthorizerConfig {
    AuthorizerConfig::parse(AUTHORIZER_CLASSES[0], "User:admin", false).unwrap()
}

fn can(
    config: &AuthorizerConfig,
    acls: &[AclBinding],
    principal: &str,
    op: Operation,
    topic: &str,
) -> bool {
    can_from(config, acls, principal, "10.0.0.1", op, topic)
}

fn can_from(
    config: &AuthorizerConfig,
    acls: &[AclBinding],
    principal: &str,
    host: &str,
    op: Operation,
    topic: &str,
) -> bool {
    let set: BTreeSet<_> = acls.iter().cloned().collect();
    authorize(
        config,
        &set,
        &Action {
            principal,
            host,
            operation: op,
            resource_type: ResourceType::Topic,
            resource_name: topic,
        },
    )
}

#[test]
fn authorizer_off_allows_everything() {
    let off = AuthorizerConfig::parse("", "", false).unwrap();
    assert!(!off.enabled);
    let deny = acl(
        ResourceType::Topic,
        "t",
        PatternType::Literal,
        "User:bob",
        "*",
        Operation::All,
        Permission::Deny,
    );
    assert!(can(&off, &[deny], "User:bob", Operation::Write, "t"));
}

#[test]
fn unknown_authorizer_class_and_bad_super_user_are_refused() {
    assert!(AuthorizerConfig::parse("com.example.Custom", "", false).is_err());
    assert!(AuthorizerConfig::parse(AUTHORIZER_CLASSES[1], "alice", false).is_err());
    let c = AuthorizerConfig::parse(AUTHORIZER_CLASSES[1], " User:a ; User:b;", true).unwrap();
    assert_eq!(c.super_users, vec!["User:a", "User:b"]);
    assert!(c.allow_everyone_if_no_acl_found);
}

#[test]
fn no_acl_denies_unless_allow_everyone_if_no_acl_found() {
    let mut c = on();
    assert!(!can(&c, &[], "User:alice", Operation::Read, "t"));
    c.allow_everyone_if_no_acl_found = true;
    assert!(can(&c, &[], "User:alice", Operation::Read, "t"));
    // An ACL on the resource for someone else: no longer "no ACL found".
    let other = topic_allow("t", PatternType::Literal, "User:bob", Operation::Read);
    assert!(!can(&c, &[other], "User:alice", Operation::Read, "t"));
}

#[test]
fn super_users_bypass_deny() {
    let c = on();
    let deny = acl(
        ResourceType::Topic,
        "*",
        PatternType::Literal,
        "User:*",
        "*",
        Operation::All,
        Permission::Deny,
    );
    assert!(can(
        &c,
        std::slice::from_ref(&deny),
        "User:admin",
        Operation::Delete,
        "t"
    ));
    assert!(!can(&c, &[deny], "User:alice", Operation::Read, "t"));
}

#[test]
fn literal_wildcard_and_prefixed_patterns() {
    let c = on();
    let lit = topic_allow(
        "orders",
        PatternType::Literal,
        "User:alice",
        Operation::Read,
    );
    assert!(can(
        &c,
        std::slice::from_ref(&lit),
        "User:alice",
        Operation::Read,
        "orders"
    ));
    assert!(!can(&c, &[lit], "User:alice", Operation::Read, "orders2"));
    let star = topic_allow("*", PatternType::Literal, "User:alice", Operation::Read);
    assert!(can(&c, &[star], "User:alice", Operation::Read, "anything"));
    let pre = topic_allow("app-", PatternType::Prefixed, "User:alice", Operation::Read);
    assert!(can(
        &c,
        std::slice::from_ref(&pre),
        "User:alice",
        Operation::Read,
        "app-1"
    ));
    assert!(can(
        &c,
        std::slice::from_ref(&pre),
        "User:alice",
        Operation::Read,
        "app-"
    ));
    assert!(!can(&c, &[pre], "User:alice", Operation::Read, "ap"));
    // A PREFIXED `*` is a literal prefix, not a wildcard.
    let pre_star = topic_allow("*", PatternType::Prefixed, "User:alice", Operation::Read);
    assert!(!can(&c, &[pre_star], "User:alice", Operation::Read, "t"));
}

#[test]
fn wildcard_principal_and_host_matching() {
    let c = on();
    let everyone = topic_allow("t", PatternType::Literal, "User:*", Operation::Write);
    assert!(can(&c, &[everyone], "User:zed", Operation::Write, "t"));
    let from_host = acl(
        ResourceType::Topic,
        "t",
        PatternType::Literal,
        "User:alice",
        "10.0.0.1",
        Operation::Write,
        Permission::Allow,
    );
    let acls = [from_host];
    assert!(can_from(
        &c,
        &acls,
        "User:alice",
        "10.0.0.1",
        Operation::Write,
        "t"
    ));
    assert!(!can_from(
        &c,
        &acls,
        "User:alice",
        "10.0.0.2",
        Operation::Write,
        "t"
    ));
}

#[test]
fn implied_operations() {
    let c = on();
    for op in [
        Operation::Read,
        Operation::Write,
        Operation::Delete,
        Operation::Alter,
    ] {
        let a = topic_allow("t", PatternType::Literal, "User:alice", op);
        assert!(
            can(&c, &[a], "User:alice", Operation::Describe, "t"),
            "{op:?}"
        );
    }
    let create = topic_allow("t", PatternType::Literal, "User:alice", Operation::Create);
    assert!(!can(&c, &[create], "User:alice", Operation::Describe, "t"));
    let alter_configs = topic_allow(
        "t",
        PatternType::Literal,
        "User:alice",
        Operation::AlterConfigs,
    );
    assert!(can(
        &c,
        std::slice::from_ref(&alter_configs),
        "User:alice",
        Operation::DescribeConfigs,
        "t"
    ));
    assert!(!can(
        &c,
        &[alter_configs],
        "User:alice",
        Operation::Describe,
        "t"
    ));
    let all = topic_allow("t", PatternType::Literal, "User:alice", Operation::All);
    assert!(can(&c, &[all], "User:alice", Operation::Delete, "t"));
    // READ does not imply WRITE.
    let read = topic_allow("t", PatternType::Literal, "User:alice", Operation::Read);
    assert!(!can(&c, &[read], "User:alice", Operation::Write, "t"));
}

#[test]
fn deny_wins_and_deny_does_not_imply() {
    let c = on();
    let allow = topic_allow("app-", PatternType::Prefixed, "User:*", Operation::All);
    let deny = acl(
        ResourceType::Topic,
        "app-secret",
        PatternType::Literal,
        "User:alice",
        "*",
        Operation::Read,
        Permission::Deny,
    );
    let acls = [allow, deny];
    assert!(!can(&c, &acls, "User:alice", Operation::Read, "app-secret"));
    assert!(can(&c, &acls, "User:bob", Operation::Read, "app-secret"));
    assert!(can(&c, &acls, "User:alice", Operation::Read, "app-public"));
    // DENY READ does not deny DESCRIBE (denials are not implied), ALLOW ALL still gives it.
    assert!(can(
        &c,
        &acls,
        "User:alice",
        Operation::Describe,
        "app-secret"
    ));
    assert!(can(&c, &acls, "User:alice", Operation::Write, "app-secret"));
}

#[test]
fn authorized_operations_bitfield() {
    let c = on();
    let read = topic_allow("t", PatternType::Literal, "User:alice", Operation::Read);
    let set: BTreeSet<_> = [read].into_iter().collect();
    let bits = authorized_operations(&c, &set, "User:alice", "h", ResourceType::Topic, "t");
    assert_eq!(bits, (1 << 3) | (1 << 8), "READ and DESCRIBE");
    let off = AuthorizerConfig::default();
    let all = authorized_operations(&off, &set, "User:x", "h", ResourceType::Group, "g");
    assert_eq!(all, (1 << 3) | (1 << 8) | (1 << 6));
}

#[test]
fn new_bindings_are_validated_like_kafka() {
    let ok = AclBinding::from_wire(2, "t", 3, "User:a", "*", 3, 3);
    assert!(ok.is_ok());
    assert!(
        AclBinding::from_wire(1, "t", 3, "User:a", "*", 3, 3).is_err(),
        "ANY type"
    );
    assert!(
        AclBinding::from_wire(2, "t", 2, "User:a", "*", 3, 3).is_err(),
        "MATCH"
    );
    assert!(
        AclBinding::from_wire(2, "t", 3, "User:a", "*", 1, 3).is_err(),
        "ANY op"
    );
    assert!(
        AclBinding::from_wire(2, "t", 3, "User:a", "*", 3, 1).is_err(),
        "ANY perm"
    );
    assert!(
        AclBinding::from_wire(2, "", 3, "User:a", "*", 3, 3).is_err(),
        "empty name"
    );
    assert!(
        AclBinding::from_wire(2, "t", 3, "alice", "*", 3, 3).is_err(),
        "principal"
    );
    assert!(
        AclBinding::from_wire(4, "c", 3, "User:a", "*", 7, 3).is_err(),
        "cluster name"
    );
    assert!(AclBinding::from_wire(4, CLUSTER_NAME, 3, "User:a", "*", 7, 3).is_ok());
}

#[test]
fn filters_match_like_acl_binding_filter() {
    let lit = topic_allow("app-1", PatternType::Literal, "User:a", Operation::Read);
    let pre = topic_allow("app-", PatternType::Prefixed, "User:a", Operation::Read);
    let star = topic_allow("*", PatternType::Literal, "User:b", Operation::Write);
    let any = AclFilter::from_wire(1, None, 1, None, None, 1, 1).unwrap();
    assert!([&lit, &pre, &star].iter().all(|a| any.matches(a)));
    let exact = AclFilter::from_wire(2, Some("app-1"), 3, None, None, 1, 1).unwrap();
    assert!(exact.matches(&lit) && !exact.matches(&pre) && !exact.matches(&star));
    let by_match = AclFilter::from_wire(2, Some("app-1"), MATCH, None, None, 1, 1).unwrap();
    assert!(by_match.matches(&lit) && by_match.matches(&pre) && by_match.matches(&star));
    let any_pattern_named = AclFilter::from_wire(1, Some("app-"), 1, None, None, 1, 1).unwrap();
    assert!(any_pattern_named.matches(&pre) && !any_pattern_named.matches(&lit));
    let by_principal = AclFilter::from_wire(1, None, 1, Some("User:b"), None, 4, 3).unwrap();
    assert!(by_principal.matches(&star) && !by_principal.matches(&lit));
    assert!(
        AclFilter::from_wire(0, None, 1, None, None, 1, 1).is_err(),
        "UNKNOWN"
    );
    assert!(
        AclFilter::from_wire(1, None, 1, None, None, 0, 1).is_err(),
        "UNKNOWN op"
    );
}

fn by_type(config: &AuthorizerConfig, acls: &[AclBinding], principal: &str) -> bool {
    let set: BTreeSet<_> = acls.iter().cloned().collect();
    authorize_by_resource_type(
        config,
        &set,
        principal,
        "10.0.0.1",
        Operation::Write,
        ResourceType::Topic,
    )
}

fn topic_deny(name: &str, pt: PatternType, principal: &str, op: Operation) -> AclBinding {
    acl(
        ResourceType::Topic,
        name,
        pt,
        principal,
        "*",
        op,
        Permission::Deny,
    )
}

/// Kafka's AuthorizerTest.testAuthorizeByResourceType* cases.
#[test]
fn authorize_by_resource_type_as_kafka() {
    use Operation::{All, Read, Write};
    use PatternType::{Literal, Prefixed};
    let config = on();
    assert!(!by_type(&config, &[], "User:bob"));
    assert!(by_type(&config, &[], "User:admin"), "super user");
    let open = AuthorizerConfig::parse(AUTHORIZER_CLASSES[0], "", true).unwrap();
    assert!(
        by_type(&open, &[], "User:bob"),
        "allow.everyone.if.no.acl.found"
    );
    let literal = topic_allow("t1", Literal, "User:bob", Write);
    assert!(by_type(&config, std::slice::from_ref(&literal), "User:bob"));
    assert!(!by_type(
        &config,
        std::slice::from_ref(&literal),
        "User:carol"
    ));
    assert!(by_type(
        &config,
        &[topic_allow("x", Literal, "User:*", All)],
        "User:carol"
    ));
    assert!(!by_type(
        &config,
        &[topic_allow("t1", Literal, "User:bob", Read)],
        "User:bob"
    ));
    // A literal DENY on the same name, or a prefixed DENY on a prefix of it, cancels an ALLOW.
    let same = topic_deny("t1", Literal, "User:bob", Write);
    assert!(!by_type(&config, &[literal.clone(), same], "User:bob"));
    let prefix = topic_deny("t", Prefixed, "User:bob", Write);
    assert!(!by_type(
        &config,
        &[literal.clone(), prefix.clone()],
        "User:bob"
    ));
    let app = topic_allow("app-", Prefixed, "User:bob", Write);
    assert!(
        by_type(&config, &[app.clone(), prefix], "User:bob"),
        "t does not prefix app-"
    );
    let longer = topic_deny("app-x", Prefixed, "User:bob", Write);
    assert!(
        by_type(&config, &[app.clone(), longer], "User:bob"),
        "a longer DENY is no dominance"
    );
    // A wildcard DENY refuses; a wildcard ALLOW allows.
    let wildcard_deny = topic_deny("*", Literal, "User:bob", All);
    assert!(!by_type(&config, &[literal, wildcard_deny], "User:bob"));
    assert!(by_type(
        &config,
        &[topic_allow("*", Literal, "User:bob", Write)],
        "User:bob"
    ));
}
