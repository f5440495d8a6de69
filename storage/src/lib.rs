//! The partition log: Kafka v2 record batches stored byte-for-byte in segment files.
//! See CONTRACT.md beside this file for the public API.
