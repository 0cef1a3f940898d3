//! Compiles etcd's v3 API protos into Rust using a vendored `protoc`
//! (no system `protoc` required).

use std::io;

const PROTO_DIR: &str = "proto";
const PROTOS: &[&str] = &[
    "proto/kv.proto",
    "proto/auth.proto",
    "proto/rpc.proto",
    "proto/v3lock.proto",
    "proto/v3election.proto",
    "proto/cairn/peer.proto",
];

fn main() -> io::Result<()> {
    println!("cargo:rerun-if-changed={PROTO_DIR}");
    for proto in PROTOS {
        println!("cargo:rerun-if-changed={proto}");
    }

    let protoc = protoc_bin_vendored::protoc_bin_path()
        .map_err(|e| io::Error::other(format!("vendored protoc unavailable: {e}")))?;

    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").map_err(io::Error::other)?);
    let descriptors = out.join("descriptors.bin");
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc);
    config.file_descriptor_set_path(&descriptors);

    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_with_config(config, PROTOS, &[PROTO_DIR])?;

    // The JSON mapping of etcd's gRPC gateway (jsonpb with the proto field names): int64 as
    // strings, bytes as base64, enums by name, default values left out; input in either
    // naming, unknown fields ignored.
    let set = std::fs::read(&descriptors)?;
    pbjson_build::Builder::new()
        .register_descriptors(&set)?
        .preserve_proto_field_names()
        .ignore_unknown_fields()
        .build(&[
            ".etcdserverpb",
            ".mvccpb",
            ".authpb",
            ".v3lockpb",
            ".v3electionpb",
        ])
}
