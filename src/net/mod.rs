//! Networking: Kafka framing (`frame`), the per-connection reader/writer (`conn`) and writing
//! record bytes from segment files to sockets (`splice`, with the copy path's buffer `pool`).

pub mod conn;
pub mod frame;
mod idle;
pub mod pool;
pub mod splice;
pub mod tls;
