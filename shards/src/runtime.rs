//! Starting the shards: one OS thread per shard, each with its own compio `Runtime` (its own
//! io_uring), optionally pinned to one core.
//!
//! Invariants:
//! - `run` returns only after every shard thread has ended (no detached shard outlives it);
//! - any shard that fails (panic, runtime build error) triggers `Shutdown` for all the others,
//!   so one broken shard never leaves the rest serving a partial broker;
//! - shard futures are created on their own thread and need not be `Send`.

use std::future::Future;
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::placement::SHARD_COUNT_MAX;
use crate::{
    set_iowq_bounded_workers_max, signals, Inbox, Mesh, RingSetup, RuntimeError, ShardId, Shutdown,
    IOWQ_BOUNDED_WORKERS_MAX_DEFAULT,
};

/// How many shards to start and how they talk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeConfig {
    /// Number of shards; 0 = one per available core.
    pub shard_count: usize,
    /// Pin shard i to core (i mod cores) with core_affinity.
    pub pin_threads: bool,
    /// Per-shard inbox bound, in messages; must be at least 1.
    pub mailbox_capacity: usize,
    /// Shard threads are named "{prefix}-{index}".
    pub thread_name_prefix: String,
    /// io_uring setup flags of every shard's ring (`ring.rs`).
    pub ring: RingSetup,
    /// Most bounded io-wq workers per shard, 0 = the kernel's limit (`iowq.rs`).
    pub iowq_bounded_workers_max: u32,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            shard_count: 0,
            pin_threads: true,
            mailbox_capacity: 1024,
            thread_name_prefix: "sluice-shard".to_string(),
            ring: RingSetup::default(),
            iowq_bounded_workers_max: IOWQ_BOUNDED_WORKERS_MAX_DEFAULT,
        }
    }
}

impl RuntimeConfig {
    /// The shard count `run` will start: `shard_count`, or the available cores when it is 0.
    pub fn resolved_shard_count(&self) -> usize {
        if self.shard_count > 0 {
            return self.shard_count;
        }
        std::thread::available_parallelism().map_or(1, |cores| cores.get())
    }

    fn validate(&self) -> Result<usize, RuntimeError> {
        let shard_count = self.resolved_shard_count();
        if shard_count > SHARD_COUNT_MAX {
            return Err(RuntimeError::Config(format!(
                "shard_count {shard_count} exceeds {SHARD_COUNT_MAX}"
            )));
        }
        if self.mailbox_capacity == 0 {
            return Err(RuntimeError::Config(
                "mailbox_capacity must be at least 1".into(),
            ));
        }
        Ok(shard_count)
    }
}

/// What a shard gets besides its inbox: who it is, how to reach the others, when to stop.
pub struct ShardContext<M> {
    pub id: ShardId,
    pub mesh: Mesh<M>,
    pub shutdown: Shutdown,
}

impl<M> Clone for ShardContext<M> {
    fn clone(&self) -> Self {
        Self {
            id: self.id,
            mesh: self.mesh.clone(),
            shutdown: self.shutdown.clone(),
        }
    }
}

impl<M> std::fmt::Debug for ShardContext<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardContext")
            .field("id", &self.id)
            .field("mesh", &self.mesh)
            .field("shutdown", &self.shutdown)
            .finish()
    }
}

/// Starts one thread per shard, each with its own compio Runtime (own io_uring), pins it,
/// and runs `shard_main(ctx, inbox)` to completion inside it. Installs SIGINT/SIGTERM handling:
/// the first signal triggers `Shutdown` on every shard (a second one exits at once with 130).
/// Blocks until every shard's future has returned; returns Err if a shard thread panicked or a
/// runtime could not be built. M is the caller's message type.
///
/// Call it from `main` before starting other threads (see the `signals` module caveat).
pub fn run<M, F, Fut>(config: RuntimeConfig, shard_main: F) -> Result<(), RuntimeError>
where
    M: Send + 'static,
    F: Fn(ShardContext<M>, Inbox<M>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + 'static,
{
    run_with_shutdown(config, Shutdown::new(), shard_main)
}

/// `run` with a caller-supplied `Shutdown`, so an embedding program or a test can stop the
/// shards from outside (e.g. a broker started in-process by an integration test).
pub fn run_with_shutdown<M, F, Fut>(
    config: RuntimeConfig,
    shutdown: Shutdown,
    shard_main: F,
) -> Result<(), RuntimeError>
where
    M: Send + 'static,
    F: Fn(ShardContext<M>, Inbox<M>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + 'static,
{
    let shard_count = config.validate()?;
    let (mesh, inboxes) = Mesh::new(shard_count, config.mailbox_capacity);
    // Before any shard thread exists, so all of them inherit the blocked signal mask.
    let _signals = signals::install(shutdown.clone()).map_err(RuntimeError::Signal)?;
    let cores = if config.pin_threads {
        core_affinity::get_core_ids().unwrap_or_default()
    } else {
        Vec::new()
    };
    let shard_main = Arc::new(shard_main);
    let mut threads: Vec<(ShardId, JoinHandle<std::io::Result<()>>)> = Vec::new();
    let mut first_error = None;
    for (index, inbox) in inboxes.into_iter().enumerate() {
        // validate() bounds shard_count by SHARD_COUNT_MAX, so index fits in u16.
        let id = ShardId(index as u16);
        let shard = Shard {
            ctx: ShardContext {
                id,
                mesh: mesh.clone(),
                shutdown: shutdown.clone(),
            },
            inbox,
            core: (!cores.is_empty())
                .then(|| cores.get(index % cores.len()).copied())
                .flatten(),
            ring: config.ring,
            iowq_bounded_workers_max: config.iowq_bounded_workers_max,
        };
        let main = Arc::clone(&shard_main);
        let spawned = std::thread::Builder::new()
            .name(format!("{}-{index}", config.thread_name_prefix))
            .spawn(move || shard.run(&*main));
        match spawned {
            Ok(thread) => threads.push((id, thread)),
            Err(source) => {
                shutdown.trigger();
                first_error = Some(RuntimeError::Spawn { shard: id, source });
                break;
            }
        }
    }
    drop(mesh);
    for (shard, thread) in threads {
        let outcome = join_shard(shard, thread);
        if let Err(error) = outcome {
            tracing::error!("{error}");
            first_error.get_or_insert(error);
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// Everything one shard thread owns.
struct Shard<M> {
    ctx: ShardContext<M>,
    inbox: Inbox<M>,
    core: Option<core_affinity::CoreId>,
    ring: RingSetup,
    iowq_bounded_workers_max: u32,
}

impl<M: Send + 'static> Shard<M> {
    fn run<F, Fut>(self, shard_main: &F) -> std::io::Result<()>
    where
        F: Fn(ShardContext<M>, Inbox<M>) -> Fut,
        Fut: Future<Output = ()>,
    {
        let _panic_guard = StopOthersOnPanic(self.ctx.shutdown.clone());
        if let Some(core) = self.core {
            if !core_affinity::set_for_current(core) {
                tracing::warn!("{}: cannot pin to core {}", self.ctx.id, core.id);
            }
        }
        let mut proactor = compio::driver::ProactorBuilder::new();
        self.ring.apply(&mut proactor);
        let built = compio::runtime::RuntimeBuilder::new()
            .with_proactor(proactor)
            .build();
        let runtime = match built {
            Ok(runtime) => runtime,
            Err(error) => {
                self.ctx.shutdown.trigger();
                return Err(error);
            }
        };
        if self.iowq_bounded_workers_max > 0 {
            let fd = std::os::fd::AsRawFd::as_raw_fd(&runtime);
            if let Err(error) = set_iowq_bounded_workers_max(fd, self.iowq_bounded_workers_max) {
                tracing::warn!(
                    "{}: io-wq worker limit {} refused, the kernel's applies: {error}",
                    self.ctx.id,
                    self.iowq_bounded_workers_max
                );
            }
        }
        tracing::debug!("{} started", self.ctx.id);
        runtime.block_on(shard_main(self.ctx, self.inbox));
        Ok(())
    }
}

/// Triggers shutdown when a shard thread unwinds, so the other shards stop instead of waiting
/// on a peer that is gone.
struct StopOthersOnPanic(Shutdown);

impl Drop for StopOthersOnPanic {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // Not from this unwinding thread: compio aborts the process when a task of another
            // runtime is woken from a thread that is panicking.
            let shutdown = self.0.clone();
            match std::thread::Builder::new()
                .name("sluice-panic-stop".into())
                .spawn(move || shutdown.trigger())
            {
                Ok(thread) => {
                    let _ = thread.join();
                }
                Err(_) => self.0.trigger(),
            }
        }
    }
}

fn join_shard(shard: ShardId, thread: JoinHandle<std::io::Result<()>>) -> Result<(), RuntimeError> {
    match thread.join() {
        Ok(Ok(())) => Ok(()),
        Ok(Err(source)) => Err(RuntimeError::RuntimeBuild { shard, source }),
        Err(payload) => Err(RuntimeError::ShardPanicked {
            shard,
            message: panic_message(payload.as_ref()),
        }),
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_string()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "non-string panic payload".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config() {
        let config = RuntimeConfig::default();
        assert_eq!(config.shard_count, 0);
        assert!(config.pin_threads);
        assert_eq!(config.mailbox_capacity, 1024);
        assert_eq!(config.thread_name_prefix, "sluice-shard");
        assert!(config.resolved_shard_count() >= 1);
    }

    #[test]
    fn invalid_configs_are_errors() {
        let zero_mailbox = RuntimeConfig {
            shard_count: 1,
            mailbox_capacity: 0,
            ..RuntimeConfig::default()
        };
        let result = run(zero_mailbox, |_ctx: ShardContext<()>, _inbox| async {});
        assert!(matches!(result, Err(RuntimeError::Config(_))));
        let too_many = RuntimeConfig {
            shard_count: SHARD_COUNT_MAX + 1,
            ..RuntimeConfig::default()
        };
        let result = run(too_many, |_ctx: ShardContext<()>, _inbox| async {});
        assert!(matches!(result, Err(RuntimeError::Config(_))));
    }

    #[test]
    fn panic_message_is_extracted() {
        assert_eq!(panic_message(&"boom"), "boom");
        assert_eq!(panic_message(&String::from("bang")), "bang");
        assert_eq!(panic_message(&42u8), "non-string panic payload");
    }
}
