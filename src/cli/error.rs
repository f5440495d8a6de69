//! The CLI's errors: each names what failed and what to do about it. A Kafka error carries
//! its code and Kafka's name for it (`UNKNOWN_TOPIC_OR_PARTITION (3)`), so a user can look it
//! up in Kafka's documentation.

use kafka_protocol::ResponseError;

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("cannot reach a broker at {addr}: {source}\n  hint: is a broker running there? Pass --brokers HOST:PORT[,HOST:PORT...]")]
    Connect {
        addr: String,
        source: std::io::Error,
    },
    #[error("connection to {addr} failed: {source}\n  hint: the broker closed the connection or did not answer in time; check its log")]
    Connection {
        addr: String,
        source: std::io::Error,
    },
    #[error("{context}: {name} ({code}){what}\n  hint: {hint}")]
    Kafka {
        context: String,
        code: i16,
        name: String,
        what: String,
        hint: String,
    },
    #[error("the broker cannot serve {api}: {detail}")]
    Unsupported { api: String, detail: String },
    #[error("{0}")]
    NotFound(String),
    #[error("protocol error: {0}")]
    Protocol(String),
    #[error("{0}")]
    Usage(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
}

impl CliError {
    /// The process exit status: 2 for usage errors (as clap), 1 for everything else.
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Usage(_) => 2,
            _ => 1,
        }
    }
}

/// `Ok` for code 0, else the Kafka error with its name and a hint. `message` is the broker's
/// error message, if the response has one.
pub fn check(code: i16, context: &str, message: &str) -> Result<(), CliError> {
    match ResponseError::try_from_code(code) {
        None => Ok(()),
        Some(error) => Err(CliError::Kafka {
            context: context.to_owned(),
            code,
            name: kafka_name(error),
            what: if message.is_empty() {
                String::new()
            } else {
                format!(": {message}")
            },
            hint: hint(error).to_owned(),
        }),
    }
}

/// Kafka's constant name: `UnknownTopicOrPartition` -> `UNKNOWN_TOPIC_OR_PARTITION`.
pub fn kafka_name(error: ResponseError) -> String {
    if let ResponseError::Unknown(code) = error {
        return format!("UNKNOWN_ERROR_CODE_{code}");
    }
    let camel = error.to_string();
    let mut out = String::with_capacity(camel.len() + 8);
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

/// What to do about an error, in one line.
fn hint(error: ResponseError) -> &'static str {
    use ResponseError as E;
    match error {
        E::UnknownTopicOrPartition => {
            "no such topic or partition: check the name with `sluice topic list`"
        }
        E::TopicAlreadyExists => "the topic exists; `sluice topic describe` shows it, or pick another name",
        E::InvalidTopicException => {
            "topic names use only [a-zA-Z0-9._-], at most 249 characters, and are not '.' or '..'"
        }
        E::InvalidPartitions => "the partition count must be at least 1 (and within the broker's limit)",
        E::InvalidReplicationFactor => {
            "the replication factor must be at most the number of brokers (or -1 for the default)"
        }
        E::InvalidConfig => "a config name or value is not valid; see Kafka's topic config reference",
        E::PolicyViolation => "the broker's policy refuses this request; see the message",
        E::OffsetOutOfRange => {
            "the offset is outside the log; `sluice topic describe` shows the log start offset and high watermark"
        }
        E::GroupIdNotFound => "no such group: `sluice group list` shows the groups",
        E::NonEmptyGroup => "the group still has members; stop its consumers first",
        E::CoordinatorNotAvailable | E::CoordinatorLoadInProgress | E::NotCoordinator => {
            "the group coordinator is not ready; retry in a moment"
        }
        E::LeaderNotAvailable | E::NotLeaderOrFollower => {
            "leadership is moving; retry in a moment"
        }
        E::RequestTimedOut => "the broker did not finish in time; retry, or raise --timeout-ms",
        E::MessageTooLarge | E::RecordListTooLarge => {
            "the record is larger than the topic's max.message.bytes; raise it with `sluice topic alter-config`"
        }
        E::UnknownMemberId | E::IllegalGeneration | E::RebalanceInProgress => {
            "the group has active members; stop its consumers before changing its offsets"
        }
        E::InconsistentGroupProtocol => {
            "the group's members use another protocol type or assignor than `consume --group` (classic `consumer`, `range`); use another --group"
        }
        E::GroupMaxSizeReached => "the group already has the broker's group.max.size members",
        E::InvalidSessionTimeout => {
            "the broker's group.min/max.session.timeout.ms do not allow the consumer's 45 s session timeout"
        }
        E::UnsupportedVersion => "the broker does not support this request version; upgrade the broker or the CLI",
        E::InvalidRequest => "the broker rejected the request as malformed; report it with the broker's log",
        E::TopicAuthorizationFailed | E::GroupAuthorizationFailed | E::ClusterAuthorizationFailed => {
            "the broker's ACLs deny this; ask an administrator for the permission"
        }
        E::UnsupportedCompressionType => "the broker does not support this codec; use another --compression",
        E::CorruptMessage => "the broker rejected the records as corrupt; report it with the broker's log",
        _ if error.is_retriable() => "a transient error; retry in a moment",
        _ => "see Kafka's error code reference for this code",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_kafka() {
        assert_eq!(
            kafka_name(ResponseError::UnknownTopicOrPartition),
            "UNKNOWN_TOPIC_OR_PARTITION"
        );
        assert_eq!(
            kafka_name(ResponseError::Unknown(999)),
            "UNKNOWN_ERROR_CODE_999"
        );
    }

    #[test]
    fn check_names_code_and_hint() {
        assert!(check(0, "x", "").is_ok());
        let text = check(36, "create topic t", "").unwrap_err().to_string();
        assert!(text.contains("TOPIC_ALREADY_EXISTS (36)"), "{text}");
        assert!(text.contains("hint:"), "{text}");
    }
}
