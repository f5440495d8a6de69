//! The narrow contexts of routing (`router`), of the group coordinator's routing between
//! shards (`groups`) and of the transaction coordinator (`txn`), built here from the shard's
//! state; and what those modules ask of the shard beyond borrowed state: the controller's
//! operations on the registry shard (`router::admin::Registry`), and the transaction
//! coordinator's completion tasks and brokers' addresses (`txn::TxnHost`).
//!
//! Invariants: a context borrows from the shard and lives no longer than the call or task it
//! was built for; a task that outlives the call starting it (a transaction's completion) is
//! spawned here and owns the shard, and lends the module a context built inside it; the marker
//! channels' resolver holds the shard weakly (the channels live in the shard).

use std::net::SocketAddr;
use std::rc::Rc;

use futures_util::future::LocalBoxFuture;

use super::Shard;
use crate::cluster::controller;
use crate::groups::GroupRoutingContext;
use crate::router::admin::{AdminError, ChangeResult, Registry, RegistryChange};
use crate::router::{CreateResult, NewTopic, RouterContext};
use crate::txn::{TxnCoordinatorContext, TxnHost};

impl Shard {
    /// What routing (`router::Router`) uses.
    pub fn router_context(&self) -> RouterContext<'_> {
        RouterContext {
            shard_id: self.id,
            mesh: &self.mesh,
            placement: &self.placement,
            image: &self.topics,
            node_id: self.config.server.node_id,
            is_cluster: self.cluster.is_some(),
            partitions: &self.partitions,
            producer_ids: &self.producer_ids,
            registry: self,
        }
    }

    /// What routing group ops between shards and creating the offsets topic (`groups::route`,
    /// `list_all`, `complete_txn`, `ensure_offsets_topic`) use.
    pub fn group_routing_context(&self) -> GroupRoutingContext<'_> {
        GroupRoutingContext {
            group: self.group_context(),
            router: self.router_context(),
        }
    }

    /// What the transaction coordinator (`txn::route`, `coordinator`, `markers`, `verify`)
    /// uses; from the `Rc`, which starts its completion tasks.
    pub fn txn_coordinator_context(self: &Rc<Self>) -> TxnCoordinatorContext<'_> {
        TxnCoordinatorContext {
            txn: self.txn_context(),
            router: self.router_context(),
            groups: self.group_context(),
            shutdown: &self.shutdown,
            host: self,
        }
    }
}

/// The transaction coordinator's timers (`txn::coordinator::timer_loop`), as a task owning the
/// shard.
pub(super) async fn txn_timer_loop(shard: Rc<Shard>) {
    crate::txn::coordinator::timer_loop(&shard.txn_coordinator_context()).await;
}

impl Registry for Shard {
    fn create_topics(
        &self,
        topics: Vec<NewTopic>,
        validate_only: bool,
    ) -> LocalBoxFuture<'_, Vec<CreateResult>> {
        Box::pin(controller::create_topics(self, topics, validate_only))
    }

    fn apply_change(&self, change: RegistryChange) -> LocalBoxFuture<'_, Vec<ChangeResult>> {
        Box::pin(controller::apply_change(self, change))
    }

    fn alter_broker_configs(
        &self,
        target: (crate::cluster::topics::dynamic::Scope, i32),
        change: crate::cluster::topics::dynamic::BrokerChange,
        validate_only: bool,
    ) -> LocalBoxFuture<'_, Result<(), AdminError>> {
        Box::pin(controller::alter_broker_configs(
            self,
            target,
            change,
            validate_only,
        ))
    }

    fn allocate_producer_ids(
        &self,
    ) -> LocalBoxFuture<'_, Result<crate::producers::IdBlock, crate::producers::IdError>> {
        Box::pin(controller::allocate_producer_ids(self))
    }
}

impl TxnHost for Rc<Shard> {
    fn spawn_completion(&self, transactional_id: String) {
        let shard = self.clone();
        let task = async move {
            let context = shard.txn_coordinator_context();
            crate::txn::coordinator::complete(&context, transactional_id).await;
        };
        compio::runtime::spawn(task).detach();
    }

    fn broker_addr(&self, broker: i32) -> Option<SocketAddr> {
        crate::cluster::replicas::broker_addr(self, broker)
    }

    fn resolver(&self) -> crate::txn::channel::Resolver {
        let weak = Rc::downgrade(self);
        Rc::new(move |broker| {
            weak.upgrade()
                .and_then(|shard| crate::cluster::replicas::broker_addr(&shard, broker))
        })
    }
}

/// The controller's duties (`cluster::duties`) create the offsets topic with the shard.
impl<'a> From<&'a Rc<Shard>> for GroupRoutingContext<'a> {
    fn from(shard: &'a Rc<Shard>) -> Self {
        shard.group_routing_context()
    }
}

/// The controller's duties and the handlers (FindCoordinator, Metadata) create the
/// transaction log topic with the shard.
impl<'a> From<&'a Rc<Shard>> for TxnCoordinatorContext<'a> {
    fn from(shard: &'a Rc<Shard>) -> Self {
        shard.txn_coordinator_context()
    }
}
