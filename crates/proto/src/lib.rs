//! Rust bindings for etcd's v3 gRPC API, generated at build time from the
//! `.proto` files in `proto/` with prost + tonic.
//!
//! Package names match etcd exactly, so gRPC paths are wire-compatible
//! (e.g. `/etcdserverpb.KV/Range`, `/v3lockpb.Lock/Lock`,
//! `/v3electionpb.Election/Campaign`). Field numbers follow etcd v3.6
//! (a superset of v3.5).
//!
//! The messages of every etcd package also map to JSON (serde, generated
//! with pbjson) as etcd's gRPC gateway writes and reads them.

pub mod stages;

/// Storage-level types: `KeyValue` and watch `Event`.
#[allow(clippy::all, missing_docs, rustdoc::all)]
pub mod mvccpb {
    tonic::include_proto!("mvccpb");
    include!(concat!(env!("OUT_DIR"), "/mvccpb.serde.rs"));
}

/// Authentication records: `User`, `Role`, `Permission`, `UserAddOptions`.
#[allow(clippy::all, missing_docs, rustdoc::all)]
pub mod authpb {
    tonic::include_proto!("authpb");
    include!(concat!(env!("OUT_DIR"), "/authpb.serde.rs"));
}

/// The main etcd v3 API: KV, Watch, Lease, Cluster, Maintenance, Auth services.
#[allow(clippy::all, missing_docs, rustdoc::all)]
pub mod etcdserverpb {
    tonic::include_proto!("etcdserverpb");
    include!(concat!(env!("OUT_DIR"), "/etcdserverpb.serde.rs"));
}

/// Distributed lock service (`v3lockpb.Lock`).
#[allow(clippy::all, missing_docs, rustdoc::all)]
pub mod v3lockpb {
    tonic::include_proto!("v3lockpb");
    include!(concat!(env!("OUT_DIR"), "/v3lockpb.serde.rs"));
}

/// Leader election service (`v3electionpb.Election`).
#[allow(clippy::all, missing_docs, rustdoc::all)]
pub mod v3electionpb {
    tonic::include_proto!("v3electionpb");
    include!(concat!(env!("OUT_DIR"), "/v3electionpb.serde.rs"));
}

/// Cairn's own member-to-member protocol (`cairnpeer.Peer`), served on the peer URLs.
#[allow(clippy::all, missing_docs, rustdoc::all)]
pub mod cairnpeer {
    tonic::include_proto!("cairnpeer");
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn keyvalue_wire_encoding() {
        let kv = mvccpb::KeyValue {
            key: b"foo".to_vec(),
            create_revision: 1,
            mod_revision: 2,
            version: 3,
            value: b"bar".to_vec(),
            lease: 0x10,
        };
        let bytes = kv.encode_to_vec();
        assert_eq!(
            bytes,
            [
                0x0a, 3, b'f', b'o', b'o', // 1: key
                0x10, 1, // 2: create_revision
                0x18, 2, // 3: mod_revision
                0x20, 3, // 4: version
                0x2a, 3, b'b', b'a', b'r', // 5: value
                0x30, 0x10, // 6: lease
            ]
        );
        assert_eq!(mvccpb::KeyValue::decode(bytes.as_slice()).unwrap(), kv);
    }

    /// etcd's gateway (jsonpb, proto field names): base64 bytes, int64 as strings, enums by
    /// name, defaults left out; input ignores unknown fields.
    #[test]
    fn json_as_etcds_gateway_maps_it() {
        let put: etcdserverpb::PutRequest =
            serde_json::from_str(r#"{"key":"Zm9v","value":"YmFy","lease":"7","extra":1}"#).unwrap();
        assert_eq!(
            (&put.key[..], &put.value[..], put.lease),
            (&b"foo"[..], &b"bar"[..], 7)
        );
        let resp = etcdserverpb::RangeResponse {
            header: Some(etcdserverpb::ResponseHeader {
                cluster_id: 14841639068965178418,
                member_id: 0,
                revision: 5,
                raft_term: 2,
            }),
            kvs: vec![mvccpb::KeyValue {
                key: b"foo".to_vec(),
                create_revision: 5,
                mod_revision: 5,
                version: 1,
                ..Default::default()
            }],
            more: false,
            count: 1,
        };
        assert_eq!(
            serde_json::to_string(&resp).unwrap(),
            r#"{"header":{"cluster_id":"14841639068965178418","revision":"5","raft_term":"2"},"kvs":[{"key":"Zm9v","create_revision":"5","mod_revision":"5","version":"1"}],"count":"1"}"#
        );
        let grant: etcdserverpb::LeaseGrantRequest =
            serde_json::from_str(r#"{"TTL":"60","ID":1}"#).unwrap();
        assert_eq!((grant.ttl, grant.id), (60, 1));
        let ev = mvccpb::Event {
            r#type: mvccpb::event::EventType::Delete as i32,
            kv: None,
            prev_kv: None,
        };
        assert_eq!(serde_json::to_string(&ev).unwrap(), r#"{"type":"DELETE"}"#);
    }

    #[test]
    fn compare_range_end_is_field_64() {
        let cmp = etcdserverpb::Compare {
            range_end: b"z".to_vec(),
            target_union: Some(etcdserverpb::compare::TargetUnion::Lease(5)),
            ..Default::default()
        };
        // field 8 varint = 0x40; field 64 length-delimited = tag 514 = 0x82 0x04
        assert_eq!(cmp.encode_to_vec(), [0x40, 5, 0x82, 0x04, 1, b'z']);
    }

    #[test]
    fn service_names_and_types() {
        assert_eq!(etcdserverpb::kv_server::SERVICE_NAME, "etcdserverpb.KV");
        assert_eq!(
            etcdserverpb::watch_server::SERVICE_NAME,
            "etcdserverpb.Watch"
        );
        assert_eq!(v3lockpb::lock_server::SERVICE_NAME, "v3lockpb.Lock");
        assert_eq!(
            v3electionpb::election_server::SERVICE_NAME,
            "v3electionpb.Election"
        );

        fn _types_exist(
            _: Option<etcdserverpb::kv_server::KvServer<()>>,
            _: Option<v3lockpb::lock_client::LockClient<tonic::transport::Channel>>,
        ) {
        }
    }
}

pub mod coalesce;

/// gRPC metadata a client sends with `Maintenance.Snapshot` to get Cairn's own snapshot format
/// (value [`SNAPSHOT_FORMAT_CAIRN`]); without it the server sends etcd's (a bbolt database and
/// its digest), which is what etcdctl and every etcd tool read. etcd ignores the key.
pub const SNAPSHOT_FORMAT_METADATA: &str = "cairn-snapshot-format";
pub const SNAPSHOT_FORMAT_CAIRN: &str = "cairn";
