//! DescribeCluster: the registered brokers (at their endpoint for the request's listener, with
//! their rack) and the controller, from the metadata image.

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
        let (brokers, controller_id) = {
            let image = shard.topics.borrow();
            let listener = &request.session.listener.name;
            let brokers: Vec<_> = crate::cluster::view::alive_nodes(&image, listener)
                .into_iter()
                .map(|node| {
                    DescribeClusterBroker::default()
                        .with_broker_id(BrokerId(node.id))
                        .with_host(str_bytes(&node.host))
                        .with_port(i32::from(node.port))
                        .with_rack(node.rack.as_deref().map(str_bytes))
                })
                .collect();
            (brokers, shard.controller_id())
        };
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
            .with_cluster_id(str_bytes(&shard.config.server.cluster_id))
            .with_controller_id(BrokerId(controller_id))
            .with_brokers(brokers);
        Outcome::encoded(&response, version)
    })
}
