//! Authorization (ACLs) as Kafka's `StandardAuthorizer` / `AclAuthorizer` decide it: resource
//! types, pattern types (LITERAL, PREFIXED, the `*` wildcard literal), operations with Kafka's
//! implied operations, ALLOW/DENY with DENY winning, host matching, `super.users` and
//! `allow.everyone.if.no.acl.found`. Also the ACL binding filters of DescribeAcls/DeleteAcls.
//!
//! Pure: no I/O (the persisted store is `acl_store`). Wire codes are Kafka's (`AclOperation`,
//! `ResourceType`, `PatternType`, `AclPermissionType` in clients/.../common).
//!
//! Invariants: a binding in the store is always concrete (no ANY/MATCH/UNKNOWN); with the
//! authorizer off every request is allowed, as before authorization existed.

use std::collections::BTreeSet;

/// Kafka's name of the cluster resource (the only valid CLUSTER resource name).
pub const CLUSTER_NAME: &str = "kafka-cluster";
/// The wildcard resource name and principal/host of Kafka's ACLs.
pub const WILDCARD: &str = "*";
pub const WILDCARD_PRINCIPAL: &str = "User:*";

/// The wire code of "ANY" in every filter field (ResourceType, PatternType, operation, permission).
pub const ANY: i8 = 1;
/// PatternType.MATCH: a filter matching LITERAL, wildcard and PREFIXED bindings that apply to a name.
pub const MATCH: i8 = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ResourceType {
    Topic = 2,
    Group = 3,
    Cluster = 4,
    TransactionalId = 5,
    DelegationToken = 6,
    User = 7,
}

impl ResourceType {
    pub fn from_code(code: i8) -> Option<Self> {
        Some(match code {
            2 => Self::Topic,
            3 => Self::Group,
            4 => Self::Cluster,
            5 => Self::TransactionalId,
            6 => Self::DelegationToken,
            7 => Self::User,
            _ => return None,
        })
    }

    pub fn code(self) -> i8 {
        self as i8
    }

    /// The operations Kafka reports in authorized-operations bitfields for this type.
    pub fn supported_operations(self) -> &'static [Operation] {
        use Operation::*;
        match self {
            Self::Topic => &[
                Read,
                Write,
                Create,
                Delete,
                Alter,
                Describe,
                DescribeConfigs,
                AlterConfigs,
            ],
            Self::Group => &[Read, Describe, Delete],
            Self::Cluster => &[
                Create,
                ClusterAction,
                DescribeConfigs,
                AlterConfigs,
                IdempotentWrite,
                Alter,
                Describe,
            ],
            Self::TransactionalId => &[Describe, Write],
            Self::DelegationToken => &[Describe],
            Self::User => &[CreateTokens, DescribeTokens],
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PatternType {
    Literal = 3,
    Prefixed = 4,
}

impl PatternType {
    pub fn from_code(code: i8) -> Option<Self> {
        match code {
            3 => Some(Self::Literal),
            4 => Some(Self::Prefixed),
            _ => None,
        }
    }

    pub fn code(self) -> i8 {
        self as i8
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Operation {
    All = 2,
    Read = 3,
    Write = 4,
    Create = 5,
    Delete = 6,
    Alter = 7,
    Describe = 8,
    ClusterAction = 9,
    DescribeConfigs = 10,
    AlterConfigs = 11,
    IdempotentWrite = 12,
    CreateTokens = 13,
    DescribeTokens = 14,
}

impl Operation {
    pub fn from_code(code: i8) -> Option<Self> {
        use Operation::*;
        Some(match code {
            2 => All,
            3 => Read,
            4 => Write,
            5 => Create,
            6 => Delete,
            7 => Alter,
            8 => Describe,
            9 => ClusterAction,
            10 => DescribeConfigs,
            11 => AlterConfigs,
            12 => IdempotentWrite,
            13 => CreateTokens,
            14 => DescribeTokens,
            _ => return None,
        })
    }

    pub fn code(self) -> i8 {
        self as i8
    }

    /// Whether an ALLOW binding for `self` allows `wanted` (Kafka's implied operations:
    /// DESCRIBE by READ/WRITE/DELETE/ALTER, DESCRIBE_CONFIGS by ALTER_CONFIGS, anything by ALL).
    pub fn allow_implies(self, wanted: Operation) -> bool {
        use Operation::*;
        self == All
            || self == wanted
            || (wanted == Describe && matches!(self, Read | Write | Delete | Alter))
            || (wanted == DescribeConfigs && self == AlterConfigs)
    }

    /// Whether a DENY binding for `self` denies `wanted` (only the same operation or ALL).
    pub fn deny_implies(self, wanted: Operation) -> bool {
        self == Operation::All || self == wanted
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Permission {
    Deny = 2,
    Allow = 3,
}

impl Permission {
    pub fn from_code(code: i8) -> Option<Self> {
        match code {
            2 => Some(Self::Deny),
            3 => Some(Self::Allow),
            _ => None,
        }
    }

    pub fn code(self) -> i8 {
        self as i8
    }
}

/// One ACL (Kafka's `AclBinding`): a resource pattern plus an access control entry.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AclBinding {
    pub resource_type: ResourceType,
    pub resource_name: String,
    pub pattern_type: PatternType,
    /// `Type:name`, e.g. `User:alice` or `User:*`.
    pub principal: String,
    /// An IP address or `*`.
    pub host: String,
    pub operation: Operation,
    pub permission: Permission,
}

/// Why a binding cannot be created (Kafka answers INVALID_REQUEST with this message).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidAcl(pub String);

impl AclBinding {
    /// Validates wire fields as Kafka's AclControlManager.validateNewAcl does.
    pub fn from_wire(
        resource_type: i8,
        resource_name: &str,
        pattern_type: i8,
        principal: &str,
        host: &str,
        operation: i8,
        permission: i8,
    ) -> Result<Self, InvalidAcl> {
        let bad = |m: String| Err(InvalidAcl(m));
        let Some(resource_type) = ResourceType::from_code(resource_type) else {
            return bad(format!("Invalid resourceType {resource_type}"));
        };
        let Some(pattern_type) = PatternType::from_code(pattern_type) else {
            return bad(format!("Invalid patternType {pattern_type}"));
        };
        let Some(operation) = Operation::from_code(operation) else {
            return bad(format!("Invalid operation {operation}"));
        };
        let Some(permission) = Permission::from_code(permission) else {
            return bad(format!("Invalid permissionType {permission}"));
        };
        if resource_name.is_empty() {
            return bad("Resource name should not be empty".to_owned());
        }
        if resource_type == ResourceType::Cluster && resource_name != CLUSTER_NAME {
            return bad(format!(
                "The only valid name for the CLUSTER resource is {CLUSTER_NAME}"
            ));
        }
        match principal.split_once(':') {
            Some((kind, name)) if !kind.is_empty() && !name.is_empty() => {}
            _ => return bad(format!("Could not parse principal from `{principal}`")),
        }
        if host.is_empty() {
            return bad("Host should not be empty".to_owned());
        }
        Ok(Self {
            resource_type,
            resource_name: resource_name.to_owned(),
            pattern_type,
            principal: principal.to_owned(),
            host: host.to_owned(),
            operation,
            permission,
        })
    }

    /// Whether this binding's resource pattern applies to `name` of `resource_type`.
    pub fn applies_to(&self, resource_type: ResourceType, name: &str) -> bool {
        self.resource_type == resource_type
            && match self.pattern_type {
                PatternType::Literal => {
                    self.resource_name == name || self.resource_name == WILDCARD
                }
                PatternType::Prefixed => name.starts_with(&self.resource_name),
            }
    }

    fn entry_applies(&self, principal: &str, host: &str) -> bool {
        (self.principal == principal || self.principal == WILDCARD_PRINCIPAL)
            && (self.host == host || self.host == WILDCARD)
    }
}

/// A DescribeAcls/DeleteAcls filter (Kafka's `AclBindingFilter`); `None` = any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclFilter {
    pub resource_type: Option<ResourceType>,
    pub resource_name: Option<String>,
    /// `None` = ANY; `Some(MATCH)` handled by `pattern_match`.
    pub pattern_type: Option<PatternType>,
    pub pattern_match: bool,
    pub principal: Option<String>,
    pub host: Option<String>,
    pub operation: Option<Operation>,
    pub permission: Option<Permission>,
}

impl AclFilter {
    /// From the wire; an UNKNOWN (or out-of-range) code in any field is invalid, as Kafka's
    /// `filter.isUnknown` makes it.
    pub fn from_wire(
        resource_type: i8,
        resource_name: Option<&str>,
        pattern_type: i8,
        principal: Option<&str>,
        host: Option<&str>,
        operation: i8,
        permission: i8,
    ) -> Result<Self, InvalidAcl> {
        fn any_or<T>(
            code: i8,
            parse: fn(i8) -> Option<T>,
            what: &str,
        ) -> Result<Option<T>, InvalidAcl> {
            if code == ANY {
                return Ok(None);
            }
            parse(code)
                .map(Some)
                .ok_or_else(|| InvalidAcl(format!("Invalid {what} {code} in filter")))
        }
        let pattern_match = pattern_type == MATCH;
        let pattern_type = if pattern_match {
            None
        } else {
            any_or(pattern_type, PatternType::from_code, "patternType")?
        };
        Ok(Self {
            resource_type: any_or(resource_type, ResourceType::from_code, "resourceType")?,
            resource_name: resource_name.map(str::to_owned),
            pattern_type,
            pattern_match,
            principal: principal.map(str::to_owned),
            host: host.map(str::to_owned),
            operation: any_or(operation, Operation::from_code, "operation")?,
            permission: any_or(permission, Permission::from_code, "permissionType")?,
        })
    }

    /// Kafka's `AclBindingFilter.matches`.
    pub fn matches(&self, acl: &AclBinding) -> bool {
        self.resource_matches(acl)
            && self.principal.as_ref().is_none_or(|p| *p == acl.principal)
            && self.host.as_ref().is_none_or(|h| *h == acl.host)
            && self.operation.is_none_or(|o| o == acl.operation)
            && self.permission.is_none_or(|p| p == acl.permission)
    }

    fn resource_matches(&self, acl: &AclBinding) -> bool {
        if self.resource_type.is_some_and(|t| t != acl.resource_type) {
            return false;
        }
        if self.pattern_type.is_some_and(|p| p != acl.pattern_type) {
            return false;
        }
        match &self.resource_name {
            None => true,
            // MATCH: every binding that would apply to this name.
            Some(name) if self.pattern_match => match acl.pattern_type {
                PatternType::Literal => acl.resource_name == *name || acl.resource_name == WILDCARD,
                PatternType::Prefixed => name.starts_with(&acl.resource_name),
            },
            Some(name) => acl.resource_name == *name,
        }
    }
}

/// `authorizer.class.name` values that turn authorization on (Kafka's two ACL authorizers).
pub const AUTHORIZER_CLASSES: [&str; 2] = [
    "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
    "kafka.security.authorizer.AclAuthorizer",
];

/// The authorizer's settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthorizerConfig {
    /// `authorizer.class.name` set to one of `AUTHORIZER_CLASSES`.
    pub enabled: bool,
    /// `super.users`: principals allowed everything.
    pub super_users: Vec<String>,
    /// `allow.everyone.if.no.acl.found`.
    pub allow_everyone_if_no_acl_found: bool,
}

impl AuthorizerConfig {
    /// Parses Kafka's settings; an unknown authorizer class is an error (it would silently
    /// leave the broker open otherwise).
    pub fn parse(class: &str, super_users: &str, allow_if_no_acl: bool) -> Result<Self, String> {
        let class = class.trim();
        let enabled = if class.is_empty() {
            false
        } else if AUTHORIZER_CLASSES.contains(&class) {
            true
        } else {
            return Err(format!(
                "unsupported authorizer {class:?}; use one of {AUTHORIZER_CLASSES:?} or leave it empty"
            ));
        };
        let super_users: Vec<String> = super_users
            .split(';')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        if let Some(bad) = super_users.iter().find(|p| !p.contains(':')) {
            return Err(format!("super.users: {bad:?} is not a Type:name principal"));
        }
        Ok(Self {
            enabled,
            super_users,
            allow_everyone_if_no_acl_found: allow_if_no_acl,
        })
    }
}

/// One authorization question.
#[derive(Debug, Clone, Copy)]
pub struct Action<'a> {
    pub principal: &'a str,
    pub host: &'a str,
    pub operation: Operation,
    pub resource_type: ResourceType,
    pub resource_name: &'a str,
}

/// Kafka's decision (AclAuthorizer.authorizeAction): super user; else DENY on a matching
/// binding wins; else no binding on the resource at all -> `allow.everyone.if.no.acl.found`;
/// else a matching ALLOW (with implied operations).
pub fn authorize(config: &AuthorizerConfig, acls: &BTreeSet<AclBinding>, action: &Action) -> bool {
    if !config.enabled {
        return true;
    }
    if config.super_users.iter().any(|s| s == action.principal) {
        return true;
    }
    let mut any_on_resource = false;
    let mut allowed = false;
    for acl in acls
        .iter()
        .filter(|a| a.applies_to(action.resource_type, action.resource_name))
    {
        any_on_resource = true;
        if !acl.entry_applies(action.principal, action.host) {
            continue;
        }
        match acl.permission {
            Permission::Deny if acl.operation.deny_implies(action.operation) => return false,
            Permission::Allow if acl.operation.allow_implies(action.operation) => allowed = true,
            _ => {}
        }
    }
    allowed || (!any_on_resource && config.allow_everyone_if_no_acl_found)
}

/// Kafka's `Authorizer.authorizeByResourceType` (KIP-679; the default method StandardAuthorizer
/// uses): whether the principal may do `operation` on at least one resource of the type. A
/// super user (or `allow.everyone.if.no.acl.found` with no ACL) passes the check on a made-up
/// name; a wildcard-literal DENY refuses; otherwise some ALLOW (the operation itself or ALL, no
/// implied operations) on a wildcard, or on a literal or prefixed name that no literal DENY of
/// the same name and no prefixed DENY on a prefix of it covers.
pub fn authorize_by_resource_type(
    config: &AuthorizerConfig,
    acls: &BTreeSet<AclBinding>,
    principal: &str,
    host: &str,
    operation: Operation,
    resource_type: ResourceType,
) -> bool {
    let hardcoded = Action {
        principal,
        host,
        operation,
        resource_type,
        resource_name: "hardcode",
    };
    if authorize(config, acls, &hardcoded) {
        return true;
    }
    let mut deny_literal = BTreeSet::new();
    let mut deny_prefixed = BTreeSet::new();
    let mut allow = Vec::new();
    for acl in acls.iter().filter(|a| {
        a.resource_type == resource_type
            && a.entry_applies(principal, host)
            && (a.operation == operation || a.operation == Operation::All)
    }) {
        match (acl.permission, acl.pattern_type) {
            (Permission::Deny, PatternType::Literal) if acl.resource_name == WILDCARD => {
                return false
            }
            (Permission::Deny, PatternType::Literal) => {
                deny_literal.insert(acl.resource_name.as_str());
            }
            (Permission::Deny, PatternType::Prefixed) => {
                deny_prefixed.insert(acl.resource_name.as_str());
            }
            (Permission::Allow, PatternType::Literal) if acl.resource_name == WILDCARD => {
                return true
            }
            (Permission::Allow, pattern) => allow.push((pattern, acl.resource_name.as_str())),
        }
    }
    allow.iter().any(|&(pattern, name)| {
        let literal_denied = pattern == PatternType::Literal && deny_literal.contains(name);
        let prefix_denied = name
            .char_indices()
            .map(|(i, c)| &name[..i + c.len_utf8()])
            .any(|prefix| deny_prefixed.contains(prefix));
        !literal_denied && !prefix_denied
    })
}

/// Kafka's authorized-operations bitfield: bit `code` set for each supported operation allowed.
pub fn authorized_operations(
    config: &AuthorizerConfig,
    acls: &BTreeSet<AclBinding>,
    principal: &str,
    host: &str,
    resource_type: ResourceType,
    resource_name: &str,
) -> i32 {
    resource_type
        .supported_operations()
        .iter()
        .filter(|&&operation| {
            authorize(
                config,
                acls,
                &Action {
                    principal,
                    host,
                    operation,
                    resource_type,
                    resource_name,
                },
            )
        })
        .fold(0i32, |bits, op| bits | (1 << op.code()))
}

#[cfg(test)]
#[path = "acl_tests.rs"]
mod tests;
