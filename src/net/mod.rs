//! Networking: Kafka framing (`frame`), the per-connection reader/writer (`conn`) and writing
//! record bytes from segment files to sockets (`splice`).

pub mod conn;
pub mod frame;
pub mod splice;
