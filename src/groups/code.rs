//! The typed outcome of a group operation and its one mapping to Kafka's error codes.

/// How a group operation ended, typed: what the coordinator and its state machine answer
/// instead of raw Kafka codes. `kafka_code` is the one mapping to the wire (an exhaustive
/// match, so a new variant cannot go unmapped).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GroupCode {
    /// Success (Kafka's NONE).
    #[default]
    None,
    CoordinatorLoadInProgress,
    CoordinatorNotAvailable,
    FencedInstanceId,
    GroupIdNotFound,
    GroupMaxSizeReached,
    GroupSubscribedToTopic,
    IllegalGeneration,
    TopicAuthorizationFailed,
    GroupAuthorizationFailed,
    InconsistentGroupProtocol,
    InvalidGroupId,
    /// A TxnOffsetCommit append refused for the producer's stale epoch.
    InvalidProducerEpoch,
    InvalidSessionTimeout,
    /// A TxnOffsetCommit append that does not fit its producer's transaction state.
    InvalidTxnState,
    MemberIdRequired,
    NonEmptyGroup,
    NotCoordinator,
    OffsetMetadataTooLarge,
    RebalanceInProgress,
    UnknownMemberId,
    UnknownServerError,
    UnknownTopicOrPartition,
    /// OffsetFetch with require_stable while TxnOffsetCommit offsets await their marker.
    UnstableOffsetCommit,
}

impl GroupCode {
    pub fn kafka_code(self) -> i16 {
        use kafka_protocol::ResponseError as K;
        match self {
            Self::None => 0,
            Self::CoordinatorLoadInProgress => K::CoordinatorLoadInProgress.code(),
            Self::CoordinatorNotAvailable => K::CoordinatorNotAvailable.code(),
            Self::FencedInstanceId => K::FencedInstanceId.code(),
            Self::GroupIdNotFound => K::GroupIdNotFound.code(),
            Self::GroupMaxSizeReached => K::GroupMaxSizeReached.code(),
            Self::GroupSubscribedToTopic => K::GroupSubscribedToTopic.code(),
            Self::IllegalGeneration => K::IllegalGeneration.code(),
            Self::TopicAuthorizationFailed => K::TopicAuthorizationFailed.code(),
            Self::GroupAuthorizationFailed => K::GroupAuthorizationFailed.code(),
            Self::InconsistentGroupProtocol => K::InconsistentGroupProtocol.code(),
            Self::InvalidGroupId => K::InvalidGroupId.code(),
            Self::InvalidProducerEpoch => K::InvalidProducerEpoch.code(),
            Self::InvalidSessionTimeout => K::InvalidSessionTimeout.code(),
            Self::InvalidTxnState => K::InvalidTxnState.code(),
            Self::MemberIdRequired => K::MemberIdRequired.code(),
            Self::NonEmptyGroup => K::NonEmptyGroup.code(),
            Self::NotCoordinator => K::NotCoordinator.code(),
            Self::OffsetMetadataTooLarge => K::OffsetMetadataTooLarge.code(),
            Self::RebalanceInProgress => K::RebalanceInProgress.code(),
            Self::UnknownMemberId => K::UnknownMemberId.code(),
            Self::UnknownServerError => K::UnknownServerError.code(),
            Self::UnknownTopicOrPartition => K::UnknownTopicOrPartition.code(),
            Self::UnstableOffsetCommit => K::UnstableOffsetCommit.code(),
        }
    }

    pub fn is_ok(self) -> bool {
        self == Self::None
    }
}
