//! DescribeCluster: this node is the whole cluster and its controller.

use std::rc::Rc;

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};

use super::{str_bytes, HandlerFuture, Outcome, Request};
use crate::security::acl::{ResourceType, CLUSTER_NAME};
use crate::shard::Shard;

pub fn handle(shard: Rc<Shard>, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let version = request.version();
        let body: DescribeClusterRequest = request.decode()?;
        let broker = DescribeClusterBroker::default()
            .with_broker_id(BrokerId(shard.config.node_id))
            .with_host(str_bytes(&request.session.listener.advertised_host))
            .with_port(i32::from(request.session.listener.advertised_port));
        let operations = if body.include_cluster_authorized_operations {
            super::authz::authorized_operations(
                &shard,
                &request,
                ResourceType::Cluster,
                CLUSTER_NAME,
            )
        } else {
            super::AUTHORIZED_OPERATIONS_OMITTED
        };
        let response = DescribeClusterResponse::default()
            .with_cluster_authorized_operations(operations)
            .with_cluster_id(str_bytes(&shard.config.cluster_id))
            .with_controller_id(BrokerId(shard.config.node_id))
            .with_brokers(vec![broker]);
        Outcome::encoded(&response, version)
    })
}
