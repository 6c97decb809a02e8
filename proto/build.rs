//! Compiles the .proto files with `protox` (pure Rust): no system `protoc` is needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "proto/treaty/v1/control.proto",
        "proto/treaty/v1/data.proto",
    ];
    for file in files {
        println!("cargo:rerun-if-changed={file}");
    }
    let fds = protox::compile(files, ["proto"])?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        // Data-plane payloads as `Bytes`: a sender slices one buffer into chunks and a receiver
        // takes each chunk out of the decode buffer, without copying either.
        .bytes(".treaty.v1.Chunk.payload")
        .compile_fds(fds)?;
    Ok(())
}
