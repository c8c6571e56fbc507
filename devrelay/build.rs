fn main() {
    let fds = protox::compile(["../proto/agent.proto"], ["../proto"])
        .expect("../proto/agent.proto compiles");
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(fds)
        .expect("tonic stubs generate");
    println!("cargo:rerun-if-changed=../proto/agent.proto");
}
