//! Generates the prost messages of `proto/caas.v1.proto` into `OUT_DIR`
//! (`caas.v1.rs`, included by `src/ws/proto.rs`). protox parses the schema in pure
//! Rust, so a fresh machine builds without `protoc`.

fn main() {
    // Read when the script runs, not baked in when it is compiled: a target
    // directory shared by several checkouts may run a script built in another.
    let manifest = std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| ".".into());
    let dir = std::path::Path::new(&manifest).join("proto");
    let schema = dir.join("caas.v1.proto");
    println!("cargo:rerun-if-changed={}", schema.display());
    let descriptors = protox::compile([&schema], [&dir])
        .unwrap_or_else(|e| panic!("proto/caas.v1.proto does not compile: {e:?}"));
    let mut config = prost_build::Config::new();
    // A BTreeMap writes map entries in key order, so an event's bytes depend only on
    // the event (the default HashMap would reorder them from one encoding to the next).
    config.btree_map([".caas.v1.Message.reactions"]);
    config
        .compile_fds(descriptors)
        .expect("prost-build writes caas.v1.rs into OUT_DIR");
}
