//! A keystore path sent by a client (IncrementalAlterConfigs of
//! `listener.name.<l>.ssl.keystore.location`, allowed to anyone without an authorizer) must not
//! hang or exhaust the broker. Found by attacking certificate reload: a FIFO path blocked the
//! change forever (and with it every later listener change), `/dev/zero` read until memory ran
//! out. Both are now refused with INVALID_CONFIG and a real reload still works afterwards.

// Test code: a failed expectation should fail the test loudly (docs/decisions/0014).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
mod common;

use std::net::SocketAddr;

use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::{
    ApiKey, IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
};
use kafka_protocol::protocol::StrBytes;

use common::certs;
use common::wire;
use common::{Broker, BrokerOpts};

const INVALID_CONFIG: i16 = 40;
const BROKER: i8 = 4;
const KEY: &str = "listener.name.ssl.ssl.keystore.location";

/// Sets the SSL listener's keystore on broker 0; the answer's error code (the call panics when
/// no answer comes within the wire timeout).
fn set_keystore(addr: SocketAddr, value: &str) -> i16 {
    let s = |t: &str| StrBytes::from_string(t.to_owned());
    let req = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(BROKER)
            .with_resource_name(s("0"))
            .with_configs(vec![AlterableConfig::default()
                .with_name(s(KEY))
                .with_config_operation(0)
                .with_value(Some(s(value)))]),
    ]);
    let resp: IncrementalAlterConfigsResponse =
        wire::call(addr, ApiKey::IncrementalAlterConfigs, 1, &req);
    resp.responses[0].error_code
}

#[test]
fn a_keystore_path_that_is_no_file_is_refused_without_hanging() {
    let dir = tempfile::tempdir().unwrap();
    let pki = certs::generate(dir.path());
    let toml = format!(
        "listeners = \"PLAINTEXT://127.0.0.1:0,SSL://127.0.0.1:0\"\n\
         \"ssl.keystore.location\" = {:?}\n",
        pki.broker.display().to_string(),
    );
    let mut broker = Broker::start(BrokerOpts::default().config(&toml));
    let admin = broker.socket_addr();

    let fifo = dir.path().join("keystore.fifo");
    let c_path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo(3) with a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
    assert_eq!(set_keystore(admin, fifo.to_str().unwrap()), INVALID_CONFIG);
    // Never read (a device without end); only reached once the FIFO is refused.
    assert_eq!(set_keystore(admin, "/dev/zero"), INVALID_CONFIG);
    assert_eq!(
        set_keystore(admin, dir.path().to_str().unwrap()),
        INVALID_CONFIG
    );

    // The listener configs are not stuck: a real reload goes through.
    assert_eq!(set_keystore(admin, pki.broker.to_str().unwrap()), 0);
    assert!(broker.is_running(), "log:\n{}", broker.log_text());
}
