use std::path::{Path, PathBuf};

fn main() {
    let fds =
        protox::compile(["proto/agent.proto"], ["proto"]).expect("proto/agent.proto compiles");
    // Messages only: the transport makes its unary calls itself (src/transport.rs), with
    // buffers sized for these messages.
    tonic_prost_build::configure()
        .build_server(false)
        .build_client(false)
        .compile_fds(fds)
        .expect("tonic stubs generate");
    println!("cargo:rerun-if-changed=proto/agent.proto");

    c_abi();
}

/// The C ABI's build outputs: `include/noxy.h` (cbindgen) and the shared library's soname.
fn c_abi() {
    let crate_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    println!("cargo:rerun-if-changed=cbindgen.toml");
    println!("cargo:rerun-if-changed=src/ffi");
    println!("cargo:rerun-if-changed=include/noxy.h");

    let mut config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml"))
        .expect("cbindgen.toml is valid");
    let version = |part: &str| std::env::var(format!("CARGO_PKG_VERSION_{part}")).unwrap();
    config.after_includes = Some(format!(
        "\n/** The version of this header: MAJOR.MINOR.PATCH (noxy_version() gives the \
         library's). */\n\
         #define NOXY_VERSION_MAJOR {}\n\
         #define NOXY_VERSION_MINOR {}\n\
         #define NOXY_VERSION_PATCH {}\n\
         #define NOXY_VERSION_STRING \"{}\"",
        version("MAJOR"),
        version("MINOR"),
        version("PATCH"),
        std::env::var("CARGO_PKG_VERSION").unwrap(),
    ));
    let bindings = cbindgen::Builder::new()
        .with_config(config)
        .with_src(crate_dir.join("src/ffi/mod.rs"))
        .generate()
        .expect("cbindgen generates include/noxy.h from src/ffi");
    let mut header = Vec::new();
    bindings.write(&mut header);
    write_if_changed(&crate_dir.join("include/noxy.h"), &header);

    // The shared library's soname: hosts link against libnoxy.so.0 (ABI major 0).
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libnoxy.so.0");
    }
}

/// Writes `content` atomically (temporary file + rename), and only when it differs, so that
/// concurrent builds and unchanged headers leave the file (and its mtime) alone.
fn write_if_changed(path: &Path, content: &[u8]) {
    if std::fs::read(path).ok().as_deref() == Some(content) {
        return;
    }
    std::fs::create_dir_all(path.parent().unwrap()).expect("include/ can be created");
    let temp = path.with_extension(format!("h.tmp{}", std::process::id()));
    std::fs::write(&temp, content).expect("the header can be written");
    std::fs::rename(&temp, path).expect("the header can be renamed into place");
}
